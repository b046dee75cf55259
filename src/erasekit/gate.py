"""A token gate for low-rank K/V updates, applied by a diffusers attention processor.

A gated edit changes a cross-attention projection only for the text tokens that lie near a concept
subspace. For a token state ``c`` (one row of the text encoder's output, width d):

    r(c) = ‖Pᵀ (c − μ)‖² / ‖c − μ‖²          share of c's deviation from the neutral mean μ inside span(P)
    g(c) = σ(s · (r(c) − τ))                  ~1 near the concept, ~0 elsewhere
    to_k'(c) = W_k c + g(c) · B_k A c         (the same for to_v)

with ``P [d, k]`` orthonormal, ``s`` the sharpness and ``τ`` the threshold. A gate may cap each token's value
at the prompt's last position's (``whole_prompt``), ``g'(c_t) = min(g(c_t), g(c_L))``: in a causal encoder (CLIP)
that position has read the whole prompt, so a token opens only where the prompt as a whole reads as the concept,
not on a word piece of some other name that happens to lie near the subspace. A gate may leave some of the
update's rows open on every token (``always``): ``to_k'(c) = W_k c + B_k (m(c) ⊙ A c)`` with ``m_j = 1`` on
those rows and ``g(c)`` on the others, for an edit that erases some concepts everywhere and others
near their tokens only (ACE's ungated kinds). ``W + g·BA`` is not a
weight, so the update cannot be merged into ``W``: :class:`GatedKVProcessor` wraps the attention
module's own processor and hands it a view of the module whose ``to_k``/``to_v`` add the gated
term. It therefore composes with any processor (SDPA, xformers, IP-adapter) and with merged edits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .errors import EditFileError

EPS = 1e-12


def concept_ratio(x: Tensor, basis: Tensor, mean: Tensor) -> Tensor:
    """``r(x) = ‖Pᵀ(x − μ)‖² / ‖x − μ‖²`` ``[..., 1]`` for token states ``x [..., d]``."""
    z = x - mean
    return (z @ basis).pow(2).sum(-1, keepdim=True) / z.pow(2).sum(-1, keepdim=True).clamp_min(EPS)


def capped_at_prompt_end(values: Tensor) -> Tensor:
    """``values [..., L, 1]`` (gate values or ratios of token states), each capped at its sequence's last
    position's: the whole-prompt gate (module docstring). g is monotone in r, so capping either is the same."""
    return torch.minimum(values, values[..., -1:, :])


@dataclass(frozen=True)
class TokenGate:
    """``g(c) = σ(s (‖Pᵀ(c − μ)‖² / ‖c − μ‖² − τ))``.

    Attributes:
        basis: ``P [d, k]``, the concept subspace; ACE fits it freely (not orthonormal), which makes
            ``‖Pᵀ z‖²/‖z‖²`` a quadratic form on the unit sphere (``methods/ace/gatefit.py``).
        mean: ``μ [d]``, the mean of the neutral token states.
        sharpness: ``s``.
        threshold: ``τ`` in [0, 1].
        whole_prompt: cap every token's value at the last position's (module docstring) where the states come as
            sequences ``[B, L, d]``; rows ``[n, d]`` (no sequence) get their own values.
        always: ``[r]``, 1 on the rows of the update (rows of ``A``) that apply to every token, 0 on the
            gated ones, the same for every layer (such an edit has one rank throughout); None: every row is
            gated. Calling the gate gives ``g(c)``, whatever ``always`` is.
    """

    basis: Tensor
    mean: Tensor
    sharpness: float  # or a 0-d tensor while ACE trains it
    threshold: float
    always: Tensor | None = None
    whole_prompt: bool = False

    def __call__(self, x: Tensor) -> Tensor:
        """``g(c)`` ``[..., L, 1]`` in ``x``'s dtype (differentiable in ``x`` and, while ACE trains them, s and τ)."""
        return torch.sigmoid(self.sharpness * (self.ratios(x) - self.threshold)).to(x.dtype)

    def ratios(self, x: Tensor) -> Tensor:
        """``r(c)`` ``[..., L, 1]`` float32, capped at the prompt's last position's as :meth:`__call__` caps g
        (g is monotone in r)."""
        basis, mean = self.basis.to(x.device, torch.float32), self.mean.to(x.device, torch.float32)
        r = concept_ratio(x.float(), basis, mean)
        return capped_at_prompt_end(r) if self.whole_prompt and x.dim() >= 3 else r

    def opens(self, x: Tensor) -> Tensor:
        """``[..., L]`` bool: the tokens where ``g(c) > 0.5``, the ones an erasure's gate rates count as open."""
        return self(x).squeeze(-1) > 0.5

    def row_values(self, x: Tensor) -> Tensor:
        """``m(x)`` ``[..., r]``: 1 on the always-open rows, ``g(x)`` on the others (needs ``always``)."""
        assert self.always is not None, "row_values is for a gate with always-open rows"
        return torch.maximum(self(x), self.always.to(x.device, x.dtype))

    def tensors(self) -> dict[str, Tensor]:
        always = {} if self.always is None else {"always": self.always.float().contiguous()}
        return {"basis": self.basis.contiguous(), "mean": self.mean.contiguous(), **always}

    def scalars(self) -> dict[str, float | bool]:
        whole = {"whole_prompt": True} if self.whole_prompt else {}  # files from before it read as False
        return {"sharpness": self.sharpness, "threshold": self.threshold, **whole}

    def summary(self) -> dict[str, Any]:
        """What ``erasekit info`` shows: s, τ, the subspace's rank and the rows open on every token, if any."""
        always = {} if self.always is None else {"always_open_rows": int(self.always.sum())}
        return {**self.scalars(), "rank": self.basis.shape[1], **always}


