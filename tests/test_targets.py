from __future__ import annotations

import pytest
import torch
from torch import nn

from erasekit.errors import NoTargetsError, UnsupportedModelError
from erasekit.targets import denoiser, find_targets, fingerprint


def test_every_cross_attention_key_and_value(tiny_pipe):
    targets = find_targets(tiny_pipe.unet)
    assert len(targets) == 14 and {t.kind for t in targets} == {"k", "v"}
    assert all(".attn2.to_" in t.name for t in targets)
    assert [t.kind for t in find_targets(tiny_pipe.unet, edit_keys=False)] == ["v"] * 7


def test_the_gram_is_the_sum_over_layers(tiny_pipe):
    targets = find_targets(tiny_pipe.unet)
    S = sum(t.weight.double().T @ t.weight.double() for t in targets if t.kind == "v")
    torch.testing.assert_close(targets.gram("v"), S, rtol=1e-6, atol=1e-6)


def test_where_text_enters(tiny_pipe):
    assert denoiser(tiny_pipe) is tiny_pipe.unet and denoiser(tiny_pipe.unet) is tiny_pipe.unet

    class MMDiTPipeline:  # text enters through a transformer's context_embedder: not supported yet
        transformer = nn.Linear(2, 2)

    with pytest.raises(UnsupportedModelError, match=r"MMDiTPipeline has no U-Net.*SD3, Flux"):
        denoiser(MMDiTPipeline())
    with pytest.raises(NoTargetsError, match="no cross-attention"):
        find_targets(nn.Sequential(nn.Linear(2, 2)))


def test_fingerprint_ignores_the_storage_dtype(tiny_pipe):
    weights = {t.name: t.weight for t in find_targets(tiny_pipe.unet)}
    assert fingerprint(weights) == fingerprint({k: v.half() for k, v in weights.items()})
    assert fingerprint(weights) != fingerprint({k: v + 1 for k, v in weights.items()})
