"""The table, its notes and goals, and the HTML page, from finished rows: every rate with its interval and n."""

from __future__ import annotations

import pytest

from erasekit.errors import ConfigError
from erasekit.evaluate import compare
from erasekit.evaluate.compare.report import Goal, markdown, rate_text, report_html, verdicts

from .conftest import ATTACKS, rate

SETTINGS = compare.Settings(n_prompts=2, attack_seeds=1, attacks=ATTACKS)
GOALS = [Goal.parse(g) for g in ("rece<uce", "ace<uce", "ace<rece@soft_prompt")]


def test_a_rate_prints_its_value_interval_and_sample_size():
    assert rate_text({"value": 0.0, "ci": [0.0, 0.2775], "n": 10}) == "0.00 [0.00, 0.28] n=10"
    assert rate_text({"value": None, "ci": [0.0, 1.0], "n": 0}) == "– n=0"


def test_the_markdown_table_has_the_original_model_then_each_method_and_the_goals(fake_row):
    rows = [fake_row("style", "uce", 1.0), fake_row("style", "rece", 0.0), fake_row("style", "ace", 0.5, 0.5)]
    rows[1]["settings"] = "style"
    text = markdown(rows, SETTINGS, command="erasekit compare -o out/x", goals=GOALS)
    lines = text.splitlines()
    assert lines[0].startswith("| scenario | method | efficacy ↓") and "specificity unseen ↑" in lines[0]
    assert "ASR soft_prompt ↓" in lines[0] and "**Quick run**" not in text
    assert lines[2].startswith("| style | *original model* | 1.00 [0.81, 1.00] n=16 | 0.88 [0.64, 0.97] n=16 |")
    assert lines[3].startswith("| style | uce | 0.12 [0.03, 0.36] n=16 |") and lines[3].endswith("| 0.0123 | 2.4 MB |")
    assert "Made by `erasekit compare -o out/x`." in text and "95% Wilson interval" in text
    assert "`style`: van gogh; settings: rece `style`." in text
    assert "- style, rece vs uce: met" in text  # 0/16 vs 16/16: the intervals are apart
    assert "- style, ace vs uce: not met" in text and "specificity lost: specificity_kept" in text
    assert "- style, ace vs rece under soft_prompt: not met (0.50 [0.28, 0.72] n=16 vs 0.00" in text
    assert verdicts(rows[:1], ATTACKS, GOALS) == []
    assert "Goals" not in markdown(rows, SETTINGS)  # goals are the caller's; none by default


def test_a_summary_says_beats_only_where_the_intervals_do_not_overlap(fake_row):
    close = [fake_row("style", "uce", 0.5, n=8), fake_row("style", "rece", 0.0, n=8)]  # 0/8 vs 4/8: overlap
    assert "- style, rece vs uce: not met" in "\n".join(verdicts(close, ATTACKS, GOALS))
    apart = [fake_row("style", "uce", 0.5, n=64), fake_row("style", "rece", 0.0, n=64)]
    assert "- style, rece vs uce: met" in "\n".join(verdicts(apart, ATTACKS, GOALS))


def test_a_quick_run_says_so_everywhere(fake_row):
    quick = compare.Settings.tier(quick=True, attacks=ATTACKS)
    assert (quick.n_prompts, quick.attack_seeds) == (8, 1)
    assert markdown([fake_row("style", "uce", 0.5)], quick).startswith("**Quick run** (`--quick`)")
    assert "<p class=quick>Quick run" in report_html([fake_row("style", "uce", 0.5)], quick)


def test_goals_are_written_method_less_than_other_with_an_optional_attack():
    assert Goal.parse(" rece < uce ") == Goal("rece", "uce")
    assert Goal.parse("rece:epochs=5<uce@derived") == Goal("rece:epochs=5", "uce", "derived")
    for bad in ("rece", "<uce", "rece<", "a<b<c"):
        with pytest.raises(ConfigError, match="METHOD<OTHER"):
            Goal.parse(bad)


def test_a_goal_on_an_attack_not_run_is_skipped(fake_row):
    rows = [fake_row("style", "uce", 0.5), fake_row("style", "rece", 0.25)]
    assert verdicts(rows, ("derived",), [Goal("rece", "uce", "soft_prompt")]) == []


def test_the_html_report_links_each_row_shows_intervals_and_escapes_text(fake_row):
    page = report_html([fake_row("style", "uce", 0.5)], SETTINGS)
    assert '<a href="rows/style/uce/eval/report.html">uce</a>' in page
    assert "<td class=num>0.50 [0.28, 0.72] n=16</td>" in page
    assert 'class=bad title="soft_prompt: a &lt;b&gt; prompt"' in page
    assert "<b> prompt" not in page


def test_the_html_report_shows_readable_captioned_images_a_legend_and_a_list_of_goals(fake_row):
    rows = [fake_row("style", "uce", 1.0), fake_row("style", "rece", 0.0)]
    rows[1]["thumbs"]["soft_prompt"] = {**rows[1]["thumbs"]["soft_prompt"], "success": False}
    page = report_html(rows, SETTINGS, goals=GOALS)
    assert "img{width:96px;height:96px" in page  # was 48 px
    assert "<figcaption>soft_prompt: back</figcaption>" in page and "<figcaption>soft_prompt: held</figcaption>" in page
    assert "<figcaption>original</figcaption>" in page
    legend = page[page.index("<p class=legend>") : page.index("<table>")]  # visible, above the table
    assert "red border</span>: the attack brought the concept back" in legend and "green border" in legend
    assert "each attack's image" in legend
    assert "<ul class=goals><li>style, rece vs uce: met" in page and "<p>- " not in page


def test_a_scenario_of_several_concepts_gets_a_table_per_concept(fake_row):
    rows = [fake_row("multi", "uce", 1.0), fake_row("multi", "ace", 0.5), fake_row("style", "uce", 1.0)]
    for row, church in zip(rows[:2], (0.75, 0.0)):
        row["concepts"] = ["church", "red"]
        row["by_concept"] = {"church": {"efficacy": rate(church), "generality": rate(0.25)},
                             "red": {"efficacy": rate(0.0)}}  # fmt: skip
        row["original_by_concept"] = {c: {"efficacy": rate(1.0), "generality": rate(1.0)} for c in ("church", "red")}
    text = markdown(rows, SETTINGS)
    assert "`multi` concept by concept" in text and "`style` concept by concept" not in text
    assert "| concept | *original model* | uce | ace |" in text
    assert "| church | 1.00 [0.81, 1.00] n=16 / 1.00 [0.81, 1.00] n=16 | 0.75 [0.51, 0.90] n=16 / 0.25" in text
    assert "| red | 1.00 [0.81, 1.00] n=16 / 1.00 [0.81, 1.00] n=16 | 0.00 [0.00, 0.19] n=16 / – |" in text
    del rows[0]["by_concept"]  # a row from before compare kept them
    assert "| concept | *original model* | ace |" in markdown(rows, SETTINGS)
    page = report_html(rows, SETTINGS)
    assert "multi concept by concept" in page and "<th>original model</th><th>ace</th>" in page
    assert "<td>church</td><td>1.00 [0.81, 1.00] n=16 / 1.00 [0.81, 1.00] n=16</td>" in page
