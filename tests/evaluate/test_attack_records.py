"""Attack results written by ``erasekit attack -o`` are read back into the report and the ASR group."""

import json

import pytest
import torch
from PIL import Image

from erasekit.errors import ConfigError
from erasekit.evaluate import evaluate, load_attack_record

attacks = pytest.importorskip("erasekit.attacks.save")
from erasekit.attacks.base import AttackResult, Case, CaseResult, Outcome  # noqa: E402


def _result():
    red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    cases = [
        CaseResult(Case("a monet painting", 0), pre_success=True, pre_image=red),
        CaseResult(Case("water lilies", 1), False, blue, Outcome(torch.zeros(4, 8), red, True, "lilies <tok>")),
        CaseResult(Case("a garden", 2), False, blue, Outcome(torch.zeros(4, 8), blue, False)),
        CaseResult(Case("a bridge", 3), False, blue, Outcome(torch.zeros(4, 8), blue, False)),
    ]
    return AttackResult("discrete", "monet", {"k": 5}, 0, cases)


def test_an_attack_folder_becomes_an_asr_entry_and_a_report_section(tiny_pipe, tiny_preset, stub_judge, tmp_path):
    attacks.save_result(_result(), tmp_path / "attack")
    record = load_attack_record(tmp_path / "attack")
    assert record.name == "discrete" and record.asr == 0.5 and len(record.examples) == 4
    assert record.examples[0].found == "shown before any attack" and record.examples[1].found == "lilies <tok>"
    assert [e.success for e in record.examples] == [True, True, False, False]

    result = evaluate(tiny_preset, model="tiny-sd1", world="embedded", out=tmp_path / "eval", pipe=tiny_pipe,
                      judge_loader=stub_judge, attacks=[record], progress=False)  # fmt: skip
    assert result["metrics"]["asr"] == {"asr_discrete": 0.5}
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["metrics"]["asr"] == {"asr_discrete": 0.5}
    assert "discrete: ASR 50.0%" in (tmp_path / "eval" / "report.html").read_text()


def test_a_folder_without_an_attack_result(tmp_path):
    with pytest.raises(ConfigError, match=r"holds no attack result .*erasekit attack"):
        load_attack_record(tmp_path)
    (tmp_path / "result.json").write_text('{"attack": "x"}')
    with pytest.raises(ConfigError, match="is not an erasekit attack result"):
        load_attack_record(tmp_path)
