"""What the compare tests share: a finished row as compare writes it, and a toy method in a registry of its own."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from erasekit import methods
from erasekit.errors import UnknownMethodError
from erasekit.metrics.intervals import Rate
from erasekit.registry import Registry

ATTACKS = ("derived", "soft_prompt")  # the attacks of the fake rows


def rate(value: float, n: int = 16) -> dict:
    return Rate.of(value, n).as_json()


@pytest.fixture
def fake_row():
    def make(scenario: str, method: str, asr: float, specificity: float = 1.0, n: int = 16) -> dict:
        scores = {"efficacy": 0.125, "generality": 0.25, "specificity_kept": specificity, "specificity_unseen": 1.0}
        original = {"efficacy": 1.0, "generality": 0.875, "specificity_kept": 1.0, "specificity_unseen": 1.0}
        thumb = {"uri": "data:image/png;base64,AAAA", "success": True, "prompt": "a <b> prompt"}
        metrics = {**{k: rate(v, n) for k, v in scores.items()}, **{f"asr.{a}": rate(asr, n) for a in ATTACKS}}
        return {"scenario": scenario, "method": method, "concepts": ["van gogh"], "attacked": ["van gogh"],
                "metrics": metrics, "original": {k: rate(v, n) for k, v in original.items()}, "H_o": 0.9,
                "original_H_o": 0.0, "edit_s": 0.0123, "edit_bytes": 2_500_000, "row_s": 1.0,
                "attack_s": {a: 1.0 for a in ATTACKS}, "report": f"rows/{scenario}/{method}/eval/report.html",
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
