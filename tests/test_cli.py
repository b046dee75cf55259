from __future__ import annotations

import json

from typer.testing import CliRunner

from erasekit import Edit
from erasekit.cli import app

runner = CliRunner()


def test_erase_writes_an_edit_and_reports_json(tmp_path):
    out = tmp_path / "dog.safetensors"
    result = runner.invoke(
        app, ["erase", "dog", "--model", "tiny-sd1", "--method", "rece", "--set", "epochs=1",
              "--preserve", "cat", "-o", str(out), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["method"] == "rece" and summary["concepts"] == ["dog"] and summary["preserve"] == ["cat"]
    assert summary["config"]["epochs"] == 1
    edit = Edit.load(out)
    assert edit.fingerprint == summary["fingerprint"] and edit.info["model"] == "tiny-sd1"


def test_erase_refuses_to_overwrite_and_keeps_the_file(tmp_path):
    out = tmp_path / "e.safetensors"
    out.write_text("precious")
    result = runner.invoke(app, ["erase", "dog", "--model", "tiny-sd1", "-o", str(out)])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert out.read_text() == "precious"
    assert runner.invoke(app, ["erase", "dog", "--model", "tiny-sd1", "-o", str(out), "--overwrite"]).exit_code == 0
    assert Edit.load(out).concepts == ["dog"]


def test_errors_are_messages_with_exit_code_2(tmp_path):
    result = runner.invoke(app, ["erase", "dog", "--model", "tiny-sd1", "--method", "ucee", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Did you mean 'uce'" in result.output
    result = runner.invoke(app, ["erase", "dog", "--model", "tiny-sd1", "--set", "lamb", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "NAME=VALUE" in result.output
    result = runner.invoke(app, ["erase", "dog", "--model", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "never downloads" in result.output


def test_methods_lists_the_registry_with_defaults():
    result = runner.invoke(app, ["methods", "--json"])
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"uce", "rece", "nullspace"} <= set(rows)
    assert rows["uce"]["defaults"]["lamb"] == 0.5 and rows["rece"]["settings"]["style"]["reg_lamb"] == 1e-3


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
    assert summary["method"] == "ace" and summary["gate"]["rank"] == 4
    assert "load_lora_weights" in summary["gate"]["note"]
    assert "gate" in runner.invoke(app, ["info", str(out)]).stdout
