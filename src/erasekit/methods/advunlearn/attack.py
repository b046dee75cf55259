"""AdvUnlearn's inner maximisation: ``k`` soft tokens before the concept that bring it back.

With ``θ`` the text encoder being trained and ``θ*`` the frozen original (text encoder and U-Net),
the attack looks for input embeddings ``a [k, d_tok]`` of ``k`` tokens put after the start token
(the reference's ``prefix_k``) such that the U-Net, reading ``τ_θ([a; c])``, predicts the noise the
original predicts for the concept:

    min_a  ‖ε(x_t, τ_θ([a; c]), t) − ε_θ*(x_t, c, t)‖²          (``soft_prompt_attack``)

by ``attack_steps`` Adam steps (the reference's ``attack_method="pgd"`` takes plain Adam steps, no
projection), each on a fresh ``x_t`` and ``t``. The outer step then trains ``θ`` on ``τ_θ([a; c])``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ...text import Slotted, TextEncoder


def attack_loss(e_n: Tensor, e_p: Tensor) -> Tensor:
    """``‖e_n − e_p‖²`` mean: how far the attacked prediction ``e_n`` is from the original's ``e_p`` for the concept."""
    return F.mse_loss(e_n.float(), e_p.float())


def random_tokens(text: TextEncoder, k: int, generator: torch.Generator) -> Tensor:
    """``[k, d_tok]`` input embeddings of ``k`` vocabulary tokens drawn from ``generator`` (the reference's init)."""
    vocab = text.vocabulary()
    ids = vocab[torch.randint(len(vocab), (k,), generator=generator)]
    return text.table.weight.detach()[ids.to(text.device)].float().clone()


def soft_prompt_attack(
    text: TextEncoder,
    slotted: Slotted,
    init: Tensor,
    sample: Callable[[], tuple[Tensor, Tensor, Tensor]],
    predict: Callable[[Tensor, Tensor, Tensor], Tensor],
    *,
    steps: int,
    lr: float,
) -> Tensor:
    """The adversarial token embeddings ``[k, d_tok]`` after ``steps`` Adam steps from ``init``.

    Args:
        text: the pipeline's text encoder (with the trained LoRA hooked in).
        slotted: the concept's token ids with ``k`` slots after the start token.
        init: ``[k, d_tok]`` starting embeddings (random tokens, or the latest attack's).
        sample: ``() -> (x_t, t, e_p)``, a fresh latent, its timestep and the original's prediction for the concept.
        predict: ``(x_t, t, states [1, L, d]) -> ε`` of the U-Net.
        steps, lr: Adam's budget.
    """
    a = init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([a], lr=lr)
    for _ in range(steps):
        x_t, t, e_p = sample()
        states = text.encode(slotted.ids, slots=slotted.slots, slot_embeds=a)
        loss = attack_loss(predict(x_t, t, states), e_p)
        (a.grad,) = torch.autograd.grad(loss, a)  # only the tokens: the LoRA factors stay untouched
        opt.step()
    return a.detach()
