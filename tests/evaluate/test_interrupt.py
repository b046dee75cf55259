"""Ctrl-C ends evaluate, generate, compare and demo with how to resume (exit code 130), never a traceback."""

import pytest
from typer.testing import CliRunner

from erasekit.cli import app, demo
from erasekit.evaluate import compare, runner

RESUME = "rerun the same command to resume"


def test_ctrl_c_during_generate_says_how_to_resume_and_the_rerun_resumes(tmp_path, monkeypatch):
    csv = tmp_path / "p.csv"
    csv.write_text("prompt\na red car\na dog\n")
    args = ["generate", "--model", "tiny-sd1", "--prompts", str(csv), "--steps", "1", "--batch-size", "1",
            "-o", str(tmp_path / "g")]  # fmt: skip
    real, calls = runner._run, []

    def ctrl_c_on_the_second_batch(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(runner, "_run", ctrl_c_on_the_second_batch)
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 130 and RESUME in out.output and "Traceback" not in out.output
    assert len(list((tmp_path / "g").rglob("*.png"))) == 1 and not (tmp_path / "g" / ".erasekit.lock").exists()
    monkeypatch.setattr(runner, "_run", real)
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0 and len(list((tmp_path / "g").rglob("*.png"))) == 2


@pytest.mark.parametrize("command", ["compare", "demo"])
def test_ctrl_c_during_compare_or_demo_says_how_to_resume(command, tmp_path, monkeypatch):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(compare, "run", ctrl_c)
    monkeypatch.setattr(demo, "main", ctrl_c)
    out = CliRunner().invoke(app, [command, "-o", str(tmp_path / command)])
    assert out.exit_code == 130 and RESUME in " ".join(out.output.split())
