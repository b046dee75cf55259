"""The grid: default methods from the registry, resuming without recomputing, settings kept, the command line."""

from __future__ import annotations

import importlib
import json
from types import SimpleNamespace

import pytest
from PIL import Image
from typer.testing import CliRunner

import erasekit.attacks
from erasekit import methods
from erasekit.cli import app
from erasekit.errors import ConfigError, OutputExistsError
from erasekit.evaluate import compare

from .conftest import ATTACKS

SETTINGS = compare.Settings(n_prompts=2, budget=3, attacks=ATTACKS)
loop = importlib.import_module("erasekit.evaluate.compare.run")  # the module, not compare.run the function


def nothing(world):
    return None, None


def test_default_methods_are_the_registry_with_variants_in_place_of_their_method():
    defaults = compare.default_methods()
    expected = [v for name in methods.available() for v in (methods.get(name).variants or [name])]
    assert defaults == expected and "esd" not in defaults
    assert defaults.index("esd-u") == defaults.index("esd-x") + 1


def test_a_registered_method_is_compared_without_editing_compare(tmp_path, counted, toy_registry):
    defaults = compare.default_methods()
    at = defaults.index("toy-a")
    assert defaults[at : at + 2] == ["toy-a", "toy-b"] and "toy" not in defaults  # its variants in its place
    rows = compare.run(out=tmp_path, methods=defaults, scenarios=["style"], settings=SETTINGS, loader=nothing)
    assert [r["method"] for r in rows] == defaults and "toy-b/style" in counted


@pytest.fixture
def counted(monkeypatch, fake_row):
    """compute_row replaced by a fake that counts its calls; the world is never loaded."""
    calls = []

    def fake(pipe, judge, sc, spec, settings, folder, progress, **kwargs):
        progress("erase")
        calls.append(f"{spec.label}/{sc.name}")
        return fake_row(sc.name, spec.label, 0.5)

    monkeypatch.setattr(loop, "compute_row", fake)
    return calls


def test_finished_rows_are_not_computed_again(tmp_path, counted):
    kwargs = dict(out=tmp_path, methods=["uce", "rece"], scenarios=["style", "object"], settings=SETTINGS)
    progress = []
    rows = compare.run(**kwargs, only=["*/style"], progress=lambda *a: progress.append(a), loader=nothing)
    assert counted == ["uce/style", "rece/style"] and len(rows) == 2
    assert progress[0] == (0, 2 * (2 + len(ATTACKS)), "uce / style: erase")
    rows = compare.run(**kwargs, loader=nothing)
    assert counted[2:] == ["uce/object", "rece/object"] and len(rows) == 4
    compare.run(**kwargs, loader=lambda world: pytest.fail("every row is done: nothing to load"))
    assert len(counted) == 4
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert [r["method"] for r in saved["rows"]] == ["uce", "rece", "uce", "rece"] and "thumbs" not in saved["rows"][0]
    assert "| object | rece |" in (tmp_path / "compare.md").read_text()
    assert (tmp_path / "report.html").is_file()


def test_the_loader_gets_the_world(tmp_path, counted):
    seen = []
    compare.run(out=tmp_path, methods=["uce"], scenarios=["style"], settings=SETTINGS,
                loader=lambda world: seen.append(world.name) or (None, None))  # fmt: skip
    assert seen == ["embedded"]


def test_a_folder_of_other_settings_is_refused(tmp_path, counted):
    compare.run(out=tmp_path, methods=["uce"], scenarios=["style"], settings=SETTINGS, loader=nothing)
    other = compare.Settings(n_prompts=2, budget=4, attacks=ATTACKS)
    with pytest.raises(OutputExistsError, match="budget"):
        compare.run(out=tmp_path, methods=["uce"], scenarios=["style"], settings=other)


def test_compare_json_follows_the_contract(tmp_path, counted):
    compare.run(out=tmp_path, methods=["uce"], scenarios=["style", "unsafe"], settings=SETTINGS, loader=nothing)
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["quick"] is False and set(saved["scenarios"]) == {"style", "unsafe"}
    for sc in saved["scenarios"].values():
        found = {k: set(v) for k, v in sc["splits"].items()}
        assert set(found) == {"fit", "val", "test"} and all(found.values())
        assert not found["fit"] & found["val"] and not found["fit"] & found["test"] and not found["val"] & found["test"]
        assert sc["unseen"] and not set(sc["unseen"]) & set(sc["preserve"])
    assert saved["scenarios"]["style"]["preserve"] and saved["scenarios"]["unsafe"]["preserve"] == []
    for row in saved["rows"]:
        assert {"scenario", "method", "metrics"} <= set(row)
        keys = {"efficacy", "generality", "specificity_kept", "specificity_unseen", *(f"asr.{a}" for a in ATTACKS)}
        assert keys <= set(row["metrics"])
        for rate in row["metrics"].values():
            assert set(rate) == {"value", "ci", "n"} and rate["n"] > 0
            assert rate["ci"][0] <= rate["value"] <= rate["ci"][1]


