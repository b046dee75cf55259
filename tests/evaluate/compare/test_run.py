"""The grid: default methods from the registry, resuming without recomputing, settings kept, the command line."""

from __future__ import annotations

import importlib
import json

import pytest
from typer.testing import CliRunner

from erasekit import methods
from erasekit.cli import app
from erasekit.errors import OutputExistsError
from erasekit.evaluate import compare

SETTINGS = compare.Settings(n_prompts=2, budget=3)
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
    assert defaults[defaults.index("rece") + 1 : defaults.index("rece") + 3] == ["toy-a", "toy-b"]
    rows = compare.run(out=tmp_path, methods=defaults, scenarios=["style"], settings=SETTINGS, loader=nothing)
    assert [r["method"] for r in rows] == defaults and "toy-b/style" in counted


@pytest.fixture
def counted(monkeypatch, fake_row):
    """compute_row replaced by a fake that counts its calls; the world is never loaded."""
    calls = []

    def fake(pipe, judge, sc, spec, settings, folder, progress):
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
    assert progress[0] == (0, 2 * (2 + 4), "uce / style: erase")
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
    with pytest.raises(OutputExistsError, match="budget"):
        compare.run(out=tmp_path, methods=["uce"], scenarios=["style"], settings=compare.Settings(2, 4))


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
