"""Receler: Reliable Concept Erasing of Text-to-Image Diffusion Models via Lightweight Erasers
(Huang et al., ECCV 2024, arXiv 2311.17717).

A lightweight eraser after every cross-attention layer removes the concept from that layer's
output, trained with ESD's negatively guided target (Eq. 3), a concept-localised regularisation
that keeps each eraser's output zero outside the region the concept's tokens attend to (Eq. 4,
:mod:`.regions`), and adversarial prompt learning: token states after the concept's words that
bring it back, learned against the erasers in turn (Eq. 5, :mod:`.train`).

As the reference runs it: jasper0314-huang/Receler ``train_receler.py``, ``receler/concept_reg.py``,
``receler/erasers/utils.py`` (``AdapterEraser``), ``receler/erasers/diffusers_erasers.py``; defaults
are that script's argparse defaults (500 iterations, lr 3e-4, eraser rank 128, regularisation
weight 0.1, mask threshold 0.1, 50 attack steps on 16 adversarial tokens, Adam lr 0.1 with weight
decay 0.1 for them).

Where we deviate, and why:

- **The eraser is a LoRA on** ``attn2.to_out.0``. The reference's eraser reads the attention
  block's output ``o = W_o h + b_o`` and adds ``E(o) = U GELU(D o + d) + u``. Ours is
  ``E(h) = B A h`` on the input ``h`` of the output projection (the heads' attention output), so
  ``o' = (W_o + B A) h + b_o``: an :class:`Edit` that applies, removes and saves as a LoRA like every
  other method's and that plain diffusers loads. Against the reference this (1) drops the GELU
  (a LoRA is linear), (2) drops the eraser's two biases ``d`` and ``u`` (a LoRA has none; a
  constant shift would be a bias update), and (3) reads ``h`` where the reference reads ``W_o h + b_o``
  (for the linear eraser ``U D (W_o h + b_o) = (U D W_o) h + U D b_o``: the same maps of ``h`` up to
  the bias term, with ``A`` standing for ``D W_o``). The init matches: ``A`` as
  ``nn.Linear`` draws ``D``, ``B = 0`` as ``zero_module(up)``.
- **Regularisation maps** are taken at the resolution nearest to a quarter of the latent side
  (the reference hard-codes 16 × 16 for SD's 64 × 64 latent), from attention probabilities
  recomputed by a hook (``softmax(QKᵀ/√d)`` of the layer's own ``to_q``/``to_k``) instead of
  LDM's patched ``CrossAttention`` returning them.
- **Timestep.** As in erasekit's ESD: the U-Net is evaluated at the scheduler timestep the
  sampled ``x_t`` is at, not at a DDPM step counted from the other end (see :mod:`..esd`).
- **Randomness** from one ``torch.Generator`` seeded with ``seed`` (concept, steps, noise,
  the adversarial init, the eraser init); the reference uses the global RNGs.
"""

from __future__ import annotations

from ...edit import Edit
from .. import EraseRequest, register
from .config import SETTINGS, RecelerConfig, RecelerState
from .train import train_receler

__all__ = ["SETTINGS", "RecelerConfig", "RecelerState", "receler", "train_receler"]


@register("receler", RecelerConfig, settings=SETTINGS, takes_preserve=False, default_settings="embedded")
def receler(request: EraseRequest, cfg: RecelerConfig) -> Edit:
    """Receler: lightweight erasers (LoRA on attn2.to_out.0), concept-localised regularisation, adversarial prompts."""
    return train_receler(request, cfg)
