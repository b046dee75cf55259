"""The closed forms give bit-identical updates to the fixtures saved before the "One house" restructure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import erasekit

FIXTURES = Path(__file__).parents[1] / "fixtures" / "closed_form"
_spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make.py")
make = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make)


@pytest.mark.parametrize("kind", ["sd1", "sd2", "sdxl"])
@pytest.mark.parametrize("case", sorted(make.CASES))
def test_closed_form_updates_are_bit_identical_to_fixtures(kind, case):
    expected = load_file(str(FIXTURES / f"{kind}_{case}.safetensors"))
    edit = erasekit.erase(make.tiny_pipeline(kind), ["van gogh", "a church"], **make.CASES[case])
    assert sorted(edit.updates) == sorted(expected)
    for layer, dW in expected.items():
        assert torch.equal(edit.delta(layer), dW), layer
