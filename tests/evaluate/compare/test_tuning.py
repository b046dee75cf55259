"""Hyper-parameters and candidates are chosen on the val prompts: never a test prompt is drawn."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

import erasekit
from erasekit.errors import ConfigError
from erasekit.evaluate import compare
from erasekit.evaluate.compare import tuning


@pytest.fixture
def recording(tiny_pipe):
    """The tiny U-Net under the edit; the prompts it is asked to draw are recorded, blank images returned."""
    shown: list[str] = []

    class Recording:
        unet = tiny_pipe.unet

        def __call__(self, prompts, **kwargs):
            shown.extend(prompts)
            return SimpleNamespace(images=[Image.new("RGB", (8, 8))] * len(prompts))

    return Recording(), shown


def test_candidates_are_scored_on_the_val_prompts_only(tiny_pipe, recording):
    pipe, shown = recording
    sc = compare.scenario("van gogh")
    judge = SimpleNamespace(detects=lambda images, concept: [True, False] * (len(images) // 2))
    edit = erasekit.erase(tiny_pipe, ["van gogh"], "uce")
    assert tuning.val_detection(pipe, judge, sc, 4, edit) == 0.5
    split = compare.splits(sc, 4, n_tuning=4)
    assert shown and set(shown) <= set(split["val"]) and not set(shown) & set(split["test"])


def test_val_scores_read_unseen_concepts_on_their_own_val_prompts(tiny_pipe, recording):
    pipe, shown = recording
    sc = compare.scenario("van gogh")
    judge = SimpleNamespace(detects=lambda images, concept: [concept != "van gogh"] * len(images))
    scores = tuning.val_scores(pipe, judge, sc, 2, erasekit.erase(tiny_pipe, ["van gogh"], "uce"))
    assert scores["efficacy"] == scores["generality"] == 0.0 and scores["specificity"] == 1.0
    assert scores["H_o"] == pytest.approx(1.0)
    test = set(compare.splits(sc, 32, n_tuning=2)["test"])
    assert not set(shown) & test and len(shown) > 2 * 2 * len(sc.concepts)  # unseen concepts' prompts drawn too


def test_several_concepts_get_their_own_val_rates_which_the_pooled_ones_hide(tiny_pipe, recording):
    pipe, _ = recording
    sc = compare.scenario("multi10")
    judge = SimpleNamespace(detects=lambda images, concept: [concept == "garbage truck"] * len(images))
    scores = tuning.val_scores(pipe, judge, sc, 2, erasekit.erase(tiny_pipe, ["van gogh"], "uce"))
    left = scores["by_concept"]["garbage truck"]
    assert left == {"efficacy": 1.0, "generality": 1.0} and scores["efficacy"] == pytest.approx(0.1)
    assert set(scores["by_concept"]) == set(sc.concepts)
    assert all(
        r == {"efficacy": 0.0, "generality": 0.0} for c, r in scores["by_concept"].items() if c != "garbage truck"
    )
    one = tuning.val_scores(
        pipe, judge, compare.scenario("van gogh"), 2, erasekit.erase(tiny_pipe, ["van gogh"], "uce")
    )
    assert "by_concept" not in one


def test_tune_erases_every_grid_point_and_ranks_them_by_val_h_o(monkeypatch):
    sc = compare.scenario("van gogh")
    erased = []

    def fake_erase(pipe, concepts, method, *, preserve, settings, **overrides):
        erased.append((method, preserve, overrides))
        return overrides

    monkeypatch.setattr(tuning, "erase", fake_erase)
    monkeypatch.setattr(tuning, "val_scores", lambda pipe, judge, sc, n, edit: {"H_o": edit["lr"] * edit["k"]})
    ranked = tuning.tune(None, None, sc, "esd", {"lr": [1, 3], "k": [2, 1]}, n=4, takes_preserve=False)
    assert [(r["overrides"]["lr"], r["overrides"]["k"]) for r in ranked] == [(3, 2), (3, 1), (1, 2), (1, 1)]
    assert len(erased) == 4 and all(p == [] for _, p, _ in erased)


def test_a_kept_point_is_read_back_instead_of_made_again(tiny_pipe, monkeypatch, tmp_path):
    sc = compare.scenario("van gogh")
    made, scored = [], []

    def fake_erase(pipe, concepts, method, *, preserve, settings, **overrides):
        made.append(overrides["lamb"])
        return erasekit.erase(tiny_pipe, concepts, method, lamb=float(overrides["lamb"]))

    def fake_scores(pipe, judge, sc, n, edit):
        scored.append(edit.config["lamb"])
        return {"H_o": edit.config["lamb"]}

    monkeypatch.setattr(tuning, "erase", fake_erase)
    monkeypatch.setattr(tuning, "val_scores", fake_scores)

    def run(grid, keep=tmp_path, n=4):
        return tuning.tune(None, None, sc, "uce", grid, n=n, takes_preserve=False, keep=keep)

    first = run({"lamb": ["0.1", "0.5"]})
    assert made == ["0.1", "0.5"] and sorted(p.name for p in tmp_path.iterdir()) == [
        "lamb=0.1.json", "lamb=0.1.safetensors", "lamb=0.5.json", "lamb=0.5.safetensors"]  # fmt: skip
    (tmp_path / "lamb=0.5.json").unlink()  # as if stopped after erasing 0.5, before scoring it
    again = run({"lamb": ["0.1", "0.5"]})
    assert made == ["0.1", "0.5"] and scored == [0.1, 0.5, 0.5]  # nothing erased again; 0.5 scored from its file
    assert again == first and erasekit.Edit.load(tmp_path / "lamb=0.5.safetensors").config["lamb"] == 0.5
    with pytest.raises(ConfigError, match="another tuning point"):
        run({"lamb": ["0.1"]}, n=8)  # other prompts: the kept scores are not this point's
    (tmp_path / "lamb=0.1.json").unlink()
    with pytest.raises(ConfigError, match="another tuning point"):
        run({"lamb": ["0.1"]}, n=8)  # ... nor is the kept edit (its preserve prompts are drawn per n)


def test_an_empty_grid_is_refused_with_an_example():
    with pytest.raises(ConfigError, match="lr=3e-4,1e-3"):
        tuning.grid_points({"lr": []})
