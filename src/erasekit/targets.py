"""Where text enters the denoiser: the layers a closed-form erasure edits.

A text-to-image model reads the prompt's token states through a few linear maps, and erasure edits
exactly those. In a U-Net (SD 1.x, 2.x, SDXL, the embedded world) they are the cross-attention
``attn.to_k(encoder_hidden_states)`` and ``attn.to_v(encoder_hidden_states)`` of every ``Attention``
module with ``is_cross_attention``: :func:`find_targets` collects them, named by their module path
in the U-Net, which is how diffusers' LoRA loader spells them (``unet.<name>.lora_A.weight``).
An MMDiT (SD3, Flux) reads text through its ``context_embedder`` and the joint attention's
``add_k_proj`` / ``add_v_proj``: that is the next case :func:`denoiser` and :func:`find_targets`
will name; today such a pipeline gets an :class:`UnsupportedModelError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from .errors import NoTargetsError, NumericalError, UnsupportedModelError

Projection = Literal["k", "v"]


@dataclass(frozen=True)
class Target:
    """One K or V projection: ``name`` is its module path inside the U-Net."""

    name: str
    kind: Projection
    module: nn.Linear

    @property
    def weight(self) -> Tensor:
        """The live weight, ``[d_out, d_in]`` in ``nn.Linear`` layout."""
        return self.module.weight


@dataclass
class Targets:
    """The K/V projections of one U-Net, in module order, with a cached base fingerprint."""

    items: tuple[Target, ...]
    _fingerprint: str | None = field(default=None, repr=False)
    _grams: dict[str, Tensor] = field(default_factory=dict, repr=False)

    def __iter__(self) -> Iterator[Target]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def n_params(self) -> int:
        return sum(t.weight.numel() for t in self.items)

    def fingerprint(self, originals: dict[str, Tensor] | None = None) -> str:
        """A hash of the base model's target weights (see :func:`fingerprint`).

        ``originals`` replaces live weights that an applied edit has changed, so the fingerprint
        is always the one of the un-edited base model.
        """
        if not originals and self._fingerprint is not None:
            return self._fingerprint
        weights = {t.name: (originals or {}).get(t.name, t.weight) for t in self.items}
        value = fingerprint(weights)
        if not originals:
            self._fingerprint = value
        return value

    @torch.no_grad()
    def gram(self, kind: Projection | None = None) -> Tensor:
        """``S = Σ_l W_lᵀ W_l`` over the targets (of one ``kind``), ``[d_in, d_in]`` float64, cached.

        A per-model constant (RECE Eq. 8 needs it at every epoch): after an edit
        ``W_l = W_orig,l T``, so ``Σ W_lᵀ W_l = Tᵀ S T`` and ``Σ W_lᵀ W_orig,l = Tᵀ S``. Cached for
        the weights at first call: build new Targets after changing the weights.
        """
        if kind is None:
            return self.gram("k") + self.gram("v")
        if kind not in self._grams:
            widths = sorted({t.weight.shape[1] for t in self.items})
            if len(widths) != 1:
                raise NoTargetsError(
                    f"The cross-attention layers read embeddings of several widths {widths}; erasekit's "
                    "closed forms need one text-embedding width shared by every K/V projection."
                )
            S = torch.zeros(widths[0], widths[0], dtype=torch.float64)
            for t in self.items:
                if t.kind == kind:
                    W = t.weight.detach().float()  # float32 products, float64 sum across layers
                    S += (W.T @ W).cpu().double()
            self._grams[kind] = S
        return self._grams[kind]


def denoiser(pipe: Any) -> nn.Module:
    """The module text enters: the pipeline's U-Net (or ``pipe`` itself when it is a bare U-Net).

    Raises:
        UnsupportedModelError: no U-Net (an MMDiT pipeline such as SD3 or Flux, or not a pipeline).
    """
    if isinstance(pipe, nn.Module) and not hasattr(pipe, "unet"):
        return pipe
    unet = getattr(pipe, "unet", None)
    if not isinstance(unet, nn.Module):
        raise UnsupportedModelError(
            f"{type(pipe).__name__} has no U-Net whose cross-attention reads the text: erasekit supports "
            "StableDiffusionPipeline (SD 1.x, 2.x), StableDiffusionXLPipeline (SDXL) and the worlds' pipelines. "
            "MMDiT pipelines (SD3, Flux), whose text enters through context_embedder, are not supported yet."
        )
    return unet


def find_targets(unet: nn.Module, *, edit_keys: bool = True) -> Targets:
    """Every cross-attention ``to_v`` (and ``to_k`` unless ``edit_keys=False``) of ``unet``.

    Raises:
        NoTargetsError: the model has no cross-attention module.
        NumericalError: a target weight holds NaN or Inf.
    """
    items: list[Target] = []
    for name, module in unet.named_modules():
        if isinstance(module, Attention) and module.is_cross_attention:
            kinds: tuple[Projection, ...] = ("k", "v") if edit_keys else ("v",)
            for kind in kinds:
                linear = getattr(module, f"to_{kind}")
                items.append(Target(f"{name}.to_{kind}", kind, linear))
    if not items:
        raise NoTargetsError(
            f"{type(unet).__name__} has no cross-attention K/V projections (looked for diffusers "
            "Attention modules with is_cross_attention=True). Pass a text-conditioned U-Net such as "
            "Stable Diffusion's UNet2DConditionModel."
        )
    for t in items:
        if not torch.isfinite(t.weight).all():
            raise NumericalError(
                f"Weight of {t.name} holds NaN or Inf: the base model is corrupt. Reload it from a "
                "clean checkpoint before erasing."
            )
    return Targets(tuple(items))


@torch.no_grad()
def fingerprint(weights: dict[str, Tensor]) -> str:
    """``sha256:<hex16>`` over names and fp16 bytes of the weights, sorted by name.

    Hashing the fp16 cast makes an fp32 checkpoint and its fp16 copy share one fingerprint.
    """
    h = hashlib.sha256()
    for name in sorted(weights):
        h.update(name.encode())
        h.update(weights[name].detach().to("cpu", torch.float16).contiguous().numpy().tobytes())
    return "sha256:" + h.hexdigest()[:16]
