"""Stage 2's loss: the attention the concept's tokens draw inside the concept's region (MACE Sec. 3.3, Eq. 6).

For every cross-attention layer ``l`` with attention probabilities ``A_l [B·heads, N, L]`` (softmax
over the L tokens, N = h·w pixels), the region mask ``M`` of each image resized to ``h × w``
(nearest, then > 0.5, as the reference resizes its masks) and the prompt's concept positions ``P``:

    loss = Σ_l Σ_b ‖ A_l[b, heads, M_b, P_b] ‖_F

(the Frobenius norm, not its square, as the reference's ``AttnController.loss``). :func:`probing` installs
an attention processor on every cross-attention module that runs the module's own projections (so
LoRA hooks on ``to_k``/``to_v`` act) and records ``A_l``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from ...errors import ConfigError


def attention_map_loss(probs: Tensor, mask: Tensor, positions: Tensor) -> Tensor:
    """The loss of one layer (module docstring).

    Args:
        probs: ``[B·heads, N, L]`` attention probabilities, batch-major (diffusers' ``head_to_batch_dim``).
        mask: ``[B, H, W]`` region of each image, values in [0, 1].
        positions: ``[B, L]`` bool, the concept's token positions of each prompt.
    """
    B, H, W = mask.shape
    heads, N = probs.shape[0] // B, probs.shape[1]
    h = round(math.sqrt(N * H / W))
    if h * (N // h) != N:
        raise ConfigError(f"Cannot lay {N} attention pixels out with the mask's aspect {H}x{W}.")
    m = F.interpolate(mask[:, None].float(), size=(h, N // h), mode="nearest").reshape(B, N) > 0.5
    total = probs.new_zeros(())
    for b in range(B):
        sel = probs[b * heads : (b + 1) * heads][:, m[b]][:, :, positions[b]]  # [heads, |M_b|, |P_b|]
        total = total + torch.linalg.vector_norm(sel)
    return total


class _Probe:
    """Cross-attention as diffusers' plain processor computes it, recording the probabilities."""

    def __init__(self, records: list[Tensor]):
        self.records = records

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        **kwargs: Any,
    ) -> Tensor:
        if attn.spatial_norm is not None or attn.group_norm is not None or hidden_states.ndim != 3:
            raise ConfigError("MACE's attention probe supports the transformer blocks' cross-attention of SD U-Nets.")
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(context))
        v = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(q, k, attention_mask)  # [B·heads, N, L]
        self.records.append(probs)
        out = attn.to_out[1](attn.to_out[0](attn.batch_to_head_dim(torch.bmm(probs, v))))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


@contextmanager
def probing(unet: nn.Module) -> Iterator[list[Tensor]]:
    """While inside, every cross-attention module of ``unet`` appends its probabilities to the yielded list."""
    records: list[Tensor] = []
    modules = [m for m in unet.modules() if isinstance(m, Attention) and m.is_cross_attention]
    saved = [m.processor for m in modules]
    for m in modules:
        m.processor = _Probe(records)
    try:
        yield records
    finally:
        for m, processor in zip(modules, saved):
            m.processor = processor