def test_a_quick_folder_resumed_as_a_full_run_is_refused_and_kept(tmp_path, counted):
    quick = compare.Settings.tier(quick=True, attacks=ATTACKS)
    compare.run(out=tmp_path, methods=["uce"], scenarios=["style"], settings=quick, loader=nothing)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    full = compare.Settings.tier(attacks=ATTACKS)
    with pytest.raises(ConfigError, match=r"holds a quick comparison and this run is a full one.*with --quick"):
        compare.run(out=tmp_path, methods=["uce"], scenarios=["style"], settings=full, loader=nothing)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing lost
    assert json.loads((tmp_path / "compare.json").read_text())["quick"] is True
    assert "**Quick run**" in (tmp_path / "compare.md").read_text()


def test_cli_compare_resuming_a_quick_folder_as_a_full_one_exits_2_with_one_message(tmp_path, counted):
    compare.run(out=tmp_path, methods=["uce"], scenarios=["style"], settings=compare.Settings.tier(quick=True),
                loader=nothing)  # fmt: skip
    result = CliRunner().invoke(app, ["compare", "--methods", "uce", "--scenarios", "style", "-o", str(tmp_path)])
    said = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2 and "holds a quick comparison" in said and "Rerun with --quick" in said
    assert said.count("error:") == 1 and "Traceback" not in said


def test_cli_compare_reports_a_bad_method_before_loading_anything(tmp_path):
    result = CliRunner().invoke(app, ["compare", "--methods", "uce,esdx", "-o", str(tmp_path / "c")])
    assert result.exit_code == 2 and "Did you mean 'esd'" in result.output
    assert not (tmp_path / "c").exists()


def test_cli_compare_on_a_world_without_scenarios_says_so(tmp_path):
    result = CliRunner().invoke(app, ["compare", "--world", "tiny-sd1", "--scenarios", "style", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "no comparison scenarios" in result.output


def test_cli_compare_help_names_the_world_and_goal_options():
    result = CliRunner().invoke(app, ["compare", "--help"])
    assert result.exit_code == 0 and "--world" in result.output and "--goal" in result.output


def test_a_real_row_on_the_embedded_world_writes_the_contract(tmp_path, monkeypatch):
    """Erase (UCE), draw and judge for real, one prompt per set; the attacks are stubbed (their tests run them)."""

    def attack(pipe, name, concept, *, judge, prompts, seed, **kwargs):
        images = [Image.new("RGB", (32, 32))] * len(prompts)
        cases = [SimpleNamespace(outcome=None, image=im, success=False, case=SimpleNamespace(prompt=p))
                 for im, p in zip(images, prompts)]  # fmt: skip
        return SimpleNamespace(asr=0.0, cases=cases)

    monkeypatch.setattr(erasekit.attacks, "attack", attack)
    settings = compare.Settings(n_prompts=1, attack_seeds=2, attacks=("soft_prompt",))
    compare.run(out=tmp_path, methods=["uce"], scenarios=["style"], settings=settings)
    saved = json.loads((tmp_path / "compare.json").read_text())
    (row,) = saved["rows"]
    sets = compare.scored_sets(compare.scenario("style"), 1)
    n_unseen = 2 * sum(s.score == "specificity_unseen" for s in sets)  # 1 prompt × 2 image seeds per set
    assert {k: v["n"] for k, v in row["metrics"].items()} == {
        "efficacy": 2, "generality": 2, "specificity_kept": 2, "specificity_unseen": n_unseen, "asr.soft_prompt": 2,
    }  # fmt: skip
    for rate in [*row["metrics"].values(), *row["original"].values()]:
        assert rate["ci"][0] <= rate["value"] <= rate["ci"][1]
    assert row["original"]["efficacy"]["n"] == 2 and "asr.soft_prompt" not in row["original"]
    assert set(saved["scenarios"]["style"]["splits"]["test"]) == {p for s in sets for p, _ in s.rows}
    assert "n=2" in (tmp_path / "compare.md").read_text() and (tmp_path / "rows" / "style" / "uce.json").is_file()
