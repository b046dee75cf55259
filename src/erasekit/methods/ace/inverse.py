"""A term of part 4's rounds (package docstring): the gate kept shut on RECE's derived embedding.

RECE (Eq. 8) asks which text embedding ``c'`` the edited K/V projections map onto what the original ones
give for the concept's ``c``. ACE's update, taken as if its gate were open, is the row map ``M = I + U A``
(edited K/V ``= W_l M c``), so

    c' = (λI + Mᵀ S M)⁻¹ Mᵀ S c,     S = Σ_l W_lᵀ W_l,  λ = 1e-3                 (Eq. 8)

row by row, as ``erasekit.attacks.derived`` solves it. Where the gate opens on ``c'`` the edited K/V of
``c'`` are the original's of ``c``, and the concept comes back. ``M`` nulls the concept's directions almost
entirely (on the embedded world's nudity its weakest singular values are ~1e-4), so ``c'`` reaches far along
them (about 8 times the prompt's norm) and whether the gate opens there was left to the training seed: it
opened on 0.33-0.72 of ``c'``'s tokens over five seeds, and ``derived`` brought nudity back on 0.19-0.54 of
the test prompts (``bench/ACE_MEASUREMENTS.md``, "What `derived` turns on for a gated edit").

The term asks for an update whose derived embeddings of the target prompts the gate shuts on:

    L_inv = mean over the prompts' tokens of relu(r(c'_t) / τ − 1)

with ``r`` the gate's ratio (capped at the prompt's last position under a whole-prompt gate), differentiable
in ``U`` and ``A`` through the solve. It is zero once every ``c'_t`` lies below the threshold.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...gate import TokenGate, capped_at_prompt_end, concept_ratio

F64 = torch.float64
LAMB = 1e-3  # Eq. 8's λ: the attack's default (``DerivedConfig.reg_lamb``, RECE's --reg_scale)


def derived_states(U: Tensor, A: Tensor, S: Tensor, states: Tensor, lamb: float = LAMB) -> Tensor:
    """Eq. 8's ``c'`` ``[..., d]`` (float32) of token states ``[..., d]`` under the row map ``I + U A``
    (``U [d, k]``, ``A [k, d]``; ``S [d, d]`` the K/V Gram, unscaled as the attack reads it). The solve is in
    float64: ``Mᵀ S M`` is near singular where the update nulls the concept."""
    M = torch.eye(S.shape[0], dtype=F64) + U.to(F64) @ A.to(F64)
    MtS = M.T @ S.to(F64)
    Q = MtS @ M + lamb * torch.eye(S.shape[0], dtype=F64)
    return states @ torch.linalg.solve(Q, MtS).T.float()


def open_on_derived(gate: TokenGate, U: Tensor, A: Tensor, S: Tensor, states: Tensor) -> Tensor:
    """``L_inv`` (module docstring) for the target prompts' states ``[P, L, d]``: a scalar, 0 when the gate is
    shut on every token of their derived embeddings."""
    derived = derived_states(U, A, S, states)
    r = concept_ratio(derived, gate.basis, gate.mean)  # [P, L, 1]
    if gate.whole_prompt:
        r = capped_at_prompt_end(r)
    return torch.relu(r / gate.threshold - 1).mean()
