from __future__ import annotations

import pytest
import torch

import erasekit
from erasekit.closed_form import F64, Eq8, Factor
from erasekit.methods.rece import select_epoch
from erasekit.worlds.tiny import tiny_pipeline
from tests import oracle


def deltas(edit):
    return {name: edit.delta(name) for name in edit.updates}


@pytest.mark.parametrize("reg_lamb", [0.1, 1e-3])
def test_rece_matches_reference(any_pipe, reg_lamb):
    edit = erasekit.erase(any_pipe, ["nudity", "a church"], method="rece", epochs=2, reg_lamb=reg_lamb)
    ref = oracle.rece_reference(
        *oracle.of(any_pipe),
        ["nudity", "a church"],
        " ",
        retain_texts=[" ", " "],
        epochs=2,
        regular_scale=reg_lamb,
        lamb=0.1,
        erase_scale=1.0,
        preserve_scale=0.1,
        uce_lamb=0.5,
        uce_preserve_scale=1.0,
        uce_retain=[""],
    )
    assert oracle.max_rel_err(deltas(edit), ref) <= 1e-4


def test_rece_with_preserve_retains_empty_plus_preserve_as_train_artists(tiny_pipe):
    edit = erasekit.erase(
        tiny_pipe, ["van gogh"], method="rece", settings="reference-style", preserve=["monet"], guides=["art"]
    )
    ref = oracle.rece_reference(
        *oracle.of(tiny_pipe),
        ["van gogh"],
        "art",
        retain_texts=["", "monet"],
        epochs=1,
        regular_scale=1e-3,
        lamb=0.1,
        erase_scale=1.0,
        preserve_scale=0.1,
        uce_lamb=0.5,
        uce_preserve_scale=0.5,
        uce_retain=["", "monet"],
    )
    assert oracle.max_rel_err(deltas(edit), ref) <= 1e-4


def test_rece_epoch_zero_is_uce_and_candidates_cover_every_epoch(tiny_pipe):
    edit = erasekit.erase(tiny_pipe, ["nudity"], method="rece", epochs=3)
    assert len(edit.candidates) == 4 and edit.candidates[-1] is edit
    uce = erasekit.erase(tiny_pipe, ["nudity"], method="uce", preserve_scale=1.0)
    assert oracle.max_rel_err(deltas(edit.candidates[0]), {n: uce.delta(n).double() for n in uce.updates}) <= 1e-5
    assert [c.info["epoch"] for c in edit.candidates] == [0, 1, 2, 3]


def test_select_epoch_takes_lowest_score_earliest_on_ties(tiny_pipe):
    edit = erasekit.erase(tiny_pipe, ["nudity"], method="rece", settings="reference-nudity")
    scores = {1: 0.3, 2: 0.1, 3: 0.1}
    best = select_epoch(edit, lambda e: scores[e.info["epoch"]])
    assert best.info["epoch"] == 2 and best.info["candidate_scores"] == [0.3, 0.1, 0.1]
    # the run's facts, which the candidates lack: its time (compare's rows read it) and its settings
    assert best.info["edit_s"] == edit.info["edit_s"] and best.info["settings"] == "reference-nudity"


def test_settings_are_named_for_their_source_and_the_old_names_still_work(tiny_pipe):
    edit = erasekit.erase(tiny_pipe, ["van gogh"], method="rece", settings="reference-style")
    assert edit.config["epochs"] == 1 and edit.config["reg_lamb"] == 1e-3 and edit.info["settings"] == "reference-style"
    paper = erasekit.erase(tiny_pipe, ["van gogh"], method="rece", settings="paper-style")
    assert paper.config["epochs"] == 10 and paper.config["reg_lamb"] == 1e-3
    assert erasekit.methods.get("rece").settings["paper-nudity"]["epochs"] == 5
    with pytest.warns(DeprecationWarning, match="'style' are now 'reference-style'"):
        old = erasekit.erase(tiny_pipe, ["van gogh"], method="rece", settings="style")
    assert old.info["settings"] == "reference-style" and old.config == edit.config


def test_rece_values_only_still_sums_eq8_over_keys_and_values(tiny_pipe):
    edit = erasekit.erase(tiny_pipe, ["nudity"], method="rece", epochs=2, edit_keys=False)
    assert all(name.endswith("to_v") for name in edit.updates)
    ref = oracle.rece_reference(
        *oracle.of(tiny_pipe),
        ["nudity"],
        " ",
        retain_texts=[" "],
        epochs=2,
        regular_scale=0.1,
        lamb=0.1,
        erase_scale=1.0,
        preserve_scale=0.1,
        uce_lamb=0.5,
        uce_preserve_scale=1.0,
        uce_retain=[""],
        with_to_k=False,
    )
    assert oracle.max_rel_err(deltas(edit), ref) <= 1e-4


def test_rece_matches_reference_when_rows_span_few_dimensions():
    pipe = tiny_pipeline("sd1", text_dim=384)  # 77 + 77 rows per epoch < 384 / 2: the Woodbury branch
    edit = erasekit.erase(pipe, ["nudity"], method="rece", epochs=2)
    ref = oracle.rece_reference(
        *oracle.of(pipe), ["nudity"], " ", retain_texts=[" "], epochs=2, regular_scale=0.1, lamb=0.1,
        erase_scale=1.0, preserve_scale=0.1, uce_lamb=0.5, uce_preserve_scale=1.0, uce_retain=[""],
    )  # fmt: skip
    assert oracle.max_rel_err(deltas(edit), ref) <= 1e-4


@pytest.mark.parametrize("dense", [False, True])
def test_eq8_terms_follow_the_running_product(dense):
    g = torch.Generator().manual_seed(0)
    d, n = 24, 5
    W = torch.randn(40, d, generator=g, dtype=F64)
    S, C = W.T @ W, torch.randn(n, d, generator=g, dtype=F64)
    steps = [
        Factor(torch.randn(d, r, generator=g, dtype=F64) / d, torch.randn(r, d, generator=g, dtype=F64)) for r in (3, 7)
    ]
    if dense:  # the dense form (U = T − I, A = I) that ridge_factor returns for n ≥ d
        steps.append(Factor(torch.randn(d, d, generator=g, dtype=F64) / d, torch.eye(d, dtype=F64), dense=True))
    eq8, T = Eq8(S, C), torch.eye(d, dtype=F64)
    for f in steps:
        eq8.step(f)
        T = T @ f.matrix()
    torch.testing.assert_close(eq8.Z, T.T @ S @ T)
    torch.testing.assert_close(eq8.X, C @ S @ T)
