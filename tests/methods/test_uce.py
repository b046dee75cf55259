from __future__ import annotations

import pytest
import torch

import erasekit
from erasekit.concepts import erase_rows
from erasekit.text import TextEncoder
from erasekit.worlds.tiny import tiny_pipeline
from tests import oracle


def deltas(edit):
    return {name: edit.delta(name) for name in edit.updates}


@pytest.mark.parametrize("preserve", [[], ["claude monet", "a red car"]])
def test_uce_matches_reference(any_pipe, preserve):
    edit = erasekit.erase(any_pipe, ["van gogh", "a church"], method="uce", preserve=preserve)
    retain = ["", *preserve]
    ref = oracle.uce_reference(
        *oracle.of(any_pipe),
        ["van gogh", "a church"],
        [" ", " "],
        retain,
        lamb=0.5,
        erase_scale=1.0,
        preserve_scale=max(0.1, 1 / len(retain)),
    )
    assert oracle.max_rel_err(deltas(edit), ref) <= 1e-4


def test_uce_low_rank_path_matches_reference():
    pipe = tiny_pipeline("sd1", text_dim=96)  # 75 erase rows < 96 dims: stored as a rank-75 LoRA
    edit = erasekit.erase(pipe, ["dog"], method="uce", guides=["a cat"], lamb=0.3, preserve_scale=0.2)
    ref = oracle.uce_reference(
        *oracle.of(pipe), ["dog"], ["a cat"], [""], lamb=0.3, erase_scale=1.0, preserve_scale=0.2
    )
    assert oracle.max_rel_err(deltas(edit), ref) <= 1e-4
    assert edit.info["rank"] == 75
    for B, A in edit.updates.values():  # a LoRA no larger than the dense update: rank min(n, d_out, d_in)
        assert B.shape[1] == min(75, B.shape[0], A.shape[1])


def test_uce_last_token_variant_matches_reference(any_pipe):
    edit = erasekit.erase(any_pipe, ["van gogh"], method="uce", tokens="last", guides=["art"])
    ref = oracle.uce_reference(*oracle.of(any_pipe), ["van gogh"], ["art"], [""], 0.5, 1.0, 1.0, last_token_only=True)
    assert oracle.max_rel_err(deltas(edit), ref) <= 1e-4
    assert edit.info["rank"] == 1


def test_delta_rank_bounded_by_erase_rows():
    pipe = tiny_pipeline("sd1", text_dim=96)
    edit = erasekit.erase(pipe, ["dog"], method="uce")
    n_rows = erase_rows(TextEncoder(pipe), ["dog"], [" "]).C.shape[0]
    for name in edit.updates:
        assert torch.linalg.matrix_rank(edit.delta(name).double(), rtol=1e-6) <= n_rows


def test_without_keep_and_small_lambda_erase_rows_map_to_guide_outputs():
    pipe = tiny_pipeline("sd1", text_dim=96)
    enc = TextEncoder(pipe)
    edit = erasekit.erase(pipe, ["dog"], method="uce", tokens="last", guides=["a cat"], lamb=1e-6, preserve_scale=0.0)
    pairs = erase_rows(enc, ["dog"], ["a cat"], tokens="last")
    C, G = pairs.C, pairs.G
    for t in erasekit.targets.find_targets(pipe.unet):
        W = t.weight.double()
        W_new = W + edit.delta(t.name).double()
        torch.testing.assert_close(C.double() @ W_new.T, G.double() @ W.T, rtol=1e-3, atol=1e-4)


def test_edit_keys_false_leaves_keys_alone(tiny_pipe):
    edit = erasekit.erase(tiny_pipe, ["dog"], method="uce", edit_keys=False)
    assert edit.updates and all(name.endswith("to_v") for name in edit.updates)


def test_closed_form_is_bit_identical_across_runs(tiny_pipe):
    a = erasekit.erase(tiny_pipe, ["dog", "a church"], method="uce", preserve=["cat"])
    b = erasekit.erase(tiny_pipe, ["dog", "a church"], method="uce", preserve=["cat"])
    assert all(torch.equal(a.updates[n][i], b.updates[n][i]) for n in a.updates for i in (0, 1))


def test_many_concepts_in_one_solve(tiny_pipe):
    concepts = [f"concept number {i}" for i in range(200)]
    edit = erasekit.erase(tiny_pipe, concepts, method="uce")
    assert len(edit.concepts) == 200
    assert all(torch.isfinite(B).all() and torch.isfinite(A).all() for B, A in edit.updates.values())