@dataclass(frozen=True)
class GatedTerm:
    """One gated edit's share of one attention module: ``g(c) · B A c`` added to ``to_k`` / ``to_v``."""

    gate: TokenGate | None  # None: g = 1 on every token (ACE's ungated ablation while it trains)
    k: tuple[Tensor, Tensor] | None  # (B [d_out, r], A [r, d]) of to_k, or None
    v: tuple[Tensor, Tensor] | None

    def delta(self, kind: str, x: Tensor) -> Tensor | None:
        pair = self.k if kind == "k" else self.v
        if pair is None:
            return None
        B, A = (t.to(x.device, x.dtype) for t in pair)
        if self.gate is not None and self.gate.always is not None:
            return (self.gate.row_values(x) * (x @ A.T)) @ B.T  # [..., r] row by row
        delta = x @ A.T @ B.T
        return delta if self.gate is None else self.gate(x) * delta


class _GatedProjection(nn.Module):
    """``proj(x) + Σ g(x) B A x`` over the terms (not registered anywhere: lives for one call)."""

    def __init__(self, proj: nn.Module, kind: str, terms: list[GatedTerm]):
        super().__init__()
        self.proj, self.kind, self.terms = proj, kind, terms

    def forward(self, x: Tensor) -> Tensor:
        out = self.proj(x)
        for term in self.terms:
            delta = term.delta(self.kind, x)
            if delta is not None:
                out = out + delta
        return out


class _GatedAttention:
    """The attention module as its processor sees it, with gated ``to_k``/``to_v``."""

    def __init__(self, attn: nn.Module, terms: list[GatedTerm]):
        self._attn = attn
        self.to_k = _GatedProjection(attn.to_k, "k", terms)
        self.to_v = _GatedProjection(attn.to_v, "v", terms)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._attn, name)


class GatedKVProcessor:
    """Runs ``inner`` (the module's own processor) with gated K/V projections on cross-attention.

    Self-attention calls (no ``encoder_hidden_states``) pass through unchanged.
    """

    def __init__(self, inner: Any, terms: list[GatedTerm]):
        self.inner, self.terms = inner, terms

    def __call__(
        self, attn: nn.Module, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None, **kwargs: Any
    ) -> Tensor:
        if encoder_hidden_states is None or not self.terms:
            return self.inner(attn, hidden_states, encoder_hidden_states, **kwargs)
        return self.inner(_GatedAttention(attn, self.terms), hidden_states, encoder_hidden_states, **kwargs)


_ORIGINAL = "_erasekit_processors"  # on a U-Net: attention module path -> its processor before gating


def sync_processors(unet: nn.Module, gated: list[tuple[TokenGate | None, Mapping[str, tuple[Tensor, Tensor]]]]) -> None:
    """Make every attention module's processor reflect ``gated`` (the applied gated edits, oldest first).

    Modules that no gated edit touches get their original processor back, so removing the last
    gated edit leaves the U-Net exactly as it was.
    """
    originals: dict[str, Any] = unet.__dict__.setdefault(_ORIGINAL, {})
    terms: dict[str, list[GatedTerm]] = {}
    for gate, updates in gated:
        by_module: dict[str, dict[str, tuple[Tensor, Tensor]]] = {}
        for name, pair in updates.items():
            module, _, proj = name.rpartition(".")
            if proj not in ("to_k", "to_v"):
                raise EditFileError(
                    f"A gated update must target an attention module's to_k or to_v, not {name}: the edit file is "
                    "not a gated erasekit edit. Re-create it with erasekit."
                )
            by_module.setdefault(module, {})[proj.removeprefix("to_")] = pair
        for module, pairs in by_module.items():
            terms.setdefault(module, []).append(GatedTerm(gate, pairs.get("k"), pairs.get("v")))
    modules = dict(unet.named_modules())
    for path in sorted(set(terms) | set(originals)):
        attn = modules[path]
        if path not in originals:
            originals[path] = attn.processor
        if path in terms:
            attn.set_processor(GatedKVProcessor(originals[path], terms[path]))
        else:
            attn.set_processor(originals.pop(path))
