"""SPM: One-dimensional Adapter to Rule Them All (Lyu et al., CVPR 2024, arXiv 2312.16145).

A rank-1 adapter ``ΔW = B A`` on every ``nn.Linear`` of the U-Net's transformer blocks, trained so that
the adapted model ``θ`` no longer draws the concept ``c`` while keeping its predictions elsewhere:

    L = ‖ε_θ(x_t, c) − [ε*(x_t, n) − η (ε*(x_t, c) − ε*(x_t, n))]‖²  +  β · ‖ε_θ(x_t, a) − ε*(x_t, a)‖²

with ``ε*`` the frozen original, ``n`` the neutral prompt (``""``), ``x_t`` sampled by the adapted model
from noise with CFG 3 for 1..29 of 30 DDIM steps, and ``a`` the **latent anchors**: random token-state
sequences ``[L, d]`` of the concept's norm (times ``U(0.8, 1.2)``), each accepted with probability
``1 − cos(c, a)`` so that few lie near the concept (``train.anchor_states``, ``train.spm_loss``).
As the reference runs it: Con6924/SPM ``train_spm.py``, ``src/engine/sampling.py``
(``sample``), ``src/configs/prompt.py`` (``PromptEmbedsPair._erase_with_la``), ``src/models/spm.py``;
defaults from ``configs/snoopy/{config,prompt}.yaml``: 3000 iterations, lr 1e-4, cosine with 3 hard
restarts after 500 warm-up steps, η 1, β (``la_strength``) 1000, 4 anchors, rank 1, alpha 1.

Where we deviate, and why:

- **Facilitated Transport** (FT, on by default as in ``infer_spm.py``, which uses it unless
  ``--spm_multiplier`` is given). The reference scales the whole adapter, in every layer, by one number
  per prompt: ``m = max over the SPM's erased prompts e of max(clipcos, tokenuni)`` (``--matching_metric``
  default ``clipcos_tokenuni``; ``calculate_matching_score``), with ``clipcos`` the cosine of the prompt's
  and ``e``'s whole padded token states ``[77·768]`` and ``tokenuni = |ids(p) ∩ ids(e)| / |ids(e)|``
  over token ids without BOS/EOS/padding; it loads ``m · ΔW`` and samples with it, so the negative
  prompt's pass runs under the positive prompt's ``m`` too. We attach the same multiplier as an
  :class:`~erasekit.prompt_scale.PromptScale` (``train.transport``; ``ft_metric`` ``"cosine_tokens"``,
  ``"cosine"``, ``"tokens"`` for the reference's ``clipcos_tokenuni``, ``clipcos``, ``tokenuni``), which
  adds ``m · B A x`` from hooks rather than merging ``ΔW`` (see there). Where we depart:
  ``tokenuni`` needs token ids, which the U-Net is never handed (and a pipeline given ``prompt_embeds``
  never has): a concept word counts as present when some prompt position's state is within cosine
  ``ft_threshold`` (τ = 0.7) of that word's state in the concept's own encoding. On the embedded world
  (parachute, van gogh, church; 16 target, 16 paraphrase and 16 unrelated prompts each) this equals the
  exact id share on all 144 prompts for any τ in [0.6, 0.8] (present words at cosine ≥ 0.84, absent
  ones ≤ 0.57); on CLIP (SD) it is unmeasured. ``m`` is computed at every U-Net call from the states it
  receives (the same states at every step, so the same ``m``), and a guidance pair is recognised by its
  bit-identical latent halves, whose rows both take the positive half's ``m``. Several concepts in one
  edit share one adapter and take the max over the concepts, the reference's max over an SPM's erased
  prompts; several applied SPM edits each keep their own ``m``, as the reference's several SPMs do. An
  attack that feeds the U-Net states (soft prompts) moves ``m`` with them. The README's plain-LoRA use
  ("the Facilitate Transfer mechanism of SPM will NOT be activated") is ``facilitated_transport=False``,
  or a kohya export with ``--unscaled``.
- **Layers.** ``nn.Linear`` layers only (``attn1``/``attn2`` q/k/v/out, feed-forward, and
  ``proj_in``/``proj_out`` where they are linear): SD 1.x's 1x1-convolution ``proj_in``/``proj_out``,
  which the reference also adapts, are left out because :class:`~erasekit.Edit` holds ``nn.Linear`` updates.
  The LoRA is ESD's (``methods/esd/lora.py``: ``A`` as ``kaiming_uniform_(a=√5)``, ``B = 0``, the
  reference's init); its scale ``alpha / rank`` is fixed at 1 (the reference's default, rank 1, alpha 1).
- **Optimizer.** ``torch.optim.AdamW`` (weight decay 0.01) in place of bitsandbytes' ``AdamW8bit``
  (the same update, 8-bit states); the schedule is diffusers' ``cosine_with_restarts``, which kohya's
  scheduler helper the reference calls wraps. The ``embedded`` settings (lr 1e-2, 300 iterations, 50
  warm-up steps) are what erased on the embedded world within 10 minutes; lr 1e-3 did not (``config.SETTINGS``).
- **Timestep.** The reference evaluates at ``timesteps_1000[int(s · 1000 / 30)]`` after ``s`` of 30 DDIM
  steps; we use the DDIM timestep the latent is at (``timesteps_30[s]``), the same up to rounding.
  Its random resolution buckets (``dynamic_resolution``) do not apply to a fixed-size latent.
- **Anchors** are fed as token states directly (the reference pairs each with the unconditional
  embedding and applies guidance 1, which gives the same prediction).
- **Guides** are each concept's neutral prompt (the reference's ``neutral``), ``""`` by default; SPM has
  no preserve set. Randomness comes from one ``torch.Generator`` seeded with ``seed``; runs checkpoint
  and resume bit for bit as ESD's (``train.train_spm``), and a resumed run keeps ``iterations``.
"""

from __future__ import annotations

from ...edit import Edit
from .. import EraseRequest, register
from .config import SETTINGS, SPMConfig
from .train import adapted_layers, anchor_states, spm_loss, train_spm, transport

__all__ = ["SETTINGS", "SPMConfig", "adapted_layers", "anchor_states", "spm", "spm_loss", "train_spm", "transport"]


# Rows of ``erasekit compare``: FT trades generality for specificity (on parachute its paraphrases, which lack
# the word, get m ≈ 0.1-0.4 and come back: 0.94 detected, against 0.06 with the adapter at 1), so both are shown
VARIANTS = {"spm": {}, "spm-noft": {"facilitated_transport": False}}


@register("spm", SPMConfig, settings=SETTINGS, takes_preserve=False, default_settings="embedded", variants=VARIANTS)
def spm(request: EraseRequest, cfg: SPMConfig) -> Edit:
    """SPM: a rank-1 adapter on the transformer blocks, trained with latent anchoring, scaled per prompt by FT."""
    return train_spm(request, cfg)
