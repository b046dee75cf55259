"""Stage 2 of MACE: one LoRA per concept on the refined K/V, trained with the attention-map loss (Sec. 3.3).

For concept i, a rank-r LoRA ``B A`` on every ``to_k``/``to_v`` (on top of stage 1's update, both added
by forward hooks: the pipeline's weights are never written) is trained with AdamW on
:func:`~erasekit.methods.mace.attention.attention_map_loss` alone: a noised image of the concept
``x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε``, a prompt of the concept, and the attention its tokens draw inside the
concept's region is pushed to zero. Timesteps are drawn from the reference's importance density
``f(t) = σ(0.05 (t − 200)) − σ(0.05 (t − 400))`` (``importance_sampling``), else uniformly.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...diffusion import alphas_cumprod, check_text_only, noisy, predict
from ...targets import denoiser
from .. import EraseRequest
from ..esd.lora import _LoRA
from ..frozen import frozen
from .attention import attention_map_loss, probing
from .config import MACEConfig
from .prompts import concept_positions
from .regions import RegionSource, checked_regions, from_segmenter, region_source

logger = logging.getLogger(__name__)
Updates = dict[str, tuple[Tensor, Tensor]]


def importance_weights(T: int) -> Tensor:
    """``[T]`` the reference's timestep density ``f(t)``, normalised (peaks over t ∈ [200, 400])."""
    t = torch.arange(T, dtype=torch.float64)
    f = torch.sigmoid(0.05 * (t - 200)) - torch.sigmoid(0.05 * (t - 400))
    return f / f.sum()


@contextmanager
def _added(layers: dict[str, nn.Linear], updates: Updates) -> Iterator[None]:
    """While inside, each layer's output gets ``x Aᵀ Bᵀ`` of its fixed update (stage 1's)."""

    def hook(B: Tensor, A: Tensor) -> Any:
        return lambda module, args, out: out + F.linear(F.linear(args[0].to(A.dtype), A), B).to(out.dtype)

    handles = []
    for name, linear in layers.items():
        B, A = (t.to(linear.weight.device) for t in updates[name])
        handles.append(linear.register_forward_hook(hook(B, A)))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _source(request: EraseRequest, cfg: MACEConfig, regions: RegionSource | None) -> RegionSource | None:
    source = region_source(request.pipe, regions)
    if source is None and cfg.no_regions == "whole_image":
        return from_segmenter(request.pipe, lambda images, concept: torch.ones(images.shape[0], *images.shape[2:]))
    return source


def train_loras(
    request: EraseRequest,
    cfg: MACEConfig,
    prompts: list[list[str]],
    refined: Updates,
    *,
    regions: RegionSource | None = None,
) -> tuple[list[Updates], list[list[float]]]:
    """One LoRA per concept (module docstring): ``([{layer: (B [d_out, r], A [r, d_in])}], losses)``.

    Without a pipeline or a region source (and ``no_regions="refine_only"``) no LoRA is trained and
    a warning says that the edit is stage 1 alone.

    Args:
        prompts: each concept's prompts. refined: stage 1's update of every layer.
        regions: a region source (see :mod:`~erasekit.methods.mace.regions`); None: the pipeline's.
    Raises:
        ConfigError: a concept without any region, a prompt without the concept's tokens, or an SDXL U-Net.
    """
    if cfg.steps == 0:
        return [], []
    source = _source(request, cfg, regions) if request.pipe is not None else None
    if source is None:
        warnings.warn(
            "MACE found no region source (no pipeline, or no concept_regions on it and no segmenter): it trains no "
            "LoRA and returns the closed-form refinement (stage 1) alone, which leaves the concept's own tokens "
            "untouched. Set pipe.concept_regions = erasekit.methods.mace.from_segmenter(pipe, segmenter), or "
            "no_regions='whole_image' to train on whole images.",
            UserWarning,
            stacklevel=3,
        )
        return [], []
    unet = denoiser(request.pipe)
    check_text_only(unet, "MACE's LoRA stage", "Pass steps=0 for the closed-form stage alone.")
    g = torch.Generator().manual_seed(cfg.seed)
    data = [checked_regions(source, c, cfg.n_images, g) for c in request.concepts]  # by the original model
    param = next(unet.parameters())
    device, dtype = param.device, param.dtype
    abar = alphas_cumprod(request.pipe.scheduler)
    T = abar.shape[0]
    density = importance_weights(T) if cfg.importance_sampling else torch.full((T,), 1.0 / T, dtype=torch.float64)
    layers = {t.name: t.module for t in request.layers(edit_keys=cfg.edit_keys)}
    total, loras, all_losses = len(data) * cfg.steps, [], []
    with frozen(unet), _added(layers, refined):
        for i, ((x0, masks), texts) in enumerate(zip(data, prompts)):
            states = request.encoder(texts).states.to(device, dtype)  # [P, L, d]
            where = concept_positions(request, texts, request.concepts[i], use_pooler=cfg.use_pooler)
            lora = _LoRA(layers, cfg.rank, g, device)
            opt = torch.optim.AdamW(lora.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            losses = []
            with lora.hooked():
                for step in range(cfg.steps):
                    img = torch.randint(x0.shape[0], (cfg.batch_size,), generator=g)
                    txt = torch.randint(states.shape[0], (cfg.batch_size,), generator=g)
                    t = torch.multinomial(density, cfg.batch_size, replacement=True, generator=g)
                    x_t = noisy(x0[img], torch.randn(x0[img].shape, generator=g), t, abar).to(device, dtype)
                    with probing(unet) as probs:
                        predict(unet, x_t, t.to(device), states[txt])
                    loss = sum(
                        attention_map_loss(p.float(), masks[img].to(device), where[txt].to(device)) for p in probs
                    )
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(lora.parameters(), cfg.max_grad_norm)
                    opt.step()
                    losses.append(float(loss.detach()))
                    if request.progress is not None:
                        request.progress(i * cfg.steps + step + 1, total)
            loras.append(lora.updates())
            all_losses.append(losses)
            logger.info("MACE LoRA of %r: attention loss %.4g -> %.4g", request.concepts[i], losses[0], losses[-1])
    return loras, all_losses
