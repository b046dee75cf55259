from __future__ import annotations

import torch

import erasekit
from erasekit.concepts import keep_rows
from erasekit.targets import find_targets
from erasekit.text import TextEncoder
from erasekit.worlds.tiny import tiny_pipeline
from tests import oracle


def test_nullspace_matches_reference():
    pipe = tiny_pipeline("sd1", text_dim=192)  # 2 keep prompts x 77 rows < 192 directions
    edit = erasekit.erase(pipe, ["van gogh"], method="nullspace", preserve=["claude monet"])
    ref = oracle.nullspace_reference(*oracle.of(pipe), ["van gogh"], [" "], ["", "claude monet"], 0.5, 1.0, 1e-6)
    assert oracle.max_rel_err({n: edit.delta(n) for n in edit.updates}, ref) <= 1e-4


def test_preserved_outputs_do_not_move():
    pipe = tiny_pipeline("sd1", text_dim=192)
    edit = erasekit.erase(pipe, ["van gogh"], method="nullspace", preserve=["claude monet"])
    K = keep_rows(TextEncoder(pipe), ["", "claude monet"]).double()
    assert edit.info["protected_directions"] < 192
    for t in find_targets(pipe.unet):
        W = t.weight.detach().double()
        before, after = K @ W.T, K @ (W + edit.delta(t.name).double()).T
        assert float((after - before).norm() / before.norm()) < 1e-5


def test_nullspace_still_erases_the_concept():
    pipe = tiny_pipeline("sd1", text_dim=192)
    enc = TextEncoder(pipe)
    edit = erasekit.erase(pipe, ["van gogh"], method="nullspace", tokens="last", preserve=["claude monet"])
    c = enc(["van gogh"]).states[0, int(enc(["van gogh"]).last_word[0])].double()
    moved = [
        float((edit.delta(t.name).double() @ c).norm() / (t.weight.detach().double() @ c).norm())
        for t in find_targets(pipe.unet)
    ]
    assert min(moved) > 0.1


def test_keep_energy_below_one_protects_fewer_directions(tiny_pipe):
    full = tiny_pipeline("sd1", text_dim=192)
    a = erasekit.erase(full, ["dog"], method="nullspace")
    b = erasekit.erase(full, ["dog"], method="nullspace", keep_energy=0.9)
    assert b.info["protected_directions"] < a.info["protected_directions"]
    assert torch.isfinite(next(iter(b.updates.values()))[0]).all()
