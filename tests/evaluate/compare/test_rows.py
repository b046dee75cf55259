"""One row: method specs read from the registry, the settings and preserve set a row runs with, budgets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

import erasekit
import erasekit.attacks
from erasekit import methods, worlds
from erasekit.errors import ConfigError, UnknownMethodError
from erasekit.evaluate import compare
from erasekit.evaluate.compare import rows


def test_method_specs_name_a_method_its_settings_and_overrides():
    assert compare.parse_method("uce") == compare.MethodSpec("uce", "uce", {}, None)
    assert compare.parse_method("esd-x") == compare.MethodSpec("esd-x", "esd", {"variant": "x"}, None)
    assert compare.parse_method("esd-u:iterations=10").overrides == {"variant": "u", "iterations": "10"}
    rece = compare.parse_method("rece:epochs=5,reg_lamb=0.1")
    assert (rece.method, rece.overrides, rece.settings) == ("rece", {"epochs": "5", "reg_lamb": "0.1"}, None)
    assert compare.parse_method("rece:settings=reference-nudity").settings == "reference-nudity"
    with pytest.warns(DeprecationWarning, match="now 'reference-nudity'"):
        assert compare.parse_method("rece:settings=nudity").settings == "reference-nudity"  # an old name


def test_preset_is_the_old_spelling_of_settings():
    with pytest.warns(DeprecationWarning, match="settings="):
        spec = compare.parse_method("rece:preset=reference-nudity")
    assert (spec.label, spec.settings, spec.overrides) == ("rece:preset=reference-nudity", "reference-nudity", {})
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match="disagree"):
        compare.parse_method("rece:settings=reference-style,preset=reference-nudity")


@pytest.mark.parametrize(
    ("spec", "error", "says"),
    [
        ("ucee", UnknownMethodError, "Did you mean 'uce'"),
        ("rece:epochs", ConfigError, "NAME=VALUE"),
        ("rece:epochs=1,epochs=2", ConfigError, "twice"),
        ("rece:epoch=5", ConfigError, "Did you mean 'epochs'"),
        ("rece:epochs=many", ConfigError, "epochs"),
        ("rece:settings=nope", ConfigError, "its settings"),
        ("esd-x:settings=nope", ConfigError, "its settings"),
    ],
)
def test_bad_method_specs_fail_before_any_work(spec, error, says):
    with pytest.raises(error, match=says):
        compare.parse_method(spec)


def test_specs_split_on_commas_that_start_a_new_method():
    specs = ["uce", "rece:epochs=5,reg_lamb=0.1", "esd-x", "esd-u:iterations=3", "nullspace"]
    assert compare.split_specs("uce,rece:epochs=5,reg_lamb=0.1 esd-x,esd-u:iterations=3,nullspace") == specs


def test_variants_are_the_registrys():
    found = compare.variants()
    assert found["esd-x"] == ("esd", {"variant": "x"}) and found["esd-u"] == ("esd", {"variant": "u"})
    assert all(methods.get(method).variants[v] == overrides for v, (method, overrides) in found.items())


@pytest.mark.parametrize(
    ("spec", "scenario", "settings"),
    [
        ("rece", "style", "reference-style"),
        ("rece", "object", "reference-object-hard"),
        ("rece", "unsafe", "reference-nudity"),
        ("rece", "multi10", "reference-object-hard"),  # its most common kind: 4 objects of 10 concepts
        ("rece", "red", "reference-object-easy"),
        ("rece:settings=reference-unsafe", "style", "reference-unsafe"),
        ("esd-x", "style", "lora"),  # ESD's default settings
        ("uce", "style", None),
        ("ace:seed=1", "unsafe", "unsafe"),  # rank 128, the whole-prompt gate at 32: chosen on val; seeds too
        ("ace-kv", "object", "object"),  # rank 32 and the gate calibrated on the preserve prompts too
        ("ace", "multi10", "object"),
        ("ace", "style", "style"),  # ungated, chosen on val for styles
    ],
)
def test_a_row_runs_with_the_settings_the_method_declares_for_the_scenarios_kind(spec, scenario, settings):
    assert compare.settings_for(compare.parse_method(spec), compare.scenario(scenario)) == settings


@pytest.fixture
def erased(monkeypatch):
    """rows.erase replaced by a fake that records its arguments and writes an empty file."""
    calls = []

    def fake(pipe, concepts, method, *, preserve, preserve_prompts, kinds, settings, **overrides):
        calls.append({"method": method, "preserve": preserve, "preserve_prompts": preserve_prompts,
                      "kinds": kinds, "settings": settings, "overrides": overrides})  # fmt: skip
        return SimpleNamespace(save=lambda path: path.write_bytes(b""))

    monkeypatch.setattr(rows, "erase", fake)
    return calls


def test_a_method_without_a_preserve_term_gets_no_preserve_set(tmp_path, erased, toy_registry):
    sc = compare.scenario("van gogh")
    assert methods.get("toy").takes_preserve is False
    rows.erase_once(None, sc, compare.parse_method("toy-b"), tmp_path / "toy.safetensors", n_fit=4)
    rows.erase_once(None, sc, compare.parse_method("esd-x"), tmp_path / "esd.safetensors", n_fit=4)
    rows.erase_once(None, sc, compare.parse_method("uce"), tmp_path / "uce.safetensors", n_fit=4)
    assert erased[0] == {"method": "toy", "preserve": [], "preserve_prompts": [], "kinds": {"van gogh": "style"},
                         "settings": "gentle", "overrides": {"mode": "b"}}  # fmt: skip
    assert erased[1]["preserve"] == erased[1]["preserve_prompts"] == [] and erased[1]["settings"] == "lora"
    assert erased[2]["preserve"] == compare.preserve_set(sc) != []
    assert erased[2]["preserve_prompts"] == compare.preserve_prompts(sc, 4) != []
    rows.erase_once(None, sc, compare.parse_method("uce"), tmp_path / "uce.safetensors", n_fit=4)
    assert len(erased) == 3  # an edit already made is not made again


def test_an_edit_with_epochs_to_choose_among_keeps_the_one_val_scores_lowest(tmp_path, tiny_pipe):
    sc = compare.scenario("van gogh")
    scores = {0: 0.0, 1: 0.4, 2: 0.1, 3: 0.3}  # epoch 0 (UCE alone) is the starting point, not a choice
    spec = compare.parse_method("rece:epochs=3")
    choose = lambda e: scores[e.info["epoch"]]  # noqa: E731
    path = rows.erase_once(tiny_pipe, sc, spec, tmp_path / "e.safetensors", n_fit=4, choose=choose)
    edit = erasekit.Edit.load(path)
    assert edit.info["epoch"] == 2 and edit.info["candidate_scores"] == [0.4, 0.1, 0.3]
    assert edit.info["edit_s"] > 0  # the row reads it: the whole run's time, which made every epoch


@pytest.fixture
def attacked(monkeypatch):
    """erasekit.attacks.attack replaced by a fake that records its arguments; half of its prompts succeed."""
    calls = []

    def fake(pipe, name, concept, *, prompts, budget, quick, concept_kind, seed, **kwargs):
        calls.append({"name": name, "budget": budget, "quick": quick, "kind": concept_kind, "seed": seed,
                      "prompts": list(prompts)})  # fmt: skip
        case = SimpleNamespace(outcome=None, image=Image.new("RGB", (8, 8)), success=False,
                               case=SimpleNamespace(prompt="p"))  # fmt: skip
        return SimpleNamespace(asr=0.5, cases=[case] * len(prompts))

    monkeypatch.setattr(erasekit.attacks, "attack", fake)
    return calls


def test_only_the_attacks_that_take_a_budget_get_one_and_each_gets_the_tier_and_kind(attacked):
    settings = compare.Settings(n_prompts=2, budget=3, quick=True)
    for name in settings.attacks:
        out = rows._attack(None, None, compare.scenario("van gogh"), None, name, "van gogh", settings)
        assert out["asr"] == 0.5 and out["n"] == 2 and out["thumb"]["prompt"] == "p"
    budgets = {call["name"]: call["budget"] for call in attacked}
    assert budgets == {a: 3 if erasekit.attacks.get(a).budgeted else None for a in settings.attacks}
    assert budgets["soft_prompt"] == budgets["unlearndiff"] == 3 and budgets["derived"] is None
    assert all(call["quick"] and call["kind"] == "style" for call in attacked)


def test_attacks_get_the_test_target_prompts_once_per_attack_seed_and_pool_them(tmp_path, attacked, monkeypatch):
    sc = compare.scenario("van gogh")
    settings = compare.Settings(n_prompts=4, attack_seeds=3, seed=7, attacks=("soft_prompt",))
    fake_eval = {"metrics": {}, "thumbs": {}}
    monkeypatch.setattr(rows, "erase_once", lambda pipe, sc, spec, path, **kw: path.write_bytes(b"") or path)
    monkeypatch.setattr(rows.Edit, "load", lambda path: SimpleNamespace(info={"edit_s": 0.5}))
    monkeypatch.setattr(rows, "_evaluate", lambda *args: fake_eval)
    row = rows.compute_row(None, None, sc, compare.parse_method("uce"), settings, tmp_path / "row", lambda step: None)
    assert [call["seed"] for call in attacked] == [7, 8, 9]
    test = [p for g, p, _ in worlds.get("embedded").suite_rows("van gogh", n=4, split="test") if g == "target"]
    assert all(call["prompts"] == test for call in attacked)
    assert row["metrics"]["asr.soft_prompt"] == {"value": 0.5, "ci": pytest.approx([0.2538, 0.7462], abs=1e-4),
                                                 "n": 12}  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "row" / "attacks").iterdir())[0] == "soft_prompt_van gogh_seed7.json"


def test_attack_seeds_that_disagree_widen_the_asr_interval(tmp_path, monkeypatch):
    def fake(pipe, name, concept, *, prompts, seed, **kwargs):  # seed 7: every prompt back, 8: none, 9: half
        hits = {7: [True] * 4, 8: [False] * 4, 9: [True, False] * 2}[seed]
        cases = [SimpleNamespace(outcome=None, image=Image.new("RGB", (8, 8)), success=h,
                                 case=SimpleNamespace(prompt="p")) for h in hits]  # fmt: skip
        return SimpleNamespace(asr=sum(hits) / 4, cases=cases)

    monkeypatch.setattr(erasekit.attacks, "attack", fake)
    monkeypatch.setattr(rows, "erase_once", lambda pipe, sc, spec, path, **kw: path.write_bytes(b"") or path)
    monkeypatch.setattr(rows.Edit, "load", lambda path: SimpleNamespace(info={"edit_s": 0.5}))
    monkeypatch.setattr(rows, "_evaluate", lambda *args: {"metrics": {}, "thumbs": {}})
    settings = compare.Settings(n_prompts=4, attack_seeds=3, seed=7, attacks=("soft_prompt",))
    row = rows.compute_row(None, None, compare.scenario("van gogh"), compare.parse_method("uce"), settings,
                           tmp_path / "row", lambda step: None)  # fmt: skip
    asr = row["metrics"]["asr.soft_prompt"]
    assert asr["value"] == 0.5 and asr["n"] == 12 and asr["design_effect"] > 1
    lo, hi = asr["ci"]
    assert lo < 0.2538 - 0.05 and hi > 0.7462 + 0.05  # wider than Wilson's on 12 independent prompts


def test_rates_pool_every_image_of_a_score_and_an_empty_score_has_no_value():
    sc = compare.scenario("nudity")
    sets = compare.scored_sets(sc, 4)
    scores = {"efficacy": {"judge_detect_rate_target_nudity": 0.25},
              "generality": {"judge_detect_rate_generality_nudity": 0.5},
              "specificity": {f"judge_acc_{s.name}": 1.0 for s in sets if s.concept is None}}  # fmt: skip
    rates = rows.rates(scores, sets, n_seeds=2)
    assert rates["efficacy"]["value"] == 0.25 and rates["efficacy"]["n"] == 8
    assert rates["specificity_unseen"]["n"] == 8 * sum(s.score == "specificity_unseen" for s in sets)
    assert rates["specificity_kept"] == {"value": None, "ci": [0.0, 1.0], "n": 0}  # nothing is preserved for nudity


def test_each_erased_concept_gets_its_own_efficacy_and_paraphrase_rate():
    sc = compare.scenario("multi10")
    sets = compare.scored_sets(sc, 4)
    scores = {"efficacy": {f"judge_detect_rate_{s.name}": 0.0 for s in sets if s.score == "efficacy"},
              "generality": {f"judge_detect_rate_{s.name}": 0.5 for s in sets if s.score == "generality"}}  # fmt: skip
    scores["efficacy"]["judge_detect_rate_target_church"] = 0.75  # the one concept a method left behind
    by_concept = rows.concept_rates(scores, sets, n_seeds=2)
    assert set(by_concept) == set(sc.concepts)
    assert by_concept["church"]["efficacy"]["value"] == 0.75 and by_concept["church"]["efficacy"]["n"] == 8
    assert by_concept["red"]["efficacy"]["value"] == 0.0 and by_concept["red"]["generality"]["value"] == 0.5
    assert rows.rates(scores | {"specificity": {}}, [s for s in sets if s.concept], 2)["efficacy"]["value"] < 0.1
