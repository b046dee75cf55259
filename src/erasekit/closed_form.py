"""The closed forms shared by UCE, RECE, the null-space method and the derived attack, in embedding space.

UCE's update of one projection (UCE Eq. 7, RECE Eq. 3), with erase rows ``c_i``, guide rows
``g_i`` (their targets are ``W_old g_i``), keep rows ``k_j`` and λ pulling towards ``W_old``:

    W_new = (λ W_old + es Σ W_old g_i c_iᵀ + ps Σ W_old k_j k_jᵀ) (λI + es Σ c_i c_iᵀ + ps Σ k_j k_jᵀ)⁻¹
          = W_old · T,   T = (λI + es GᵀC + ps KᵀK) M⁻¹,   M = λI + es CᵀC + ps KᵀK

Every term is ``W_old`` times a ``[d_in, d_in]`` matrix that depends only on the text, so one T
serves every layer that reads the same embeddings, and

    T − I = es (G − C)ᵀ C M⁻¹ = U A,   U = es (G − C)ᵀ  [d_in, n],   A = C M⁻¹  [n, d_in]

has rank ≤ n (the number of erase rows): the edit of layer l is the LoRA ``ΔW_l = (W_l U) A``.
Everything here runs in float64; only ``W_l U`` touches the model's weights.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from .concepts import ErasePairs
from .errors import ConfigError, NumericalError
from .targets import Target

logger = logging.getLogger(__name__)

F64 = torch.float64
COND_WARN = 1e8  # float32 loses about half its digits beyond this
COND_MAX = 1e14  # float64 solutions are meaningless beyond this
GEMM_WIDTH = 16  # float32 GEMMs run fastest with an output width that is a multiple of 16 (one AVX-512 register)


@dataclass(frozen=True)
class Factor:
    """``T − I = U @ A`` in embedding space, float64.

    Attributes:
        U: ``[d_in, r]``; the layer update is ``B_l = W_l @ U``.
        A: ``[r, d_in]``; shared by every layer.
        cond: condition number (upper bound) of the system solved, for the record.
    """

    U: Tensor
    A: Tensor
    cond: float = 1.0
    dense: bool = False  # A is the identity and U holds T − I itself

    @property
    def rank(self) -> int:
        return self.U.shape[1]

    @staticmethod
    def identity(d: int) -> Factor:
        """``T = I``: the empty edit."""
        return Factor(torch.zeros(d, 0, dtype=F64), torch.zeros(0, d, dtype=F64))

    def matrix(self) -> Tensor:
        """``T`` itself, ``[d_in, d_in]``."""
        return torch.eye(self.U.shape[0], dtype=F64) + self.U @ self.A

    def then(self, other: Factor) -> Factor:
        """The factor of ``T_self @ T_other`` (``other`` applied on top of ``self``).

        (I + U₁A₁)(I + U₂A₂) − I = [U₁ U₂] · [A₁(I + U₂A₂) ; A₂]
        """
        A1 = torch.addmm(self.A, self.A @ other.U, other.A)
        cond = max(self.cond, other.cond)
        return Factor(torch.cat([self.U, other.U], 1), torch.cat([A1, other.A], 0), cond).compact()

    def compact(self) -> Factor:
        """Collapse to the dense ``(T − I, I)`` once the rank reaches ``d_in``; exact."""
        d = self.U.shape[0]
        if self.rank < d or self.dense:
            return self
        return Factor(self.U @ self.A, torch.eye(d, dtype=F64), self.cond, dense=True)


def spd_solve(M: Tensor, rhs: Tensor, *, name: str, psd_trace: float, lamb: float) -> tuple[Tensor, float]:
    """``M⁻¹ rhs`` for ``M = λI + PSD`` by Cholesky, with a condition check.

    The smallest eigenvalue of M is ≥ λ and the largest ≤ λ + tr(PSD), so ``1 + tr/λ`` bounds the
    condition number for free; only when that bound is large do we compute it exactly.

    Raises:
        NumericalError: M is singular or too ill-conditioned for float64.
    """
    cond = 1.0 + psd_trace / lamb
    if cond > COND_WARN:
        eig = torch.linalg.eigvalsh(M.detach())  # a check, not part of the answer: M may carry a gradient
        cond = float(eig[-1] / eig[0]) if eig[0] > 0 else float("inf")
    if cond > COND_MAX:
        raise NumericalError(
            f"The {name} system is singular or ill-conditioned (condition number {cond:.3g} > {COND_MAX:.0e}): "
            f"its regulariser λ = {lamb:g} is too small for these embeddings. Raise λ (e.g. --set lamb=0.1)."
        )
    if cond > COND_WARN:
        logger.warning("%s system has condition number %.3g: results may lose precision.", name, cond)
    L, info = torch.linalg.cholesky_ex(M)
    if int(info) != 0:
        raise NumericalError(
            f"The {name} system is not positive definite (Cholesky failed at column {int(info)}): the "
            "embeddings or λ contain NaN/Inf or λ ≤ 0. Check the inputs; λ must be > 0."
        )
    return torch.cholesky_solve(rhs, L), cond


def weighted_gram(X: Tensor, w: Tensor) -> Tensor:
    """``Xᵀ diag(w) X`` in float64, ``[d, d]`` for ``X: [n, d]``."""
    X = X.to(F64)
    return (X * w.to(F64)[:, None]).T @ X


def pair_stats(pairs: ErasePairs, *, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """``(CᵀC, CᵀG)``, both ``[d, d]`` float64, in chunks and without materialising G.

    ``CᵀG = Σ_i c_i g_iᵀ = Sᵀ guide_rows`` where ``S`` sums the erase rows that share a guide row:
    with one guide for 1000 concepts, the second product costs O(n d) instead of O(n d²).
    """
    d = pairs.C.shape[1]
    CtC = torch.zeros(d, d, dtype=F64)
    S = torch.zeros(pairs.guide_rows.shape[0], d, dtype=F64)
    for start in range(0, pairs.C.shape[0], chunk):
        c = pairs.C[start : start + chunk].to(F64)
        CtC.addmm_(c.T, c)
        S.index_add_(0, pairs.guide_of[start : start + chunk], c)
    return CtC, S.T @ pairs.guide_rows.to(F64)


def check_finite(**tensors: Tensor) -> None:
    for name, X in tensors.items():
        if not torch.isfinite(X).all():
            raise NumericalError(f"The {name} embeddings hold NaN or Inf: check the text encoder's weights.")


def ridge_factor(
    pairs: ErasePairs,
    K: Tensor,
    *,
    lamb: float,
    erase_scale: float,
    keep_weights: Tensor,
) -> Factor:
    """UCE's closed form as ``T − I = U A`` (see the module docstring).

    Args:
        pairs: erase rows ``c_i`` and their guide rows ``g_i`` (the edited layer maps ``c_i`` to ``W_old g_i``).
        K: ``[m, d]`` keep rows ``k_j`` (may be empty).
        lamb: λ > 0.
        erase_scale: ``es``, weight of every erase row.
        keep_weights: ``[m]`` weight of each keep row (``ps`` times its multiplicity).
    """
    if lamb <= 0:
        raise ConfigError(f"λ must be > 0, got {lamb}: with λ = 0 the system is singular when n < d_in.")
    n, d = pairs.C.shape
    if K.numel():
        check_finite(keep=K)
    if n + K.shape[0] < d // 2:
        return _ridge_factor_woodbury(pairs, K, lamb=lamb, erase_scale=erase_scale, keep_weights=keep_weights)
    CtC, CtG = pair_stats(pairs)
    check_finite(erase=CtC, guide=CtG)
    M = lamb * torch.eye(d, dtype=F64) + erase_scale * CtC
    trace = erase_scale * float(torch.trace(CtC))
    if K.numel():
        M += weighted_gram(K, keep_weights)
        trace += float((K.to(F64) ** 2 * keep_weights.to(F64)[:, None]).sum())
    if n >= d:  # dense is cheaper: (U A)ᵀ = es M⁻¹ Cᵀ(G − C), M symmetric
        P_T, cond = spd_solve(M, erase_scale * (CtG - CtC), name="UCE", psd_trace=trace, lamb=lamb)
        return Factor(P_T.T.contiguous(), torch.eye(d, dtype=F64), cond, dense=True)
    C64 = pairs.C.to(F64)
    A_T, cond = spd_solve(M, C64.T, name="UCE", psd_trace=trace, lamb=lamb)  # [d, n] = M⁻¹ Cᵀ
    return Factor(erase_scale * (pairs.G.to(F64) - C64).T, A_T.T.contiguous(), cond)


def _ridge_factor_woodbury(
    pairs: ErasePairs, K: Tensor, *, lamb: float, erase_scale: float, keep_weights: Tensor
) -> Factor:
    """:func:`ridge_factor` when the n + m rows span far fewer than d dimensions.

    With ``V = [√es C; √w K]`` ``[n+m, d]``, ``M = λI + VᵀV`` and (Woodbury)
    ``M⁻¹ Cᵀ = (Cᵀ − Vᵀ (λI + V Vᵀ)⁻¹ V Cᵀ) / λ``: an (n+m)² system instead of d².
    """
    C64 = pairs.C.to(F64)
    check_finite(erase=C64, guide=pairs.G)
    V = C64 * erase_scale**0.5
    if K.numel():
        V = torch.cat([V, K.to(F64) * keep_weights.to(F64).sqrt()[:, None]])
    trace = float((V * V).sum())  # tr(VᵀV): the same bound as the d-dim system
    gram = lamb * torch.eye(V.shape[0], dtype=F64) + V @ V.T
    X, cond = spd_solve(gram, V @ C64.T, name="UCE", psd_trace=trace, lamb=lamb)  # [n+m, n]
    A = torch.addmm(C64, X.T, V, beta=1 / lamb, alpha=-1 / lamb)  # [n, d] = C M⁻¹, built row-wise: 3x faster
    return Factor(erase_scale * (pairs.G.to(F64) - C64).T, A, cond)


@torch.no_grad()
def layer_updates(targets: Iterable[Target], factor: Factor) -> dict[str, tuple[Tensor, Tensor]]:
    """Per-layer LoRA factors ``(B, A)`` of ``ΔW_l = W_l (T − I) = (W_l U) A``, float32 on CPU.

    One pass over the target weights. Where a rank-r LoRA would hold at least as much as the dense
    update (r ≥ min(d_out, d_in)), the layer stores the dense ``ΔW`` with an identity factor on its
    smaller side, which is still an exact LoRA of rank min(d_out, d_in). ``A`` (and each identity)
    is one tensor shared by the layers; a rank-r ``B`` is the first r columns of a ``[d_out, r + pad]``
    buffer (see below), so not contiguous: ``Edit.state_dict`` makes the file's copies.
    """
    updates, eyes = {}, {}
    r = factor.rank
    # products with float32 weights, cast once. U's zero columns up to a multiple of GEMM_WIDTH make
    # every W_l U a GEMM of that width (~30% faster at r = 461 with MKL); they give exact zeros
    U32 = torch.nn.functional.pad(factor.U.float(), (0, -r % GEMM_WIDTH))  # [d_in, r + pad]
    A32 = factor.A.float()
    for t in targets:
        W = t.weight.detach().float()  # fp16/bf16 weights are multiplied in float32
        d_out, d_in = W.shape
        if factor.U.shape[0] != d_in:
            raise ConfigError(
                f"{t.name} reads {d_in}-d embeddings but the text encoder gives {factor.U.shape[0]}-d ones: "
                "the U-Net and text encoder do not belong together."
            )
        B = (W @ U32.to(W.device))[:, :r]  # [d_out, r]
        if r < min(d_out, d_in):
            updates[t.name] = (B.cpu(), A32)
            continue
        dW = B if factor.dense else B @ A32.to(W.device)  # [d_out, d_in]
        k = min(d_out, d_in)
        if k not in eyes:
            eyes[k] = torch.eye(k)
        dW = dW.cpu().contiguous()
        updates[t.name] = (eyes[k], dW) if d_out <= d_in else (dW, eyes[k])
    return updates


# ---- RECE Eq. 8: the embedding that still regenerates a concept ---------------------------------------


def regenerating_embeddings(S_cur: Tensor, S_cross: Tensor, C: Tensor, reg_lamb: float) -> Tensor:
    """RECE Eq. 8 for rows ``C [n, d]``: ``c' = (λI + S_cur)⁻¹ S_cross c``, ``[n, d]`` float64.

    Args:
        S_cur: ``Σ_l W_lᵀ W_l`` over the current (edited) K/V weights, ``[d, d]``.
        S_cross: ``Σ_l W_lᵀ W_orig,l``, ``[d, d]``.
        C: the concept's token states.
        reg_lamb: λ > 0.
    """
    Q = S_cur.clone()
    Q.diagonal().add_(reg_lamb)
    return eq8_solve(Q, S_cross @ C.to(F64).T, reg_lamb).T


def eq8_solve(Q: Tensor, rhs: Tensor, reg_lamb: float) -> Tensor:
    """``Q⁻¹ rhs`` for Eq. 8's ``Q = λI + Σ W_curᵀ W_cur`` ``[d, d]`` and ``rhs`` ``[d, n]``."""
    X, _ = spd_solve(Q, rhs, name="RECE Eq. 8", psd_trace=float(torch.trace(Q.detach())), lamb=reg_lamb)
    return X


