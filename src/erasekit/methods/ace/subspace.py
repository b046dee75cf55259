"""Parts 2-3 of ACE (package docstring): the concept subspace (the gate's start) and the closed form.

:func:`concept_subspace` finds ``P`` and ``μ``, the top generalised eigenvectors of the target rows'
scatter against the neutral/retain rows'; :func:`reduced_rank_ridge` is UCE's ridge update cut to
rank k by reduced-rank regression, the starting ``U, A`` of every K/V projection; and
:func:`initial_gate` places the gate's ``(s, τ)`` from the rows' concept ratios.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...closed_form import F64, Factor, ridge_factor
from ...concepts import ErasePairs
from ...errors import ConfigError
from .moments import Moments, centred_gram
from .prompts import Rows


def concept_subspace(C: Tensor, K: Tensor | Moments, rank: int, whiten: float) -> tuple[Tensor, Tensor]:
    """``(P [d, k], μ [d])``: the target rows' top generalised eigenvectors against the keep rows' (``K [m, d]``,
    or their :class:`.Moments`).

    ``Σ_t v = ν (Σ_n + εI) v`` solved as a symmetric eigenproblem in the whitened basis
    ``L⁻¹ Σ_t L⁻ᵀ`` (``Σ_n + εI = L Lᵀ``), then ``v = L⁻ᵀ w`` orthonormalised; both scatters about μ, the
    keep rows' mean.
    """
    d = C.shape[1]
    if rank > min(d, C.shape[0]):
        raise ConfigError(
            f"ACE rank {rank} exceeds what {C.shape[0]} target rows in {d} dimensions can span: lower --set rank=..."
        )
    neutral = K if isinstance(K, Moments) else Moments.of(K)
    mu = neutral.mean
    S_n, S_t = neutral.scatter / neutral.n, centred_gram(C, mu) / len(C)
    S_n += whiten * float(torch.trace(S_n)) / d * torch.eye(d, dtype=F64)
    L = torch.linalg.cholesky(S_n)
    W = torch.linalg.solve_triangular(L, torch.linalg.solve_triangular(L, S_t, upper=False).T, upper=False)
    _, vecs = torch.linalg.eigh((W + W.T) / 2)  # ascending
    V = torch.linalg.solve_triangular(L.T, vecs[:, -rank:].flip(1), upper=True)  # L⁻ᵀ w
    P, _ = torch.linalg.qr(V)
    return P, mu


def reduced_rank_ridge(rows: Rows, *, rank: int, lamb: float, preserve_scale: float) -> Factor:
    """UCE's ridge update of the target rows, cut to rank k where it acts: on the target rows (part 2).

    ``T − I = U_f A_f`` is UCE's closed form (:func:`ridge_factor`: targets → guides, keep rows
    weighted by ``preserve_scale``). Its fitted change of the targets is ``F = (T − I) Cᵀ [d, n]``;
    with ``Q [d, k]`` the top-k left singular vectors of F, ``Q Qᵀ (T − I)`` is the rank-k update whose
    change of the targets is F's best rank-k approximation (Eckart–Young): reduced-rank regression.
    """
    C, K = rows.C.to(F64), rows.K.to(F64)
    full = ridge_factor(
        ErasePairs.aligned(C, rows.G.to(F64)),
        K,
        lamb=lamb,
        erase_scale=1.0,
        keep_weights=torch.full((K.shape[0],), preserve_scale, dtype=F64),
    )
    fitted = full.U @ (full.A @ C.T)  # [d, n]
    Q = torch.linalg.svd(fitted, full_matrices=False).U[:, :rank]  # [d, k]
    return Factor(Q.contiguous(), ((Q.T @ full.U) @ full.A).contiguous(), full.cond)
