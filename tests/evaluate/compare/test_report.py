"""The table, its notes and goals, and the HTML page, from finished rows."""

from __future__ import annotations

import pytest

from erasekit.errors import ConfigError
from erasekit.evaluate import compare
from erasekit.evaluate.compare.report import Goal, markdown, report_html, verdicts

SETTINGS = compare.Settings(n_prompts=2, budget=3)
GOALS = [Goal.parse(g) for g in ("rece<uce", "ace<uce", "ace<rece@soft_prompt")]


def test_the_markdown_table_has_the_original_model_then_each_method_and_the_goals(fake_row):
    rows = [fake_row("style", "uce", 0.5), fake_row("style", "rece", 0.25), fake_row("style", "ace", 0.0, 0.9)]
    rows[1]["settings"] = "style"
    text = markdown(rows, SETTINGS, command="erasekit compare -o out/x", goals=GOALS)
    lines = text.splitlines()
    assert lines[0].startswith("| scenario | method | efficacy ↓") and "ASR soft_prompt ↓" in lines[0]
    assert lines[2] == "| style | *original model* | 1.00 | 0.90 | 1.00 | 0.00 | – | – | – | – | – | – |"
    assert lines[3] == "| style | uce | 0.10 | 0.20 | 1.00 | 0.90 | 0.50 | 0.50 | 0.50 | 0.50 | 0.0123 | 2.4 MB |"
    assert "Made by `erasekit compare -o out/x`." in text
    assert "`style`: van gogh; settings: rece `style`." in text
    assert "- style, rece vs uce: met" in text
    assert "- style, ace vs uce: not met" in text and "specificity lost 0.10" in text  # 10 points lost
    assert "- style, ace vs rece under soft_prompt: met (0.00 vs 0.25)" in text
    assert verdicts(rows[:1], compare.ATTACKS, GOALS) == []
    assert "Goals" not in markdown(rows, SETTINGS)  # goals are the caller's; none by default


def test_goals_are_written_method_less_than_other_with_an_optional_attack():
    assert Goal.parse(" rece < uce ") == Goal("rece", "uce")
    assert Goal.parse("rece:epochs=5<uce@derived") == Goal("rece:epochs=5", "uce", "derived")
    for bad in ("rece", "<uce", "rece<", "a<b<c"):
        with pytest.raises(ConfigError, match="METHOD<OTHER"):
            Goal.parse(bad)


def test_a_goal_on_an_attack_not_run_is_skipped(fake_row):
    rows = [fake_row("style", "uce", 0.5), fake_row("style", "rece", 0.25)]
    settings = compare.Settings(n_prompts=2, budget=3, attacks=("derived",))
    assert verdicts(rows, settings.attacks, [Goal("rece", "uce", "soft_prompt")]) == []


def test_the_html_report_links_each_row_and_escapes_text(fake_row):
    page = report_html([fake_row("style", "uce", 0.5)], SETTINGS)
    assert '<a href="rows/style/uce/eval/report.html">uce</a>' in page
    assert 'class=bad title="soft_prompt: a &lt;b&gt; prompt"' in page
    assert "<b> prompt" not in page


def test_the_html_report_shows_readable_captioned_images_a_legend_and_a_list_of_goals(fake_row):
    rows = [fake_row("style", "uce", 0.5), fake_row("style", "rece", 0.25)]
    rows[1]["thumbs"]["soft_prompt"] = {**rows[1]["thumbs"]["soft_prompt"], "success": False}
    page = report_html(rows, SETTINGS, goals=GOALS)
    assert "img{width:96px;height:96px" in page  # was 48 px
    assert "<figcaption>soft_prompt: back</figcaption>" in page and "<figcaption>soft_prompt: held</figcaption>" in page
    assert "<figcaption>original</figcaption>" in page
    legend = page[page.index("<p class=legend>") : page.index("<table>")]  # visible, above the table
    assert "red border</span>: the attack brought the concept back" in legend and "green border" in legend
    assert "each attack's image" in legend
    assert "<ul class=goals><li>style, rece vs uce: met" in page and "<p>- " not in page