class Eq8:
    """Both sides of Eq. 8 for the running ``T``, updated per step ``T ← T (I + U A)`` of rank r.

    With ``S = Σ W_origᵀ W_orig`` over the edited layers, ``Σ W_curᵀ W_cur = Tᵀ S T = Z`` and, for the
    concept's rows ``C``, ``C Σ W_origᵀ W_cur = C S T = X``. A step updates both in place of a rebuild
    (2 d³ per product):

        X ← X (I + U A) = X + (X U) A                                             O(r d n)
        Z ← (I + U A)ᵀ Z (I + U A) = Z + Aᵀ Rᵀ + R A,   Rᵀ = Uᵀ Z + ½ (Uᵀ Z U) A    O(r d²)

    (expand the product, Z symmetric): one ``[r, d]·[d, d]`` product and two rank-r updates where the
    plain form takes four products and fresh ``[d, d]`` buffers.
    """

    def __init__(self, S: Tensor, C: Tensor):
        self.Z = S.clone()  # [d, d], updated in place
        self.X = C @ S  # [n, d]

    def step(self, f: Factor) -> None:
        UZ = f.U.T @ self.Z  # [r, d] = (Z U)ᵀ
        Rt = torch.addmm(UZ, UZ @ f.U, f.A, alpha=0.5)  # [r, d]
        self.Z.addmm_(f.A.T, Rt).addmm_(Rt.T, f.A)
        self.X.addmm_(self.X @ f.U, f.A)
