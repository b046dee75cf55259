from __future__ import annotations

import dataclasses

import pytest

from erasekit.attacks import available, get, register
from erasekit.attacks.derived import DerivedConfig
from erasekit.errors import ConfigError, ErasekitError, RegistryError, UnknownAttackError


def test_the_four_attacks_are_registered_with_frozen_configs():
    assert available() == ["derived", "discrete", "ringabell", "soft_prompt"]
    for name in available():
        spec = get(name)
        cfg = spec.config_cls()
        assert dataclasses.is_dataclass(cfg) and spec.summary
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.__setattr__(dataclasses.fields(cfg)[0].name, None)


def test_hyphen_and_underscore_name_the_same_attack():
    assert get("soft-prompt") is get("soft_prompt")


def test_unknown_attack_suggests_the_closest_name():
    with pytest.raises(UnknownAttackError, match="Did you mean 'ringabell'") as info:
        get("ring-a-bell")
    assert isinstance(info.value, ErasekitError) and isinstance(info.value, KeyError)
    assert "derived, discrete, ringabell, soft_prompt" in str(info.value)


def test_registering_a_name_twice_is_refused_and_leaves_the_registry_alone():
    before = get("derived")
    with pytest.raises(RegistryError, match="already registered"):
        register("derived", DerivedConfig)(lambda request, cfg, progress=None: None)
    assert get("derived") is before


@pytest.mark.parametrize(
    ("name", "bad"),
    [("derived", {"reg_lamb": 0.0}), ("soft_prompt", {"k": 0}), ("discrete", {"lr": -1.0}),
     ("ringabell", {"mutation_rate": 1.5}), ("ringabell", {"search": "beam"})],
)  # fmt: skip
def test_bad_hyper_parameters_are_config_errors(name, bad):
    from erasekit.config import make_config

    with pytest.raises(ConfigError):
        make_config(get(name).config_cls, bad)
