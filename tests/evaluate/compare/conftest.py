"""What the compare tests share: a finished row as compare writes it, and a toy method in a registry of its own."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from erasekit import methods
from erasekit.errors import UnknownMethodError
from erasekit.evaluate import compare
from erasekit.registry import Registry


@pytest.fixture
def fake_row():
    def make(scenario: str, method: str, asr: float, specificity: float = 1.0) -> dict:
        scores = {"efficacy": 0.1, "generality": 0.2, "specificity": specificity, "H_o": 0.9}
        original = {"efficacy": 1.0, "generality": 0.9, "specificity": 1.0, "H_o": 0.0}
        thumb = {"uri": "data:image/png;base64,AAAA", "success": True, "prompt": "a <b> prompt"}
        return {"scenario": scenario, "method": method, "concepts": ["van gogh"], "attacked": ["van gogh"],
                **scores, "original": original, **{f"asr_{a}": asr for a in compare.ATTACKS}, "edit_s": 0.0123,
                "edit_bytes": 2_500_000, "row_s": 1.0, "report": f"rows/{scenario}/{method}/eval/report.html",
                "thumbs": {"original": {"uri": "data:image/png;base64,AAAA"}, "soft_prompt": thumb}}  # fmt: skip

    return make


@dataclass(frozen=True)
class ToyConfig:
    mode: str = "a"
    strength: float = 1.0


def toy(request, cfg):
    """A toy method: no preserve term, two variants, gentle settings for styles."""
    raise AssertionError("the toy method is never run")


@pytest.fixture
def toy_registry(monkeypatch):
    """The method registry with a toy method added (``toy-a`` and ``toy-b``), for this test only."""
    registry = Registry("method", UnknownMethodError)
    for name in methods.available():
        registry.add(name, methods.get(name))
    monkeypatch.setattr(methods, "REGISTRY", registry)
    methods.register(
        "toy",
        ToyConfig,
        settings={"gentle": {"strength": 0.5}},
        takes_preserve=False,
        settings_by_kind={"style": "gentle"},
        variants={"toy-a": {"mode": "a"}, "toy-b": {"mode": "b"}},
    )(toy)
    return registry
