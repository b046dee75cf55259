"""Bad input to ``erasekit evaluate``, ``generate``, ``compare`` and ``demo``: one clear message, exit code 2.

Each row runs the real command line (``erasekit.cli.app``) and must end before any model is loaded or
any image drawn: no traceback, and the words that name the problem and its fix.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

import erasekit
from erasekit.attacks.base import AttackResult, Case, CaseResult
from erasekit.attacks.save import save_result
from erasekit.cli import app
from tests.paths import unwritable_folder


def _prompts(tmp: Path, text: str = "prompt\na red car\n") -> str:
    (tmp / "p.csv").write_text(text)
    return str(tmp / "p.csv")


def _generate(*extra: str, csv: str = "prompt\na red car\n", out=lambda tmp: tmp / "g"):
    return lambda tmp: ["generate", "--model", "tiny-sd1", "--prompts", _prompts(tmp, csv), "-o", str(out(tmp)), *extra]


def _evaluate(*extra: str):
    return lambda tmp: ["evaluate", "--model", "tiny-sd1", "--prompts", _prompts(tmp), "-o", str(tmp / "e"), *extra]


def _in_use(tmp: Path) -> Path:
    (tmp / "busy").mkdir()
    (tmp / "busy" / ".erasekit.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    return tmp / "busy"


def _attack_of_no_edit(tmp: Path) -> list[str]:
    """evaluate --edit E --attack-results A, A an attack made without an edit (its ASR is not E's)."""
    edit = erasekit.erase(erasekit.load_pipeline("tiny-sd1"), ["monet"]).save(tmp / "monet.safetensors")
    case = CaseResult(Case("a monet painting", 0), pre_success=True, pre_image=Image.new("RGB", (8, 8)))
    save_result(AttackResult("derived", "monet", {}, 0, [case], info={"edit": None}), tmp / "attack")
    return _evaluate("--edit", str(edit), "--attack-results", str(tmp / "attack"))(tmp)


CASES = [
    # (what, arguments of `erasekit`, words the message must contain)
    ("steps 0", _generate("--steps", "0"), "steps must be a whole number >= 1, got 0"),
    ("batch size 0", _generate("--batch-size", "0"), "batch_size must be a whole number >= 1, got 0"),
    ("guidance nan", _generate("--guidance", "nan"), "guidance must be a finite number, got nan"),
    ("guidance inf", _generate("--guidance", "inf"), "guidance must be a finite number, got inf"),
    (
        "NaN guidance in the prompts CSV",
        _generate(csv="prompt,guidance\na car,nan\n"),
        "column 'guidance' holds 'nan', not a finite number",
    ),
    ("infinite seed in the CSV", _generate(csv="prompt,seed\na car,inf\n"), "column 'seed' holds 'inf', not a seed"),
    ("n-prompts 0", _evaluate("--n-prompts", "0"), "--n-prompts must be a whole number >= 1, got 0"),
    ("n-prompts and limit disagree", _generate("--n-prompts", "1", "--limit", "2"), "disagree: give --n-prompts only"),
    ("num processes 0 (evaluate)", _evaluate("--num-processes", "0"), "--num-processes must be a whole number >= 1"),
    ("num processes 0 (generate)", _generate("--num-processes", "0"), "--num-processes must be a whole number >= 1"),
    (
        "generate into an unwritable folder",
        _generate(out=lambda tmp: unwritable_folder(tmp) / "g"),
        "choose a writable folder",
    ),
    ("attack of no edit", _attack_of_no_edit, "attacked the model without an edit, but this evaluation is of the edit"),
    ("generate into a folder in use", _generate(out=_in_use), "is in use by another erasekit run (pid"),
    ("compare into an unwritable folder", lambda tmp: ["compare", "-o", str(unwritable_folder(tmp) / "c")], "writable"),
    (
        "compare into a file",
        lambda tmp: ["compare", "-o", str(Path(_prompts(tmp)) / "c")],
        "is a file. Choose another -o",
    ),
    ("demo into an unwritable folder", lambda tmp: ["demo", "-o", str(unwritable_folder(tmp) / "d")], "writable"),
]


@pytest.mark.filterwarnings("ignore:--limit is now --n-prompts:DeprecationWarning")
@pytest.mark.parametrize("what, args, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_message_and_exit_code_2(tmp_path, what, args, words):
    result = CliRunner().invoke(app, args(tmp_path))
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert words in " ".join(result.output.split()), result.output  # rich wraps long lines
    assert not any(tmp_path.rglob("images")) and not any(tmp_path.rglob("run.json"))  # no image drawn, no run
