"""Stage 1 of MACE: closed-form refinement of the cross-attention K/V (MACE Sec. 3.2, Eq. 4).

For the co-existing-word states ``c`` of every concept prompt, aligned with the guide prompt's ``g``
(:func:`~erasekit.methods.mace.prompts.refinement_rows`), and keep rows ``k`` (the preserve set in
the same templates, every position), each projection becomes

    W' = argmin ‖W c − W_old g‖² + ps ‖W k − W_old k‖² + λ ‖W − W_old‖²
       = (λ W_old + Σ W_old g cᵀ + ps Σ W_old k kᵀ)(λI + Σ c cᵀ + ps Σ k kᵀ)⁻¹

UCE's closed form with other rows, so erasekit's embedding-space solve (:func:`~erasekit.closed_form.ridge_factor`)
gives ``W' = W_old (I + U A)`` for every layer at once.
"""

from __future__ import annotations

import torch

from ...closed_form import Factor, ridge_factor
from ...concepts import keep_rows
from .. import EraseRequest
from .config import MACEConfig
from .prompts import refinement_rows


def refine_factor(request: EraseRequest, cfg: MACEConfig, pairs: list[list[tuple[str, str]]]) -> Factor:
    """``T − I`` of stage 1 for the prompt pairs of every concept (see the module docstring)."""
    keep = [t.format(p) for p in request.preserve for t in cfg.templates] if cfg.preserve_scale > 0 else []
    request.prefetch(keep)
    rows = refinement_rows(request, pairs)
    K = keep_rows(request.encoder, keep)
    return ridge_factor(
        rows, K, lamb=cfg.lamb, erase_scale=1.0, keep_weights=torch.full((K.shape[0],), cfg.preserve_scale)
    )
