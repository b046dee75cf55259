"""One row: method specs read from the registry, the settings and preserve set a row runs with, budgets."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

import erasekit.attacks
from erasekit import methods
from erasekit.errors import ConfigError, UnknownMethodError
from erasekit.evaluate import compare
from erasekit.evaluate.compare import rows


def test_method_specs_name_a_method_its_settings_and_overrides():
    assert compare.parse_method("uce") == compare.MethodSpec("uce", "uce", {}, None)
    assert compare.parse_method("esd-x") == compare.MethodSpec("esd-x", "esd", {"variant": "x"}, None)
    assert compare.parse_method("esd-u:iterations=10").overrides == {"variant": "u", "iterations": "10"}
    rece = compare.parse_method("rece:epochs=5,reg_lamb=0.1")
    assert (rece.method, rece.overrides, rece.settings) == ("rece", {"epochs": "5", "reg_lamb": "0.1"}, None)
    assert compare.parse_method("rece:settings=nudity").settings == "nudity"


def test_preset_is_the_old_spelling_of_settings():
    with pytest.warns(DeprecationWarning, match="settings="):
        spec = compare.parse_method("rece:preset=nudity")
    assert (spec.label, spec.settings, spec.overrides) == ("rece:preset=nudity", "nudity", {})
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match="disagree"):
        compare.parse_method("rece:settings=style,preset=nudity")


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
    assert compare.variants() == {"esd-x": ("esd", {"variant": "x"}), "esd-u": ("esd", {"variant": "u"})}


@pytest.mark.parametrize(
    ("spec", "scenario", "settings"),
    [
        ("rece", "style", "style"),
        ("rece", "object", "object-hard"),
        ("rece", "unsafe", "nudity"),
        ("rece", "multi10", "object-hard"),  # its most common kind: 4 objects of 10 concepts
        ("rece", "red", "object-easy"),
        ("rece:settings=unsafe", "style", "unsafe"),
        ("esd-x", "style", "lora"),  # ESD's default settings
        ("uce", "style", None),
    ],
)
def test_a_row_runs_with_the_settings_the_method_declares_for_the_scenarios_kind(spec, scenario, settings):
    assert compare.settings_for(compare.parse_method(spec), compare.scenario(scenario)) == settings


@pytest.fixture
def erased(monkeypatch):
    """rows.erase replaced by a fake that records its arguments and writes an empty file."""
    calls = []

    def fake(pipe, concepts, method, *, preserve, settings, **overrides):
        calls.append({"method": method, "preserve": preserve, "settings": settings, "overrides": overrides})
        return SimpleNamespace(save=lambda path: path.write_bytes(b""))

    monkeypatch.setattr(rows, "erase", fake)
    return calls


def test_a_method_without_a_preserve_term_gets_no_preserve_set(tmp_path, erased, toy_registry):
    sc = compare.scenario("van gogh")
    assert methods.get("toy").takes_preserve is False
    rows.erase_once(None, sc, compare.parse_method("toy-b"), tmp_path / "toy.safetensors")
    rows.erase_once(None, sc, compare.parse_method("esd-x"), tmp_path / "esd.safetensors")
    rows.erase_once(None, sc, compare.parse_method("uce"), tmp_path / "uce.safetensors")
    assert erased[0] == {"method": "toy", "preserve": [], "settings": "gentle", "overrides": {"mode": "b"}}
    assert erased[1]["preserve"] == [] and erased[1]["settings"] == "lora"
    assert erased[2]["preserve"] == compare.preserve_set(sc) != []
    rows.erase_once(None, sc, compare.parse_method("uce"), tmp_path / "uce.safetensors")
    assert len(erased) == 3  # an edit already made is not made again


def test_only_the_attacks_that_take_a_budget_get_one(monkeypatch):
    budgets = {}

    def fake(pipe, name, concept, *, budget, **kwargs):
        budgets[name] = budget
        image = Image.new("RGB", (8, 8))
        case = SimpleNamespace(outcome=None, image=image, success=False, case=SimpleNamespace(prompt="p"))
        return SimpleNamespace(asr=0.5, cases=[case])

    monkeypatch.setattr(erasekit.attacks, "attack", fake)
    settings = compare.Settings(n_prompts=2, budget=3)
    for name in settings.attacks:
        out = rows._attack(None, None, compare.scenario("van gogh"), None, name, "van gogh", settings)
        assert out["asr"] == 0.5 and out["thumb"]["prompt"] == "p"
    assert budgets == {a: 3 if erasekit.attacks.get(a).budgeted else None for a in settings.attacks}
    assert budgets["soft_prompt"] == budgets["discrete"] == 3 and budgets["derived"] is None
