"""Attack results written by ``erasekit attack -o`` are read back into the report and the ASR group."""

import dataclasses
import json

import pytest
import torch
from PIL import Image

from erasekit.errors import ConfigError
from erasekit.evaluate import evaluate, load_attack_record

attacks = pytest.importorskip("erasekit.attacks.save")
from erasekit.attacks.base import AttackResult, Case, CaseResult, Outcome  # noqa: E402


def _result(name="discrete", concept="monet", edit=...):
    red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    cases = [
        CaseResult(Case("a monet painting", 0), pre_success=True, pre_image=red),
        CaseResult(Case("water lilies", 1), False, blue, Outcome(torch.zeros(4, 8), red, True, "lilies <tok>")),
        CaseResult(Case("a garden", 2), False, blue, Outcome(torch.zeros(4, 8), blue, False)),
        CaseResult(Case("a bridge", 3), False, blue, Outcome(torch.zeros(4, 8), blue, False)),
    ]
    info = {} if edit is ... else {"edit": edit}  # as attacks.attack records it: edit.summary(brief=True) or None
    return AttackResult(name, concept, {"k": 5}, 0, cases, info=info)


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
    assert "discrete: ASR 50.0%</h3>" in (tmp_path / "eval" / "report.html").read_text()
    assert "quick" not in result


def test_an_attack_at_the_quick_budget_marks_the_evaluation_quick(tiny_pipe, tiny_preset, stub_judge, tmp_path):
    attacks.save_result(dataclasses.replace(_result(), quick=True), tmp_path / "attack")
    record = load_attack_record(tmp_path / "attack")
    assert record.quick
    result = evaluate(tiny_preset, model="tiny-sd1", world="embedded", out=tmp_path / "eval", pipe=tiny_pipe,
                      judge_loader=stub_judge, attacks=[record], progress=False)  # fmt: skip
    assert result["quick"] is True and result["quick_attacks"] == ["discrete"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["quick"] is True
    assert "discrete: ASR 50.0% (quick: the reduced --quick budget" in (tmp_path / "eval" / "report.html").read_text()


def test_a_folder_without_an_attack_result(tmp_path):
    with pytest.raises(ConfigError, match=r"holds no attack result .*erasekit attack"):
        load_attack_record(tmp_path)
    (tmp_path / "result.json").write_text('{"attack": "x"}')
    with pytest.raises(ConfigError, match="is not an erasekit attack result"):
        load_attack_record(tmp_path)


def _evaluate(tmp_path, tiny_pipe, preset, judge, edit, *records):
    return evaluate(preset, model="tiny-sd1", world="embedded", out=tmp_path / "eval", pipe=tiny_pipe, edit=edit,
                    judge_loader=judge, attacks=list(records), progress=False)  # fmt: skip


def test_attack_results_must_be_of_the_evaluated_edit_and_concept(tiny_pipe, tiny_preset, stub_judge, tmp_path):
    import erasekit
    from erasekit.worlds.tiny import tiny_pipeline

    monet = erasekit.erase(tiny_pipe, ["monet"], method="uce")
    other = erasekit.erase(tiny_pipe, ["monet"], method="uce", lamb=0.3)
    other_base = erasekit.erase(tiny_pipeline("sd1", seed=3), ["monet"], method="uce")
    cases = {
        "no_edit": (_result(edit=None), "attacked the model without an edit, but this evaluation is of the edit uce"),
        "other_edit": (_result(edit=other.summary(brief=True)), r"attacked another edit .* the edit id differs"),
        "other_base": (_result(edit=other_base.summary(brief=True)), "attacked another edit"),
        "other_concept": (_result(concept="picasso", edit=monet.summary(brief=True)), "attacked the concept 'picasso'"),
    }
    for name, (result, message) in cases.items():
        attacks.save_result(result, tmp_path / name)
        with pytest.raises(ConfigError, match=message):
            _evaluate(tmp_path, tiny_pipe, tiny_preset, stub_judge, monet, load_attack_record(tmp_path / name))
    assert not (tmp_path / "eval").exists()  # refused before any image
    attacks.save_result(_result(edit=monet.summary(brief=True), concept="Monet"), tmp_path / "own")
    with pytest.raises(ConfigError, match=r"attacked the edit uce of monet, .* evaluation is of the model without"):
        _evaluate(tmp_path, tiny_pipe, tiny_preset, stub_judge, None, load_attack_record(tmp_path / "own"))
    result = _evaluate(tmp_path, tiny_pipe, tiny_preset, stub_judge, monet, load_attack_record(tmp_path / "own"))
    assert result["metrics"]["asr"] == {"asr_discrete": 0.5}


def test_two_results_of_one_attack_are_refused(tmp_path):
    from erasekit.evaluate import check_attacks

    for folder in ("a", "b"):
        attacks.save_result(_result(edit=None), tmp_path / folder)
    records = [load_attack_record(tmp_path / folder) for folder in ("a", "b")]
    with pytest.raises(ConfigError, match=r"two results of the attack 'discrete' \(.*a and .*b\)"):
        check_attacks(records, None, "monet")
    check_attacks(records[:1], None, "monet")  # one is fine
