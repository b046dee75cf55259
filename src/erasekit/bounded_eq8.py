"""RECE's Eq. 5 under a norm bound per row, differentiable in the Grams: the derived embedding kept in range.

RECE Eq. 5 asks for the embedding ``c'`` the edited K/V projections map onto the original's of ``c``,

    c' = argmin Σ_l ‖W_l c' − W_orig,l c‖² + λ‖c'‖² = (λI + S_cur)⁻¹ S_cross c            (Eq. 8)

with ``S_cur = Σ W_lᵀ W_l`` and ``S_cross = Σ W_lᵀ W_orig,l``. Under ``‖c'‖ ≤ Δ`` the minimiser is Eq. 8's
at the smallest ``λ' ≥ λ`` that meets the bound (a trust-region step: with ``S_cur = V diag(e) Vᵀ`` and
``β = Vᵀ S_cross c``, ``‖c'(λ')‖² = Σ_i β_i² / (λ' + e_i)²`` falls monotonically in λ'). Newton's method on
the secular equation ``1/‖c'(λ')‖ = 1/Δ``, which is concave in λ' (Nocedal & Wright, Alg. 4.3), climbs to
that λ' from λ without overshooting.

One eigendecomposition of ``S_cur`` serves every row's λ' and, in the backward pass, the solve the gradient
needs: for ``x = (λ'I + S_cur)⁻¹ b`` and ``y = (λ'I + S_cur)⁻¹ ∂L/∂x``, ``∂L/∂b = y`` and
``∂L/∂S_cur = −y xᵀ`` (λ' held, as the bound's active set is). ``derived_bounded`` then raises a row still under
the least norm real prompts reach to it (:func:`derived_in_range`); ``erasekit.attacks.derived`` solves with that, and
ACE trains against it (``methods/ace/inverse.py``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .closed_form import F64

NEWTON_STEPS = 50  # a cap: Newton stops once no λ' moves by 1e-12 of itself


class _ShiftedSolve(torch.autograd.Function):
    """Rows ``x_i = (λ_i I + Q)⁻¹ b_i`` from ``Q = V diag(e) Vᵀ`` and ``β_i = Vᵀ b_i`` (rows of ``beta [n, d]``)."""

    @staticmethod
    def forward(ctx, Q: Tensor, beta: Tensor, lam: Tensor, V: Tensor, e: Tensor) -> Tensor:
        X = (beta / (lam[:, None] + e)) @ V.T  # [n, d]
        ctx.save_for_backward(X, lam, V, e)
        return X

    @staticmethod
    def backward(ctx, grad_X: Tensor):
        X, lam, V, e = ctx.saved_tensors
        grad_beta = (grad_X @ V) / (lam[:, None] + e)  # [n, d], Vᵀ y_i per row
        return -(V @ (grad_beta.T @ X)), grad_beta, None, None, None  # ∂L/∂Q = −Σ y_i x_iᵀ


def bounded_regenerating_embeddings(
    S_cur: Tensor, S_cross: Tensor, C: Tensor, reg_lamb: float, high: Tensor
) -> tuple[Tensor, Tensor]:
    """Eq. 5's minimiser for each row of ``C [n, d]`` under ``‖c'_i‖ ≤ high_i`` (``[n]``; a row whose Eq. 8 answer
    fits keeps λ): ``(c' [n, d] float64, λ'_i [n])``. Differentiable in ``S_cur``, ``S_cross`` and ``C``; λ' is not."""
    S_cur, S_cross = S_cur.to(F64), S_cross.to(F64)
    with torch.no_grad():
        e, V = torch.linalg.eigh(S_cur)  # S_cur is PSD: e ≥ 0 up to rounding
        e = e.clamp_min(0)
    beta = C.to(F64) @ (S_cross.T @ V)  # [n, d]: rows Vᵀ S_cross c, one product over the n rows
    with torch.no_grad():
        lam = _trust_region_lambdas(beta.T, e[:, None], torch.full((C.shape[0],), float(reg_lamb), dtype=F64), high)
    return _ShiftedSolve.apply(S_cur, beta, lam, V, e), lam


def _trust_region_lambdas(beta: Tensor, e: Tensor, lam: Tensor, high: Tensor) -> Tensor:
    """The smallest ``λ'_i ≥ lam_i`` with ``‖β_i / (λ'_i + e)‖ ≤ high_i`` (``beta [d, n]``, ``e [d, 1]``):
    Newton on ``1/‖p(λ')‖ − 1/high``, ``λ' += (‖p‖ − high)/high · ‖p‖²/‖q‖²`` with ``‖q‖² = Σ β²/(λ'+e)³``."""
    beta2 = beta.pow(2)
    high = high.to(beta)
    over = (beta2 / (lam + e).pow(2)).sum(0).sqrt() > high  # rows whose Eq. 8 answer already fits keep λ
    beta2, rows = beta2[:, over], lam[over]
    for _ in range(NEWTON_STEPS):
        inv = 1 / (rows + e)  # [d, m], the m rows over their bound
        p2 = (beta2 * inv.pow(2)).sum(0)
        step = (p2.sqrt() - high[over]) / high[over] * p2 / (beta2 * inv.pow(3)).sum(0).clamp_min(1e-300)
        rows = rows + step.clamp_min(0)
        if not bool((step > 1e-12 * rows).any()):
            break
    return lam.masked_scatter(over, rows)


def derived_in_range(
    S_cur: Tensor, S_cross: Tensor, C: Tensor, reg_lamb: float, low: Tensor, high: Tensor
) -> tuple[Tensor, Tensor]:
    """``derived_bounded``'s ``c'`` of each row of ``C [n, d]``: Eq. 5 under ``‖c'_i‖ ≤ high_i``
    (:func:`bounded_regenerating_embeddings`), then each row raised to ``low_i`` if it falls short
    (:func:`clamp_norms`). ``(c' [n, d] float32, λ'_i [n])``; differentiable as the bounded solve is."""
    derived, lam = bounded_regenerating_embeddings(S_cur, S_cross, C, reg_lamb, high)
    return clamp_norms(derived.float(), low, high), lam


def norm_range(states: Tensor) -> tuple[Tensor, Tensor]:
    """``(low, high)``, each ``[L]``: the least and greatest norm prompts' token states ``[P, L, d]`` reach at each
    position, the range ``derived_bounded`` holds its ``c'`` in."""
    norms = states.detach().norm(dim=-1)  # [P, L]
    return norms.min(0).values, norms.max(0).values


def clamp_norms(x: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """``x [n, d]`` with each row rescaled so its norm lies in ``[low_i, high_i]`` (``[n]`` each); direction kept."""
    norm = x.norm(dim=-1, keepdim=True)  # [n, 1]
    return x * (torch.minimum(torch.maximum(norm, low[:, None]), high[:, None]) / norm.clamp_min(1e-12))
