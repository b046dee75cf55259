"""Two terms of part 4's rounds (package docstring): the gate kept shut on RECE's derived embeddings.

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

``derived_bounded`` solves the same Eq. 5 with each token's ``c'_l`` held within the norms real prompts
reach at its position (a larger λ per row, :mod:`erasekit.bounded_eq8`): that ``c'`` stays nearer the prompt's
own states, and a term on the unbounded ``c'`` alone left the gate open on 0.07-0.67 of its tokens
(``derived_bounded`` 0.35-0.95 over five seeds on 96 test prompts, stop 49).

The terms ask for an update whose derived embeddings of the target prompts, the unbounded and the bounded (within
the norms all the target prompts reach at each position), the gate shuts on:

    L_inv = mean over the prompts' tokens of relu(r(c'_t) / τ − 1),  one for each ``c'``

with ``r`` the gate's ratio (capped at the prompt's last position under a whole-prompt gate), differentiable
in ``U`` and ``A`` through the solves. Each is zero once every ``c'_t`` lies below the threshold. A round takes
them on a minibatch of the target prompts (``ACEConfig.inverse_prompts``).

Where the gate stays shut on a bounded ``c'`` the edit adds nothing, and the attack gets the original's reading of
``c'``: on nudity the original draws the concept from a share of those ``c'`` that moves with the training seed (3 of
28 to 21 of 30, stop 60). A third term (``shut_render_weight``, opt-in) reads the bounded ``c'`` of a minibatch of
target prompts with the frozen original, on noisy latents of the rounds' pool, and pulls that prediction to the
guide's on the same latent,

    L_shut = mean ‖ε_orig(x_t, c'(U, A)) − ε_orig(x_t, g)‖²,

through the solve, so the update is trained to have bounded preimages the original does not draw as the concept
(``adversaries._Denoiser.original_loss``). With it at 3 and the bounded term at 0.05, ``derived_bounded`` on 96
test prompts over ten training seeds fell from 0.53 to 0.38, and the training's share of its spread from 0.141 to
0.105 (point 6 asks ≤ 0.1), at a val H_o of 0.900 against 0.909 and 1.2-1.4 times nudity's seconds: not in the
``unsafe`` settings (``bench/ACE_MEASUREMENTS.md``, stops 61 and 62).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...bounded_eq8 import derived_in_range
from ...closed_form import F64, regenerating_embeddings
from ...gate import TokenGate

LAMB = 1e-3  # Eq. 8's λ: the attack's default (``DerivedConfig.reg_lamb``, RECE's --reg_scale)


def derived_states(
    U: Tensor,
    A: Tensor,
    S: Tensor,
    states: Tensor,
    bounds: tuple[Tensor, Tensor],
    which: tuple[bool, bool] = (True, True),
) -> tuple[Tensor | None, Tensor | None]:
    """Eq. 8's ``c'`` of token states ``[P, L, d]`` under the row map ``I + U A`` (``U [d, k]``, ``A [k, d]``;
    ``S [d, d]`` the K/V Gram, unscaled as the attack reads it), as the two attacks solve them: ``(unbounded,
    bounded)``, each ``[P, L, d]`` float32, the bounded one within ``bounds`` (``bounded_eq8.norm_range``); each
    solved only where ``which`` asks for it (None otherwise)."""
    P, L, d = states.shape
    M = torch.eye(d, dtype=F64) + U.to(F64) @ A.to(F64)
    MtS = M.T @ S.to(F64)
    Q = MtS @ M
    free = bounded = None
    if which[0]:  # one λ for every row: c' = c R, R = (Mᵀ S)ᵀ (λI + Q)⁻¹ = Eq. 8's rows for the identity, one solve
        free = states @ regenerating_embeddings(Q, MtS, torch.eye(d, dtype=F64), LAMB).float()
    if which[1]:  # one λ per row: a solve per token
        low, high = (x.repeat(P) for x in bounds)  # one per row
        bounded, _ = derived_in_range(Q, MtS, states.reshape(-1, d), LAMB, low, high)
        bounded = bounded.reshape(P, L, d)
    return free, bounded


def open_on_derived(
    gate: TokenGate,
    U: Tensor,
    A: Tensor,
    S: Tensor,
    states: Tensor,
    bounds: tuple[Tensor, Tensor],
    which: tuple[bool, bool] = (True, True),
) -> tuple[Tensor, Tensor]:
    """``L_inv`` (module docstring) for target prompts' states ``[P, L, d]`` on their unbounded and their bounded
    (within ``bounds``) derived embeddings: two scalars, each 0 when the gate is shut on every token of its ``c'``,
    and 0 without a solve where ``which`` leaves it out (a term weighted 0)."""
    terms = []
    for derived in derived_states(U, A, S, states, bounds, which):
        if derived is None:
            terms.append(states.new_zeros(()))
            continue
        r = gate.ratios(derived)  # [P, L, 1]
        terms.append(torch.relu(r / gate.threshold - 1).mean())
    return terms[0], terms[1]
