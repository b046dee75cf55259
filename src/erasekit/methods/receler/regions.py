"""Receler's concept-localised regularisation: where the concept is, from the cross-attention maps.

The original model's cross-attention ``P_l = softmax(Q_l K_lᵀ / √d) [heads, hw, L]`` at the
concept's word tokens, averaged over heads and tokens, then over the layers of one resolution
(the reference takes the 16 × 16 maps of SD's 64 × 64 latent, after MasaCtrl: latent side / 4), is
min-max normalised and thresholded into a binary mask ``M`` (1 = concept), resized (nearest) to
every layer. The erasers' outputs ``E_l [hw, d]`` are pushed to zero outside the mask:

    L_reg = mean_l  Σ_p (1 − M_l)[p] · mean_d E_l[p, d]²  /  Σ_p (1 − M_l)[p]

so that the eraser changes only the concept's region (``concept_reg.py``, ``train_receler.py``).
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


def cross_attentions(unet: nn.Module) -> dict[str, Attention]:
    """Every cross-attention module of ``unet`` by module path."""
    return {n: m for n, m in unet.named_modules() if isinstance(m, Attention) and m.is_cross_attention}


@contextmanager
def attention_maps(unet: nn.Module, words: Tensor, out: dict[str, Tensor]) -> Iterator[None]:
    """Inside, each cross-attention forward puts into ``out[name]`` its map ``[B, hw]`` at the token
    positions ``words`` (``[n]``), averaged over heads and those tokens; hooks removed on exit."""

    def hook(name: str):
        def capture(module: Attention, args: tuple[Any, ...], kwargs: dict[str, Any], output: Tensor) -> None:
            x = kwargs.get("hidden_states", args[0] if args else None)
            ctx = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
            with torch.no_grad():
                q = module.head_to_batch_dim(module.to_q(x))  # [B·heads, hw, d_head]
                k = module.head_to_batch_dim(module.to_k(ctx))  # [B·heads, L, d_head]
                probs = module.get_attention_scores(q, k, None)  # [B·heads, hw, L]
                probs = probs[..., words.to(probs.device)].mean(-1)  # [B·heads, hw]
                out[name] = probs.reshape(x.shape[0], module.heads, -1).mean(1).float()  # [B, hw]

        return capture

    handles = [m.register_forward_hook(hook(n), with_kwargs=True) for n, m in cross_attentions(unet).items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def concept_masks(maps: dict[str, Tensor], threshold: float, side: int) -> dict[str, Tensor]:
    """Binary masks ``[B, hw_l]`` per layer (1 = the concept) from the maps of ``maps`` at resolution
    ``side × side`` (or the nearest resolution present), min-max normalised, thresholded, resized."""
    sides = {name: math.isqrt(m.shape[-1]) for name, m in maps.items()}
    chosen = min(sorted(set(sides.values())), key=lambda s: abs(s - side))
    avg = torch.stack([m for name, m in maps.items() if sides[name] == chosen]).mean(0)  # [B, hw]
    low, high = avg.min(-1, keepdim=True).values, avg.max(-1, keepdim=True).values
    mask = ((avg - low) / (high - low).clamp_min(1e-12) >= threshold).float()
    square = mask.reshape(-1, 1, chosen, chosen)
    resized = {s: F.interpolate(square, size=(s, s), mode="nearest").flatten(1) for s in set(sides.values())}
    return {name: resized[s] for name, s in sides.items()}


def outside_loss(outputs: dict[str, Tensor], masks: dict[str, Tensor]) -> Tensor:
    """``L_reg``: the erasers' outputs ``[B, hw, d]`` outside the concept's mask ``[B, hw]``, averaged over layers."""
    terms = []
    for name, e in outputs.items():
        outside = 1.0 - masks[name]  # [B, hw]
        terms.append((outside * e.float().pow(2).mean(-1)).sum() / (outside.sum() + 1e-9))
    return torch.stack(terms).mean()
