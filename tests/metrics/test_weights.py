import dataclasses

import pytest

from erasekit.errors import ConfigError, MissingWeightsError
from erasekit.metrics import WEIGHTS, resolve_weights


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for spec in WEIGHTS.values():
        monkeypatch.delenv(spec.env, raising=False)


def test_explicit_path_wins(tmp_path):
    f = tmp_path / "alex.pth"
    f.write_bytes(b"x")
    assert resolve_weights("alexnet", f) == f


def test_environment_variable_is_used(tmp_path, monkeypatch):
    f = tmp_path / "inception.pt"
    f.write_bytes(b"x")
    monkeypatch.setenv("ERASEKIT_INCEPTION", str(f))
    assert resolve_weights("inception") == f


@pytest.mark.parametrize("name", sorted(WEIGHTS))
def test_missing_weights_say_what_where_and_how(name, tmp_path, monkeypatch):
    spec = WEIGHTS[name]
    monkeypatch.setitem(WEIGHTS, name, dataclasses.replace(spec, candidates=lambda: [tmp_path / "nothing-here"]))
    with pytest.raises(MissingWeightsError) as err:
        resolve_weights(name)
    message = str(err.value)
    assert spec.env in message and f"--weights {name}=PATH" in message
    assert "nothing-here" in message and "never downloads" in message
    assert isinstance(err.value, FileNotFoundError)


def test_a_given_path_that_does_not_exist_is_not_silently_replaced(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"given path .*typo"):
        resolve_weights("lpips", tmp_path / "typo.pth")


def test_env_path_that_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("ERASEKIT_CLIP", str(tmp_path / "gone"))
    with pytest.raises(MissingWeightsError, match=r"\$ERASEKIT_CLIP path"):
        resolve_weights("clip")


def test_unknown_judge():
    with pytest.raises(ConfigError, match="unknown judge weights 'dino'"):
        resolve_weights("dino")
