"""AdvUnlearn: Defensive Unlearning with Adversarial Training for Robust Concept Erasure in Diffusion Models
(Zhang et al., NeurIPS 2024, arXiv 2405.15234).

Erase a concept from the *text encoder* by adversarial training: an inner attack learns ``k``
soft tokens that, put before the concept, make the U-Net draw it again (:mod:`.attack`); the outer
step trains the text encoder so that this adversarial prompt gives ESD's negatively guided
prediction, while a retain set of prompts keeps its predictions (:mod:`.train`):

    min_θ  E ‖ε(x_t, τ_θ([a*; c]), t) − (ε*(x_t, ∅, t) − η (ε*(x_t, c, t) − ε*(x_t, ∅, t)))‖² + γ L_retain(θ)
    a* = argmin_a ‖ε(x_t, τ_θ([a; c]), t) − ε*(x_t, c, t)‖²

As the reference runs it: OPTML-Group/AdvUnlearn ``train-scripts/AdvUnlearn.py`` with
``utils/attack_util.py`` (``soft_prompt_attack``, ``prefix_k``, ``word_embd``) and
``utils/get_loss.py``; defaults are that script's argparse defaults (``text_encoder_full``,
1000 iterations, lr 1e-5, 200 warmup iterations, a 1-token attack of 30 Adam steps at lr 1e-3
before every iteration, retain batch 5 with a separate retain step).

Where we deviate, and why:

- **A LoRA, not full weights.** The reference fine-tunes every weight of the text encoder's
  transformer blocks; ours trains ``ΔW = B A`` (rank ``rank``) on each of their ``nn.Linear``
  layers, so the result is an :class:`Edit` of ``text_encoder.*`` layers that applies, removes and
  saves like any other (``pipe.load_lora_weights`` reads the file for CLIP encoders). Biases and
  the final layer norm (``--norm_layer``) are not trained. The reference's lr (1e-5) was tuned for
  full weights; the ``"embedded"`` settings use 1e-3 for the LoRA (chosen on val; 3e-3 erased the
  paraphrases better but made the run chaotic: on some seeds or thread counts it wrecked unrelated prompts, see
  ``config.py``), 250 iterations, an attack of 5 steps every 5 iterations, 10 DDIM steps.
- **Timestep.** As in erasekit's ESD: the U-Net is evaluated at the scheduler timestep the
  sampled ``x_t`` is at, not at a DDPM step counted from the other end (see :mod:`..esd`).
- **The sampled x_t** comes from the original U-Net and encoder, as in the reference (there the
  U-Net is never trained, so "the model being trained" and the original sample alike).
- **Retain set.** The reference's COCO object prompt lists are not shipped; ours are the last
  ``retain_pool`` captions of erasekit's COCO-10k set that do not name a concept, plus the
  preserve set (``retain_set="preserve"``: the preserve set alone). A preserve prompt that names an
  erased concept is a ConfigError. Batches are drawn with replacement across iterations, where
  the reference goes through the set before it repeats a prompt.
- **Eval mode.** The text encoder keeps its mode (eval, as loaded): the reference calls
  ``.train()``, which for CLIP changes nothing (no dropout) but would turn on BERT's dropout and
  make the run depend on more than the seed.
- **Randomness** from one ``torch.Generator`` seeded with ``seed``; the adversarial init draws
  tokens from the vocabulary without the special ones (the reference draws any id).
"""

from __future__ import annotations

from ...edit import Edit
from .. import EraseRequest, register
from .config import SETTINGS, AdvUnlearnConfig, AdvUnlearnState
from .train import train_advunlearn

__all__ = ["SETTINGS", "AdvUnlearnConfig", "AdvUnlearnState", "advunlearn", "train_advunlearn"]


@register("advunlearn", AdvUnlearnConfig, settings=SETTINGS, default_settings="embedded")
def advunlearn(request: EraseRequest, cfg: AdvUnlearnConfig) -> Edit:
    """AdvUnlearn: adversarial training of the text encoder (ESD target on attack prompts + retain set), as a LoRA."""
    return train_advunlearn(request, cfg)
