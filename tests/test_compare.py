"""``erasekit compare``: method specs, scenarios, the rendered table, and resuming without recomputing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from erasekit.cli import app
from erasekit.errors import ConfigError, OutputExistsError, UnknownMethodError
from erasekit.evaluate import compare
from erasekit.evaluate.compare.report import goals, markdown, report_html
from erasekit.worlds import embedded

SETTINGS = compare.Settings(n_prompts=2, budget=3)


def test_method_specs_name_a_method_its_preset_and_overrides():
    assert compare.parse_method("uce") == compare.MethodSpec("uce", "uce", {}, None)
    assert compare.parse_method("esd-x") == compare.MethodSpec("esd-x", "esd", {"variant": "x"}, "lora")
    assert compare.parse_method("esd-u:iterations=10").overrides == {"variant": "u", "iterations": "10"}
    rece = compare.parse_method("rece:epochs=5,reg_lamb=0.1")
    assert (rece.method, rece.overrides, rece.preset) == ("rece", {"epochs": "5", "reg_lamb": "0.1"}, None)
    assert compare.parse_method("rece:preset=nudity").preset == "nudity"


@pytest.mark.parametrize(
    ("spec", "error", "says"),
    [
        ("ucee", UnknownMethodError, "Did you mean 'uce'"),
        ("rece:epochs", ConfigError, "KEY=VALUE"),
        ("rece:epoch=5", ConfigError, "Did you mean 'epochs'"),
        ("rece:epochs=many", ConfigError, "epochs"),
        ("rece:preset=nope", ConfigError, "its presets"),
    ],
)
def test_bad_method_specs_fail_before_any_work(spec, error, says):
    with pytest.raises(error, match=says):
        compare.parse_method(spec)


def test_specs_split_on_commas_that_start_a_new_method():
    specs = ["uce", "rece:epochs=5,reg_lamb=0.1", "esd-x", "esd-u:iterations=3", "nullspace"]
    assert compare.split_specs("uce,rece:epochs=5,reg_lamb=0.1 esd-x,esd-u:iterations=3,nullspace") == specs


def test_default_methods_are_the_registry_with_esd_as_its_two_variants():
    defaults = compare.default_methods()
    assert defaults[:5] == ["uce", "rece", "nullspace", "esd-x", "esd-u"] and "esd" not in defaults


def test_scenarios_are_named_or_any_concept_of_the_world():
    assert compare.scenario("style").concepts == ("van gogh",)
    car = compare.scenario("car")
    assert (car.concepts, car.attacked, car.rece_preset) == (("car",), ("car",), "object-hard")
    multi = compare.scenario("multi10")
    assert len(multi.concepts) == 10 and set(multi.attacked) < set(multi.concepts)
    assert multi.kinds == ["color", "object", "style", "unsafe"]
    with pytest.raises(ConfigError, match="multi10"):
        compare.scenario("starry night")


def test_the_preserve_set_is_what_is_left_of_the_erased_kinds():
    assert compare.preserve_set(["van gogh"]) == [s for s in embedded.concepts()["style"] if s != "van gogh"]
    assert compare.preserve_set(["nudity"]) == []
    multi = compare.SCENARIOS["multi10"].concepts
    kept = compare.preserve_set(multi)
    names = embedded.concepts()
    assert not set(kept) & set(multi)
    assert set(kept) == set(names["object"] + names["style"] + names["color"]) - set(multi)


def test_multi10_prompt_sets_score_every_concept_and_only_left_out_ones_for_specificity():
    sc = compare.SCENARIOS["multi10"]
    rows = compare.prompt_rows(sc, 3)
    sets: dict[str, list[tuple[str, str]]] = {}
    for group, prompt, shown in rows:
        sets.setdefault(group, []).append((prompt, shown))
    assert len(sets) == 2 * 10 + 4 and all(len(v) == 3 for v in sets.values())
    assert {shown for _, shown in sets["target_van_gogh"]} == {"van gogh"}
    specific = [shown for name, v in sets.items() if name.startswith("specificity") for _, shown in v]
    assert not set(specific) & set(sc.concepts)
    assert {shown for _, shown in sets["specificity_unsafe"]} == {"person"}  # clothed persons
    preset = compare.scenario_preset(sc, "prompts.csv")
    assert {spec.name for spec in preset.prompts} == set(sets) and preset.baseline


def fake_row(scenario: str, method: str, asr: float, specificity: float = 1.0) -> dict:
    scores = {"efficacy": 0.1, "generality": 0.2, "specificity": specificity, "H_o": 0.9}
    original = {"efficacy": 1.0, "generality": 0.9, "specificity": 1.0, "H_o": 0.0}
    thumb = {"uri": "data:image/png;base64,AAAA", "success": True, "prompt": "a <b> prompt"}
    return {"scenario": scenario, "method": method, "concepts": ["van gogh"], "attacked": ["van gogh"], **scores,
            "original": original, **{f"asr_{a}": asr for a in compare.ATTACKS}, "edit_s": 0.0123,
            "edit_bytes": 2_500_000, "row_s": 1.0, "report": f"rows/{scenario}/{method}/eval/report.html",
            "thumbs": {"original": {"uri": "data:image/png;base64,AAAA"}, "soft_prompt": thumb}}  # fmt: skip


def test_the_markdown_table_has_the_original_model_then_each_method_and_the_goals():
    rows = [fake_row("style", "uce", 0.5), fake_row("style", "rece", 0.25), fake_row("style", "ace", 0.0, 0.9)]
    text = markdown(rows, SETTINGS, command="erasekit compare -o out/x")
    lines = text.splitlines()
    assert lines[0].startswith("| scenario | method | efficacy ↓") and "ASR soft_prompt ↓" in lines[0]
    assert lines[2] == "| style | *original model* | 1.00 | 0.90 | 1.00 | 0.00 | – | – | – | – | – | – |"
    assert lines[3] == "| style | uce | 0.10 | 0.20 | 1.00 | 0.90 | 0.50 | 0.50 | 0.50 | 0.50 | 0.0123 | 2.4 MB |"
    assert "Made by `erasekit compare -o out/x`." in text
    assert "- style, rece vs uce: met" in text
    assert "- style, ace vs uce: not met" in text and "specificity lost 0.10" in text  # 10 points lost
    assert "- style, ace vs rece under soft_prompt: met (0.00 vs 0.25)" in text
    assert goals(rows[:1], compare.ATTACKS) == []


def test_the_html_report_links_each_row_and_escapes_text():
    page = report_html([fake_row("style", "uce", 0.5)], SETTINGS)
    assert '<a href="rows/style/uce/eval/report.html">uce</a>' in page
    assert 'class=bad title="soft_prompt: a &lt;b&gt; prompt"' in page
    assert "<b> prompt" not in page


@pytest.fixture
def counted(monkeypatch):
    """compute_row replaced by a fake that counts its calls; the world is never loaded."""
    calls = []

    def fake(pipe, judge, sc, spec, settings, folder, progress):
        progress("erase")
        calls.append(f"{spec.label}/{sc.name}")
        return fake_row(sc.name, spec.label, 0.5)

    monkeypatch.setattr(compare, "compute_row", fake)
    return calls


def test_finished_rows_are_not_computed_again(tmp_path, counted):
    kwargs = dict(out=tmp_path, methods=["uce", "rece"], scenarios=["style", "object"], settings=SETTINGS)
    progress = []
    rows = compare.run(**kwargs, only=["*/style"], progress=lambda *a: progress.append(a), world=lambda: (None, None))
    assert counted == ["uce/style", "rece/style"] and len(rows) == 2
    assert progress[0] == (0, 2 * (2 + 4), "uce / style: erase")
    rows = compare.run(**kwargs, world=lambda: (None, None))
    assert counted[2:] == ["uce/object", "rece/object"] and len(rows) == 4
    compare.run(**kwargs, world=lambda: pytest.fail("every row is done: nothing to load"))
    assert len(counted) == 4
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert [r["method"] for r in saved["rows"]] == ["uce", "rece", "uce", "rece"] and "thumbs" not in saved["rows"][0]
    assert "| object | rece |" in (tmp_path / "compare.md").read_text()
    assert (tmp_path / "report.html").is_file()


def test_a_folder_of_other_settings_is_refused(tmp_path, counted):
    compare.run(out=tmp_path, methods=["uce"], scenarios=["style"], settings=SETTINGS, world=lambda: (None, None))
    with pytest.raises(OutputExistsError, match="budget"):
        compare.run(out=tmp_path, methods=["uce"], scenarios=["style"], settings=compare.Settings(2, 4))


def test_cli_compare_reports_a_bad_method_before_loading_anything(tmp_path):
    result = CliRunner().invoke(app, ["compare", "--methods", "uce,esdx", "-o", str(tmp_path / "c")])
    assert result.exit_code == 2 and "Did you mean 'esd'" in result.output
    assert not (tmp_path / "c").exists()
