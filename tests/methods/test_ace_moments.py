from __future__ import annotations

import torch

from erasekit.methods import EraseRequest
from erasekit.methods.ace.config import ACEConfig
from erasekit.methods.ace.moments import Moments
from erasekit.methods.ace.prompts import _neutral_states, gate_tokens
from erasekit.targets import find_targets
from erasekit.text import TextEncoder


def _rows(n: int, seed: int, shift: float) -> torch.Tensor:
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(seed)) * 2 + shift


def _close(a: Moments, b: Moments) -> None:
    assert a.n == b.n
    torch.testing.assert_close(a.mean, b.mean, rtol=1e-6, atol=1e-6)
    # float32 products summed in float64: equal to ~1e-7 of the scatter's size, not entry by entry
    assert float((a.scatter - b.scatter).norm() / b.scatter.norm()) < 1e-5


def test_moments_of_two_sets_combine_and_split_as_the_rows_do():
    A, B = _rows(300, 0, 1.0), _rows(40, 1, -3.0)  # unequal sizes and means: the δ δᵀ term matters
    whole = Moments.of(torch.cat([A, B]))
    _close(Moments.of(A) + Moments.of(B), whole)
    _close(whole - Moments.of(B), Moments.of(A))
    empty = Moments.of(A[:0])
    assert (whole + empty) is whole and (whole - empty) is whole and (empty + whole) is whole


def test_the_gates_negatives_carry_the_moments_of_their_rows(tiny_pipe):
    request = EraseRequest(targets=find_targets(tiny_pipe.unet), encoder=TextEncoder(tiny_pipe), pipe=tiny_pipe,
                           concepts=("dog",), preserve=("picasso",), base_fingerprint="")  # fmt: skip
    cfg = ACEConfig(neutral_captions=256, vocabulary_captions=16, name_captions=16, contexts=8)
    # the cached captions that name "dog" are taken out of the cached moments
    every, _ = _neutral_states(request, cfg, ["zzqx"])
    kept, moments = _neutral_states(request, cfg, ["dog"])
    assert 0 < len(kept) < len(every)
    _close(moments, Moments.of(kept.flatten(0, 1)))
    # and the request's own negatives (picasso and the sibling in captions) added
    _, neg = gate_tokens(request, cfg, ("sunflowers",))
    assert neg.moments is not None and len(neg.states) > len(kept)
    _close(neg.moments, Moments.of(neg.rows()))
