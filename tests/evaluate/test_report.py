"""What the score tables say: which way each score is better, in report.html, the evaluate summary and the demo."""

import pytest

from erasekit.cli import demo
from erasekit.cli import evaluate as eval_cli
from erasekit.evaluate.report import _metrics_table, better

RESULT = {
    "protocol": "embedded-style",
    "concept": "van gogh",
    "metrics": {
        "efficacy": {"judge_detect_rate_target": 0.1, "lpips_e": 0.4, "lpips_d": 0.3},
        "generality": {"judge_detect_rate_generality": 0.2},
        "specificity": {"judge_acc_specificity": 0.9, "lpips_u": 0.1},
        "asr": {"asr_derived": 0.5},
        "quality": {"mace_h_o": 0.8, "fid": 12.0, "clip_score": 0.3, "something_new": None},
    },
    "baseline": {"efficacy": {"judge_detect_rate_target": 1.0}},
}


@pytest.mark.parametrize(
    "group, key, way",
    [
        ("efficacy", "judge_detect_rate_target", "lower"),
        ("efficacy", "nude_rate", "lower"),
        ("generality", "judge_detect_rate_generality", "lower"),
        ("specificity", "judge_acc_specificity", "higher"),
        ("specificity", "classifier_acc_others", "higher"),
        ("asr", "asr_soft_prompt", "lower"),
        ("efficacy", "lpips_e", "higher"),  # the erased concept's images should change
        ("efficacy", "lpips_d", "higher"),
        ("specificity", "lpips_u", "lower"),  # the others' should not
        ("quality", "fid", "lower"),
        ("quality", "clip_score", "higher"),
        ("quality", "mace_h_o", "higher"),
        ("quality", "something_new", ""),
    ],
)
def test_which_way_each_score_is_better(group, key, way):
    assert better(group, key) == way


def test_the_html_table_has_a_better_column():
    page = _metrics_table(RESULT)
    assert "<th>better</th>" in page
    assert (
        "judge_detect_rate_target</td><td class=num>0.1</td><td class=num>1</td><td title='lower is better'>↓ lower"
        in page
    )
    assert (
        "judge_acc_specificity</td><td class=num>0.9</td><td class=num></td><td title='higher is better'>↑ higher"
        in page
    )


def test_the_evaluate_summary_and_the_demo_table_say_which_way_is_better(monkeypatch):
    monkeypatch.setattr(demo.console, "width", 160)
    monkeypatch.setattr(eval_cli.console, "width", 160)
    with eval_cli.console.capture() as captured:
        eval_cli._summary(RESULT)
    text = captured.get()
    assert "better" in text and "↓ lower" in text and "↑ higher" in text
    line = next(line for line in text.splitlines() if "something_new" in line)  # an undefined score: blank
    assert "None" not in line
    metrics = {"efficacy": {"judge_detect_rate_target": 0.0}, "generality": {"judge_detect_rate_generality": 0.0},
               "specificity": {"judge_acc_specificity": 1.0}, "quality": {"mace_h_o": 1.0}}  # fmt: skip
    with demo.console.capture() as captured:
        demo.show([("rece", 0.1, {"metrics": metrics, "baseline": metrics}, "out/demo/report.html")])
    text = captured.get()
    assert "target prompts ↓" in text and "other styles correct ↑" in text and "H_o ↑" in text
