"""The closed forms are unchanged by the "One house" restructure: fixtures saved before it, recomputed now.

The math is checked bit for bit: with the prompts encoded set by set, as before the restructure (a
custom encoder, which ``EraseRequest.prefetch`` leaves alone), every update equals the fixture exactly.
Through ``erase``'s default text encoder, every prompt set is now encoded in one batched pass, and the
float32 GEMMs of a larger batch round differently (one ulp of the token states, measured 6e-8): those
updates are held to 1e-6 relative.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import erasekit
from erasekit.text import TextEncoder

FIXTURES = Path(__file__).parents[1] / "fixtures" / "closed_form"
_spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make.py")
make = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make)


class SetBySet:
    """A pipeline's text encoder that encodes each prompt set on its own, as before the restructure."""

    def __init__(self, pipe):
        self._encoder = TextEncoder(pipe)
        self.max_length = self._encoder.max_length

    def __call__(self, texts):
        return self._encoder(texts)


@pytest.mark.parametrize("kind", ["sd1", "sd2", "sdxl"])
@pytest.mark.parametrize("case", sorted(make.CASES))
def test_closed_form_updates_are_bit_identical_to_fixtures(kind, case):
    expected = load_file(str(FIXTURES / f"{kind}_{case}.safetensors"))
    pipe = make.tiny_pipeline(kind)
    edit = erasekit.erase(pipe, ["van gogh", "a church"], encoder=SetBySet(pipe), **make.CASES[case])
    assert sorted(edit.updates) == sorted(expected)
    for layer, dW in expected.items():
        assert torch.equal(edit.delta(layer), dW), layer


@pytest.mark.parametrize("kind", ["sd1", "sd2", "sdxl"])
@pytest.mark.parametrize("case", sorted(make.CASES))
def test_one_batched_text_pass_moves_updates_by_rounding_only(kind, case):
    expected = load_file(str(FIXTURES / f"{kind}_{case}.safetensors"))
    edit = erasekit.erase(make.tiny_pipeline(kind), ["van gogh", "a church"], **make.CASES[case])
    for layer, dW in expected.items():
        assert float((edit.delta(layer) - dW).abs().max() / dW.abs().max()) <= 1e-6, layer
