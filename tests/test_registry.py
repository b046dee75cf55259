from __future__ import annotations

import pytest

from erasekit.errors import ErasekitError, RegistryError, UnknownNameError, UnknownWorldError
from erasekit.registry import Registry


def test_entries_by_name_and_duplicates_refused():
    reg: Registry[int] = Registry("world", UnknownWorldError)
    reg.add("embedded", 1)
    assert reg.get("embedded") == 1 and "embedded" in reg and reg.names() == ["embedded"] and len(reg) == 1
    with pytest.raises(RegistryError, match="A world named 'embedded' is already registered"):
        reg.add("embedded", 2)
    assert reg.get("embedded") == 1


def test_unknown_names_get_the_closest_and_the_kind():
    reg: Registry[int] = Registry("world", UnknownWorldError)
    for name in ("embedded", "tiny-sd1", "tiny-sd2"):
        reg.add(name, 0)
    with pytest.raises(
        UnknownWorldError, match=r"Unknown world 'tiny-sd3'\. Did you mean 'tiny-sd[12]' or 'tiny-sd[12]'"
    ) as e:
        reg.get("tiny-sd3")
    assert (
        isinstance(e.value, UnknownNameError) and isinstance(e.value, ErasekitError) and isinstance(e.value, KeyError)
    )
    assert str(e.value).startswith("Unknown")  # not KeyError's quoted repr
    with pytest.raises(UnknownWorldError, match="Available: embedded, tiny-sd1, tiny-sd2"):
        reg.get("zzz")


def test_normalised_names():
    reg: Registry[int] = Registry("attack", UnknownWorldError, normalize=lambda n: n.replace("-", "_"))
    reg.add("soft_prompt", 3)
    assert reg.get("soft-prompt") == 3 and "soft-prompt" in reg
