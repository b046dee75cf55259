"""``erasekit tune``: a bad grid is one clear message and exit 2, before any model is loaded."""

from __future__ import annotations

import importlib
import json

import pytest
from typer.testing import CliRunner

from erasekit.cli import app

compare_run = importlib.import_module("erasekit.evaluate.compare.run")  # the package's `run` is a function


@pytest.fixture
def no_world(monkeypatch):
    monkeypatch.setattr(compare_run, "load", lambda world: pytest.fail("a bad grid must fail before the world loads"))


@pytest.mark.parametrize(
    ("grid", "says"),
    [
        ("lr=", "--grid lr= has no values; give them comma-separated"),
        ("lr", "--grid expects NAME=VALUE"),
        ("learning_rate=1e-3", "learning_rate"),
    ],
)
def test_a_bad_grid_is_one_message_and_exit_2(no_world, grid, says):
    result = CliRunner().invoke(app, ["tune", "esd-x", "--grid", grid])
    assert result.exit_code == 2 and says in result.output, result.output


VAL = {"efficacy": 0.1, "generality": 0.2, "specificity": 0.9, "H_o": 0.86}


def fake_tuning(monkeypatch, val: dict) -> dict:
    """Stands in for the world and the tuning run: returns what the CLI passed to the run (filled when it runs);
    the run gives one ranked point per value of the grid's first name, each scored ``val``."""
    tuning = importlib.import_module("erasekit.evaluate.compare.tuning")
    monkeypatch.setattr(compare_run, "load", lambda world: (None, None))
    seen = {}

    def fake_tune(pipe, judge, sc, method, grid, *, n, settings, fixed, takes_preserve, keep):
        seen.update(method=method, grid=grid, fixed=fixed, takes_preserve=takes_preserve, scenario=sc.name,
                    settings=settings, keep=keep)  # fmt: skip
        name = next(iter(grid))
        return [{"overrides": {name: v}, "val": val} for v in grid[name]]

    monkeypatch.setattr(tuning, "tune", fake_tune)
    return seen


def test_the_ranking_is_printed_and_written(tmp_path, monkeypatch):
    seen = fake_tuning(monkeypatch, VAL)
    out = tmp_path / "t.json"
    result = CliRunner().invoke(app, ["tune", "esd-x", "--grid", "lr=3e-4,1e-3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert seen == {"method": "esd", "grid": {"lr": ["3e-4", "1e-3"]}, "fixed": {"variant": "x"},
                    "takes_preserve": False, "scenario": "style", "settings": "lora", "keep": None}  # fmt: skip
    assert [r["overrides"]["lr"] for r in json.loads(out.read_text())["ranked"]] == ["3e-4", "1e-3"]
    assert "H_o" in result.output and "val split" in result.output


@pytest.mark.parametrize(
    ("args", "grid", "settings"),
    [
        (["advunlearn"], "lr=1e-3", "embedded"),  # the method's default settings, as compare runs it
        (["advunlearn", "--settings", "embedded"], "lr=1e-3", "embedded"),
        (["ace", "--settings", "rank32"], "lr=1e-3", "rank32"),  # named settings: those
        (["uce"], "lamb=0.5", None),  # no default settings: the config's defaults
        (["ace"], "rank=8", "style"),  # the settings for the scenario's kind (style by default), as compare's row
        (["rece", "--scenario", "unsafe"], "lamb=0.1", "reference-nudity"),
        (["ace", "--settings", "defaults"], "rank=8", None),  # the config's own defaults, named
    ],
)
def test_the_grid_is_laid_over_the_settings_compare_runs(monkeypatch, args, grid, settings):
    seen = fake_tuning(monkeypatch, VAL)
    result = CliRunner().invoke(app, ["tune", *args, "--grid", grid])
    assert result.exit_code == 0, result.output
    assert seen["settings"] == settings


def test_a_scenario_of_several_concepts_gets_a_table_per_concept(monkeypatch):
    by_concept = {"church": {"efficacy": 0.0, "generality": 0.25}, "tench": {"efficacy": 0.75, "generality": 1.0}}
    fake_tuning(monkeypatch, {**VAL, "by_concept": by_concept})
    result = CliRunner().invoke(
        app, ["tune", "ace", "--scenario", "multi10", "--grid", "rank=32,48"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "each erased concept" in result.output and "0.75 / 1.00" in result.output and "rank=48" in result.output


def test_edits_are_kept_in_a_folder_it_makes(tmp_path, monkeypatch):
    seen = fake_tuning(monkeypatch, VAL)
    folder = tmp_path / "a" / "edits"
    result = CliRunner().invoke(app, ["tune", "esd-x", "--grid", "lr=3e-4", "--edits", str(folder)])
    assert result.exit_code == 0, result.output
    assert seen["keep"] == folder and folder.is_dir()


def test_an_edits_folder_under_a_file_is_one_message_and_exit_2(no_world, tmp_path):
    (tmp_path / "f").write_text("")
    result = CliRunner().invoke(app, ["tune", "esd-x", "--grid", "lr=3e-4", "--edits", str(tmp_path / "f" / "e")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "is a file. Choose another --edits" in said, said
