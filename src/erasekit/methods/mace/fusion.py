"""Stage 3 of MACE: closed-form fusion of the per-concept LoRAs into one update (MACE Sec. 3.4, Eq. 8).

With ``W`` the refined projection (stage 1), ``ΔW_i = B_i A_i`` concept i's LoRA and ``C_i`` the token
states of every position of concept i's prompts (``[n_i, d]``), the fused projection is

    W* = argmin Σ_i ‖W' C_iᵀ − (W + ΔW_i) C_iᵀ‖² + ps ‖W' Kᵀ − W Kᵀ‖² + λ ‖W' − W‖²
       = W + Σ_i ΔW_i C_iᵀ C_i M⁻¹,      M = λI + Σ_i C_iᵀ C_i + ps KᵀK       [d, d]

each LoRA reproduced on its own concept's inputs, all in one update. ``M`` depends on the text only, so
``Y_i = C_i M⁻¹`` is solved once (float64, Cholesky) and the update of a layer stays low-rank:
``Σ_i B_i · (A_i C_iᵀ Y_i)``, rank ≤ Σ r_i, beside stage 1's ``(W_old U) A``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...closed_form import F64, check_finite, spd_solve, weighted_gram

Updates = dict[str, tuple[Tensor, Tensor]]


def fusion_maps(rows: list[Tensor], K: Tensor, *, lamb: float, keep_scale: float) -> list[Tensor]:
    """``Y_i = C_i M⁻¹`` ``[n_i, d]`` float64 for each concept's rows ``C_i`` (module docstring)."""
    d = rows[0].shape[1]
    M = lamb * torch.eye(d, dtype=F64)
    trace = 0.0
    for C in rows:
        check_finite(concept=C)
        C = C.to(F64)
        M += C.T @ C
        trace += float((C * C).sum())
    if K.numel() and keep_scale > 0:
        M += weighted_gram(K, torch.full((K.shape[0],), keep_scale))
        trace += keep_scale * float((K.to(F64) ** 2).sum())
    Y_T, _ = spd_solve(M, torch.cat(rows).to(F64).T, name="MACE fusion", psd_trace=trace, lamb=lamb)  # [d, Σ n_i]
    return list(Y_T.T.split([C.shape[0] for C in rows]))


def fuse(base: Updates, loras: list[Updates], rows: list[Tensor], maps: list[Tensor]) -> Updates:
    """Per layer ``(B, A)`` of ``base + Σ_i B_i (A_i C_iᵀ Y_i)``, float32; dense where the rank reaches the layer's.

    Args:
        base: stage 1's update of every layer (its ``(B, A)``).
        loras: each concept's LoRA ``{layer: (B_i, A_i)}``; rows: its ``C_i``; maps: its ``Y_i``.
    """
    out = {}
    for name, (B0, A0) in base.items():
        Bs, As = [B0], [A0]
        for lora, C, Y in zip(loras, rows, maps):
            B, A = lora[name]
            Bs.append(B)
            As.append(((A.to(F64) @ C.to(F64).T) @ Y).float())  # [r, d]
        B, A = torch.cat(Bs, 1), torch.cat(As, 0)
        d_out, d_in = B.shape[0], A.shape[1]
        if B.shape[1] >= min(d_out, d_in):  # a LoRA this wide holds more than the dense update
            dW = (B.to(F64) @ A.to(F64)).float()
            eye = torch.eye(min(d_out, d_in))
            B, A = (eye, dW) if d_out <= d_in else (dW, eye)
        out[name] = (B.contiguous(), A.contiguous())
    return out
