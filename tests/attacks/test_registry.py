from __future__ import annotations

import dataclasses

import pytest

from erasekit.attacks import QUICK, available, get, register
from erasekit.attacks.derived import DerivedConfig
from erasekit.config import make_config
from erasekit.errors import ConfigError, ErasekitError, RegistryError, UnknownAttackError

NAMES = ["derived", "derived_bounded", "p4d", "ringabell", "ringabell_embed", "soft_prompt", "unlearndiff"]


def test_the_attacks_are_registered_with_frozen_configs():
    assert available() == NAMES
    for name in available():
        spec = get(name)
        cfg = spec.config_cls()
        assert dataclasses.is_dataclass(cfg) and spec.summary
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.__setattr__(dataclasses.fields(cfg)[0].name, None)


def test_hyphen_and_underscore_name_the_same_attack():
    assert get("soft-prompt") is get("soft_prompt")
    assert get("ringabell-embed") is get("ringabell_embed") and get("derived-bounded") is get("derived_bounded")


def test_only_the_derived_embeddings_are_white_box():
    assert [n for n in available() if get(n).white_box] == ["derived", "derived_bounded"]
    assert "white-box" in get("derived").summary and "white-box" in get("derived_bounded").summary


def test_discrete_is_a_deprecated_name_of_unlearndiff():
    with pytest.warns(DeprecationWarning, match="'discrete' is now the attack 'unlearndiff'"):
        assert get("discrete") is get("unlearndiff")
    assert "discrete" not in available()


def test_the_full_strength_defaults_are_the_papers():
    assert get("unlearndiff").make_config() == get("p4d").make_config()
    cfg = get("unlearndiff").make_config()
    assert (cfg.k, cfg.steps, cfg.iterations) == (5, 2000, 40)  # 5 prefix tokens, 50 timesteps × 40 updates
    cfg = get("ringabell").make_config()
    assert (cfg.eta, cfg.length, cfg.population, cfg.steps) == (None, 16, 200, 3000)
    cfg = get("soft_prompt").make_config()
    assert (cfg.steps, cfg.batch_size, cfg.lr, cfg.train_images) == (5000, 16, 0.08, 25)
    assert not get("ringabell_embed").budgeted and get("ringabell").budgeted


def test_quick_lowers_the_budget_and_overrides_win():
    assert set(QUICK) <= set(available())
    for name in available():
        spec = get(name)
        quick, full = spec.make_config(quick=True), spec.make_config()
        assert all(getattr(quick, k) == v for k, v in QUICK.get(name, {}).items())
        if spec.budgeted:
            assert quick.steps < full.steps
    assert get("unlearndiff").make_config(quick=True, steps=7).steps == 7
    assert get("ringabell").make_config(eta="0.5").eta == 0.5  # parsed as --set gives it


@pytest.mark.parametrize("name", ["unlearndiff", "p4d", "ringabell", "soft_prompt"])
@pytest.mark.parametrize("steps", [0, -1])
def test_a_budget_of_zero_or_less_names_the_field_and_the_fix(name, steps):
    with pytest.raises(ConfigError, match=r"\.steps must be a whole number ≥ 1, got -?\d+: give a budget") as info:
        get(name).make_config(steps=steps)
    assert "--quick" in str(info.value) and "full strength" in str(info.value)


def test_unknown_attack_suggests_the_closest_name():
    with pytest.raises(UnknownAttackError, match="Did you mean 'ringabell'") as info:
        get("ring-a-bell")
    assert isinstance(info.value, ErasekitError) and isinstance(info.value, KeyError)
    assert ", ".join(NAMES) in str(info.value)


def test_registering_a_name_twice_is_refused_and_leaves_the_registry_alone():
    before = get("derived")
    with pytest.raises(RegistryError, match="already registered"):
        register("derived", DerivedConfig)(lambda request, cfg, progress=None: None)
    assert get("derived") is before


@pytest.mark.parametrize(
    ("name", "bad"),
    [("derived", {"reg_lamb": 0.0}), ("soft_prompt", {"k": 0}), ("soft_prompt", {"train_images": 0}),
     ("unlearndiff", {"lr": -1.0}), ("ringabell", {"mutation_rate": 1.5}), ("ringabell", {"population": 0}),
     ("ringabell_embed", {"search": "genetic"})],
)  # fmt: skip
def test_bad_hyper_parameters_are_config_errors(name, bad):
    with pytest.raises(ConfigError):
        make_config(get(name).config_cls, bad)
