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


def test_erase_settings_and_the_deprecated_preset_name(tmp_path):
    out = tmp_path / "r.safetensors"
    args = ["erase", "dog", "--model", "tiny-sd1", "--method", "rece", "-o", str(out), "--json"]
    result = runner.invoke(app, [*args, "--settings", "style"])
    assert result.exit_code == 0 and json.loads(result.stdout)["info"]["settings"] == "style"
    result = runner.invoke(app, [*args, "--preset", "style", "--overwrite"])
    assert result.exit_code == 0 and "--preset is now --settings" in result.stderr


def test_unknown_names_are_one_message_with_exit_code_2(tmp_path):
    out = str(tmp_path / "x.safetensors")
    for args, words in [
        (["erase", "dog", "--model", "embeded", "-o", out], "Unknown world 'embeded'. Did you mean 'embedded'"),
        (["erase", "dog", "--model", "tiny-sd1", "--method", "rec", "-o", out], "Unknown method 'rec'"),
        (["attack", "ring-a-bel", "--concept", "dog", "-o", out], "Unknown attack 'ring-a-bel'"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and words in " ".join(result.output.split()), result.output
        assert "Traceback" not in result.output


def test_version_prints_the_version():
    from erasekit import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == __version__
