"""``erasekit.erase``: what it accepts and how it refuses the rest."""

from __future__ import annotations

import pytest

import erasekit
from erasekit.errors import ConfigError, UnknownMethodError


def test_one_string_is_one_name(tiny_pipe):
    edit = erasekit.erase(tiny_pipe, "van gogh", preserve="monet")
    assert edit.concepts == ["van gogh"] and edit.preserve == ["monet"]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (dict(concepts=None), ConfigError, "concepts must be a string or a list"),
        (dict(concepts=[]), ConfigError, "No concepts given"),
        (dict(concepts=["dog", 3]), ConfigError, "must be strings"),
        (dict(method=None), ConfigError, "method must be a method name"),
        (dict(method="rcee"), UnknownMethodError, "Did you mean 'rece'"),
        (dict(preserve=["dog"]), ConfigError, r"\['dog'\] is both erased and preserved"),
        (dict(settings="nope", method="rece"), ConfigError, "has no settings 'nope'"),
    ],
)
def test_bad_arguments(tiny_pipe, kwargs, error, words):
    args = {"concepts": ["dog"], **kwargs}
    with pytest.raises(error, match=words):
        erasekit.erase(tiny_pipe, args.pop("concepts"), **args)


def test_preset_is_the_deprecated_name_of_settings(tiny_pipe):
    with pytest.warns(DeprecationWarning, match="settings="):
        edit = erasekit.erase(tiny_pipe, ["dog"], method="rece", preset="style")
    assert edit.info["settings"] == "style" and edit.config["reg_lamb"] == 1e-3
