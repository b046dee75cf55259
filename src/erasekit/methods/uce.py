"""UCE: Unified Concept Editing (Gandikota et al., WACV 2024, arXiv 2308.14761), Eq. 7.

    W_new = W_old (Σ c* cᵀ + λ₁ Σ c_p c_pᵀ + λ₂ I)(Σ c cᵀ + λ₁ Σ c_p c_pᵀ + λ₂ I)⁻¹

over every cross-attention ``to_k`` and ``to_v``, as the reference code runs it:
rohitgandikota/unified-concept-editing ``train-scripts/train_erase.py`` (``edit_model`` and its
``__main__``, commit bd5fb51). Reference choices we keep by default:

- the erase rows are the concept's token states from its last word token to the padded end,
  paired with the guide's from the guide's last word token (``concepts.erase_rows``); a guide of
  ``""`` becomes ``" "``, and with ``" "`` the concept's last word is paired with the guide's
  start-of-text state (``alignment="skip_bos"`` is the clean alternative);
- retain = ``[""] + preserve``, each with its whole padded sequence; ``preserve_scale`` defaults to
  ``max(0.1, 1/len(retain))``; ``lamb`` = 0.5 and ``erase_scale`` = 1 as ``__main__`` passes them
  (the function's own defaults, 0.1, are not what the script runs); ``with_to_k`` is True;
- technique ``"replace"`` (targets ``W_old g``); the ``"tensor"`` variant is not offered.

``tokens="last"`` is the newer ``trainscripts/uce_sd_erase.py`` selection: the last word token only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..closed_form import Factor, layer_updates, ridge_factor
from ..concepts import GuideAlignment, TokenSpan, erase_rows, keep_rows
from ..edit import Edit
from ..errors import ConfigError
from . import EraseRequest, register


@dataclass(frozen=True)
class UCEConfig:
    lamb: float = 0.5  # λ₂, pull towards W_old (train_erase.py __main__: lamb=0.5)
    erase_scale: float = 1.0  # weight of each erase row (--erase_scale default 1)
    preserve_scale: float | None = None  # λ₁; None: max(0.1, 1/len(retain)) as the script computes
    edit_keys: bool = True  # with_to_k: edit to_k as well as to_v
    guide: str = " "  # default guide of every concept (the script's uncond guide)
    tokens: TokenSpan = "span"  # "span": last word token..end (train_erase.py); "last": uce_sd_erase.py
    alignment: GuideAlignment = "reference"  # "skip_bos": never pair with the guide's start-of-text

    def __post_init__(self) -> None:
        if not self.lamb > 0:
            raise ConfigError(
                f"UCEConfig.lamb must be > 0, got {self.lamb}: with λ = 0 the system of Eq. 7 is singular "
                "whenever there are fewer tokens than embedding dimensions."
            )
        if not self.erase_scale > 0:
            raise ConfigError(f"UCEConfig.erase_scale must be > 0, got {self.erase_scale}.")
        if self.preserve_scale is not None and not self.preserve_scale >= 0:
            raise ConfigError(f"UCEConfig.preserve_scale must be ≥ 0 or None, got {self.preserve_scale}.")


def uce_factor(request: EraseRequest, cfg: UCEConfig) -> tuple[Factor, list[str]]:
    """``T − I`` of UCE Eq. 7 for ``request`` and the guides used."""
    guides = [" " if g == "" and cfg.tokens == "span" else g for g in request.guides_or(cfg.guide)]
    retain = ["", *request.preserve]
    request.prefetch(request.concepts, guides, retain)
    pairs = erase_rows(request.encoder, request.concepts, guides, tokens=cfg.tokens, alignment=cfg.alignment)
    ps = cfg.preserve_scale if cfg.preserve_scale is not None else max(0.1, 1 / len(retain))
    K = keep_rows(request.encoder, retain, tokens=cfg.tokens)
    factor = ridge_factor(
        pairs, K, lamb=cfg.lamb, erase_scale=cfg.erase_scale, keep_weights=torch.full((K.shape[0],), ps)
    )
    return factor, guides


@register("uce", UCEConfig)
def uce(request: EraseRequest, cfg: UCEConfig) -> Edit:
    """UCE closed-form edit of the cross-attention K/V projections (UCE Eq. 7)."""
    factor, guides = uce_factor(request, cfg)
    updates = layer_updates(request.layers(edit_keys=cfg.edit_keys), factor)
    return request.make_edit("uce", cfg, updates, guides=guides, info={"rank": factor.rank, "cond": factor.cond})
