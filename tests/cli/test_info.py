from __future__ import annotations

import json

from typer.testing import CliRunner

from erasekit.cli import app
from erasekit.state_cache import encoded_states
from erasekit.text import TextEncoder

runner = CliRunner()


def test_methods_lists_the_registry_with_defaults():
    result = runner.invoke(app, ["methods", "--json"])
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"uce", "rece", "nullspace"} <= set(rows)
    assert rows["uce"]["defaults"]["lamb"] == 0.5 and rows["rece"]["settings"]["reference-style"]["reg_lamb"] == 1e-3
    assert all("arXiv" in r["source"] for r in rows.values()), [r["source"] for r in rows.values()]  # every paper
    assert rows["mace"]["source"].startswith("MACE: Mass Concept Erasure")
    table = runner.invoke(app, ["methods"], env={"COLUMNS": "80"}).stdout
    assert "reference-nudity:" in table and "…" not in table  # nothing cut off at 80 columns


def test_info_shows_what_an_edit_holds(tmp_path):
    out = tmp_path / "e.safetensors"
    assert runner.invoke(app, ["erase", "van gogh", "--model", "tiny-sd1", "-o", str(out)]).exit_code == 0
    result = runner.invoke(app, ["info", str(out), "--json"])
    summary = json.loads(result.stdout)
    assert summary["method"] == "uce" and summary["concepts"] == ["van gogh"] and summary["layers"] == 14
    assert "fingerprint" in runner.invoke(app, ["info", str(out)]).stdout


def test_info_says_a_gated_edit_needs_erasekit(tmp_path):
    out = tmp_path / "ace.safetensors"
    args = ["erase", "van gogh", "--method", "ace", "--model", "tiny-sd1", "-o", str(out)]
    args += ["--set", "epochs=2", "--set", "rank=4"]
    assert runner.invoke(app, args).exit_code == 0
    summary = json.loads(runner.invoke(app, ["info", str(out), "--json"]).stdout)
    assert summary["method"] == "ace" and summary["gate"]["rank"] == 12  # 4 for each of "van go gh"
    assert "load_lora_weights" in summary["gate"]["note"]
    table = " ".join(runner.invoke(app, ["info", str(out)]).stdout.split())
    assert "gate on held-out captions" in table and "neutral captions" in table, table  # point 1's rates, up front
    assert "also erased (mined words)" in table and table.index("also erased") < table.index("config")


def test_info_on_a_folder_says_so_and_lists_its_edit_files(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["info", str(empty)])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "is a folder" in output and "no .safetensors" in output, result.output
    for name in ("b.safetensors", "a.safetensors"):
        assert runner.invoke(app, ["erase", "dog", "--model", "tiny-sd1", "-o", str(tmp_path / name)]).exit_code == 0
    result = runner.invoke(app, ["info", str(tmp_path)])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "is a folder" in output and "a.safetensors, b.safetensors" in output, output
    assert "not found" not in output and "Traceback" not in output


def test_cache_lists_the_stored_tables_and_clears_them(tiny_pipe, tmp_path, monkeypatch):
    monkeypatch.setenv("ERASEKIT_CACHE", str(tmp_path))
    assert json.loads(runner.invoke(app, ["cache", "--json"]).stdout)["tables"] == 0
    encoded_states(TextEncoder(tiny_pipe), ["a cat"])
    listed = json.loads(runner.invoke(app, ["cache", "--json"]).stdout)
    assert listed["folder"] == str(tmp_path / "text-states") and listed["tables"] == 1 and listed["bytes"] > 0
    cleared = json.loads(runner.invoke(app, ["cache", "--clear", "--json"]).stdout)
    assert cleared["freed_bytes"] == listed["bytes"] and not list((tmp_path / "text-states").iterdir())
    monkeypatch.setenv("ERASEKIT_CACHE", "off")
    assert "nothing is kept" in runner.invoke(app, ["cache"]).stdout
