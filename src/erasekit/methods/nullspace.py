"""The plain null-space variant of SPEED without IPF/DPA/IEC (Li et al., ICLR 2026, arXiv 2503.07392).

The full method, with prior filtering, augmentation and invariant constraints, is ``speed.py``.

UCE trades erasure against preservation through ``preserve_scale``; here preservation is a hard
constraint. With ``K [m, d]`` the keep rows and ``Q = I − V_r V_rᵀ`` the projector onto the
orthogonal complement of their span (``V_r``: right singular vectors of K), every update is
``ΔW = Y`` with ``Y Q = Y``, so ``ΔW k = 0`` for every keep row: preserved outputs do not move.
Among those, the ridge solution of the erase objective is

    min_Y  es Σ ‖Y c_i − W_old (g_i − c_i)‖² + λ ‖Y‖²,   Y = Y Q
    ⇒  ΔW = W_old · es (G − C)ᵀ · Ĉ (λI + es ĈᵀĈ)⁻¹,   Ĉ = C Q

(Q commutes with ĈᵀĈ, so the rows of Ĉ M̂⁻¹ stay in range(Q)). Rank ≤ n, shared by every layer,
as UCE. When the keep rows span all d dimensions there is no null space left: ``keep_energy < 1``
protects only the leading directions that hold that fraction of the keep set's energy, as SPEED
does with its prior subspace. Token selection, guide and retain set follow UCE (``uce.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..closed_form import F64, Factor, check_finite, layer_updates, pair_stats, spd_solve
from ..concepts import GuideAlignment, TokenSpan, erase_rows, keep_rows
from ..edit import Edit
from ..errors import ConfigError
from . import EraseRequest, register


@dataclass(frozen=True)
class NullspaceConfig:
    lamb: float = 0.5  # λ, as UCE's script
    erase_scale: float = 1.0
    keep_energy: float = 1.0  # fraction of the keep rows' energy protected exactly; 1.0 = their whole span
    rank_tol: float = 1e-6  # singular values below rank_tol · s_max do not count as directions
    edit_keys: bool = True
    guide: str = " "
    tokens: TokenSpan = "span"
    alignment: GuideAlignment = "reference"

    def __post_init__(self) -> None:
        if not self.lamb > 0:
            raise ConfigError(f"NullspaceConfig.lamb must be > 0, got {self.lamb}: λ = 0 makes the system singular.")
        if not 0 < self.keep_energy <= 1:
            raise ConfigError(f"NullspaceConfig.keep_energy must be in (0, 1], got {self.keep_energy}.")
        if not 0 < self.rank_tol < 1:
            raise ConfigError(f"NullspaceConfig.rank_tol must be in (0, 1), got {self.rank_tol}.")


def keep_projector(K: Tensor, *, keep_energy: float, rank_tol: float) -> tuple[Tensor, int]:
    """``Q = I − V_r V_rᵀ`` ``[d, d]`` float64 and r, the number of protected directions."""
    d = K.shape[1]
    _, s, Vh = torch.linalg.svd(K.to(F64), full_matrices=False)
    r = int((s > rank_tol * s[0]).sum()) if s.numel() else 0
    if keep_energy < 1 and r:
        energy = torch.cumsum(s[:r] ** 2, 0) / (s[:r] ** 2).sum()
        r = int((energy < keep_energy).sum()) + 1
    V_r = Vh[:r].T  # [d, r]
    return torch.eye(d, dtype=F64) - V_r @ V_r.T, r


@register("nullspace", NullspaceConfig)
def nullspace(request: EraseRequest, cfg: NullspaceConfig) -> Edit:
    """The plain null-space variant of SPEED without IPF/DPA/IEC: preserved embeddings' outputs stay unchanged."""
    guides = [" " if g == "" and cfg.tokens == "span" else g for g in request.guides_or(cfg.guide)]
    retain = ["", *request.preserve]
    request.prefetch(request.concepts, guides, retain)
    pairs = erase_rows(request.encoder, request.concepts, guides, tokens=cfg.tokens, alignment=cfg.alignment)
    K = keep_rows(request.encoder, retain, tokens=cfg.tokens)
    n, d = pairs.C.shape
    Q, r = keep_projector(K, keep_energy=cfg.keep_energy, rank_tol=cfg.rank_tol)
    if r >= d:
        raise ConfigError(
            f"The preserve set spans all {d} embedding directions, so no update can leave it unchanged. "
            "Preserve fewer concepts, or protect only its leading directions with --set keep_energy=0.99."
        )
    CtC, CtG = pair_stats(pairs)
    check_finite(erase=CtC, guide=CtG)
    M = cfg.lamb * torch.eye(d, dtype=F64) + cfg.erase_scale * (Q @ CtC @ Q)  # λI + es ĈᵀĈ, Ĉ = C Q
    trace = cfg.erase_scale * float(torch.trace(Q @ CtC @ Q))
    # Re-projecting with Q is exact in theory; it removes the solve's rounding from the keep span.
    if n >= d:  # dense: (U A)ᵀ = es M⁻¹ Q Cᵀ(G − C)
        P_T, cond = spd_solve(M, cfg.erase_scale * Q @ (CtG - CtC), name="null-space", psd_trace=trace, lamb=cfg.lamb)
        factor = Factor((Q @ P_T).T.contiguous(), torch.eye(d, dtype=F64), cond, dense=True)
    else:  # U = es (G − C)ᵀ, A = Ĉ M⁻¹
        C64 = pairs.C.to(F64)
        A_T, cond = spd_solve(M, Q @ C64.T, name="null-space", psd_trace=trace, lamb=cfg.lamb)
        factor = Factor(cfg.erase_scale * (pairs.G.to(F64) - C64).T, (Q @ A_T).T.contiguous(), cond)
    updates = layer_updates(request.layers(edit_keys=cfg.edit_keys), factor)
    info = {"rank": factor.rank, "cond": cond, "protected_directions": r}
    return request.make_edit("nullspace", cfg, updates, guides=guides, info=info)
