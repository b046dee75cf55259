"""MACE: Mass Concept Erasure in Diffusion Models (Lu et al., CVPR 2024, arXiv 2403.06135).

Three stages, each in its own module, as the reference runs them (Shilin-LU/MACE ``training.py``,
``src/cfr_lora_training.py``, ``src/cfr_utils.py``, ``src/fuse_lora_close_form.py``, commit 057e7a6;
read, not copied: its licence is non-commercial):

1. :mod:`.refine`: closed-form refinement of every cross-attention ``to_k``/``to_v`` so that the words
   *co-existing* with the concept in its prompts (which, read by a causal encoder, carry residual
   information about it) give the K/V of the same words around the guide (Eq. 4);
2. :mod:`.train`: one rank-r LoRA per concept on the refined K/V, trained with the attention-map loss
   (:mod:`.attention`, Eq. 6) on the concept's region in images of it (:mod:`.regions`);
3. :mod:`.fusion`: the LoRAs fused in closed form into one update that reproduces each LoRA on its own
   concept's prompts (Eq. 8). Mass erasure is this one call with many concepts.

The result is one :class:`~erasekit.edit.Edit`: per layer ``[W_old U, B_1, …, B_n] · [A; A_1 C_1ᵀ Y_1; …]``,
stage 1's low-rank update beside the fused LoRAs (dense where that is smaller), which diffusers loads.
Defaults are the reference's object config (``configs/object/erase_ship.yaml``).

Where we depart from the reference and the paper, and why:

- **Masks through an interface.** The reference generates images with SD and segments them with
  Grounded-SAM. Here the images and masks come from a *region source* (:mod:`.regions`): the
  pipeline's ``concept_regions`` (the embedded world renders scenes of the concept and gives the
  object's region from the renderer's geometry; styles get the whole image, as the reference's art
  LoRAs train without masks), or :func:`from_segmenter` around a user's segmenter for a real model.
  Without any source the LoRAs are skipped with a warning and the edit is stage 1 alone
  (``no_regions="whole_image"`` trains on whole images instead). A concept whose masks are empty
  is a ConfigError that names the fix.
- **Prompt templates** are ours (the reference's 31 are under its licence), ``n_prompts`` drawn per
  concept with a seeded ``random.Random``; no GPT augmentation.
- **Preservation.** The reference adds cached statistics of COCO captions and of a domain set
  (``cache_coco.pt``, ``preserve_weight``); we use the request's preserve set in the same templates,
  weighted ``preserve_scale`` / ``fuse_preserve_scale`` (0 in the object config, so off by default).
  The fusion's keep rows keep the *refined* outputs (the reference mixes in original-model values).
- **λ > 0.** Configs with ``lamb: 0`` rely on those caches to make the system solvable; without them
  it is singular, so λ must be positive.
- **Concept positions** (``use_pooler``): the concept's tokens plus the end token and every padding
  position after it. With CLIP's tokenizer, whose padding is the end token, that is what the
  reference marks; for other tokenizers (the embedded world's MiniLM) it is the same set by position.
- **One generator.** Prompts, LoRA initialisation (peft's uniform ±1/√d_in for ``A``, ``B = 0``, where
  the reference's diffusers layer draws ``A`` from N(0, 1/r)), images, timesteps and noise come from
  ``torch.Generator().manual_seed(seed)``; no global RNG. The pipeline's weights are never written:
  stage 1's update and the LoRA are added by forward hooks during training.
- **The LoRAs are not written to disk** between stages, and stage 3 is solved in embedding space.
- **Settings ``embedded``** (lr 1e-2, 100 steps, λ 10, ``fuse_preserve_scale`` 0.02; why in ``config.py``):
  "parachute" 1.00 -> 0.00 on its target prompts and on its held-out paraphrases, unrelated prompts
  1.00 -> 1.00 (16 prompts each, 23 s). multi10 in one call (the world's 13 other concepts as preserve
  set): mean target detection 0.97 -> 0.13 (picasso 0.44 and blue 0.31 remain), unrelated prompts 1.00 ->
  0.83 (5 of 6), 380 s on a shared 2-core machine. ``tests/methods/test_mace.py``'s slow tests measure both.
"""

from __future__ import annotations

from ...closed_form import layer_updates
from ...concepts import keep_rows
from ...edit import Edit
from .. import EraseRequest, register
from .attention import attention_map_loss, probing
from .config import SETTINGS, TEMPLATES, MACEConfig
from .fusion import fuse, fusion_maps
from .prompts import coexisting_positions, concept_positions, concept_prompts, refinement_rows
from .refine import refine_factor
from .regions import RegionSource, Segmenter, from_segmenter
from .train import importance_weights, train_loras

__all__ = [
    "SETTINGS",
    "TEMPLATES",
    "MACEConfig",
    "RegionSource",
    "Segmenter",
    "attention_map_loss",
    "coexisting_positions",
    "concept_positions",
    "concept_prompts",
    "erase_mace",
    "from_segmenter",
    "fuse",
    "fusion_maps",
    "importance_weights",
    "mace",
    "probing",
    "refine_factor",
    "refinement_rows",
    "train_loras",
]


def erase_mace(request: EraseRequest, cfg: MACEConfig, *, regions: RegionSource | None = None) -> Edit:
    """The MACE edit of ``request.concepts`` (module docstring); ``regions`` overrides the pipeline's source.

    Returns:
        The edit; ``info["stages"]`` lists the stages run, ``info["losses"]`` each LoRA's attention losses.
    """
    guides = request.guides_or(cfg.guide)
    pairs = concept_prompts(request.concepts, guides, cfg)
    factor = refine_factor(request, cfg, pairs)
    base = layer_updates(request.layers(edit_keys=cfg.edit_keys), factor)
    prompts = [[text for text, _ in per] for per in pairs]
    loras, losses = train_loras(request, cfg, prompts, base, regions=regions)
    updates, stages = base, ["refine"]
    if loras:
        rows = [request.encoder(texts).states.reshape(-1, factor.U.shape[0]) for texts in prompts]
        keep = [t.format(p) for p in request.preserve for t in cfg.templates] if cfg.fuse_preserve_scale > 0 else []
        maps = fusion_maps(rows, keep_rows(request.encoder, keep), lamb=cfg.lamb, keep_scale=cfg.fuse_preserve_scale)
        updates, stages = fuse(base, loras, rows, maps), ["refine", "lora", "fuse"]
    info = {"stages": stages, "refine_rank": factor.rank, "cond": factor.cond, "losses": losses}
    return request.make_edit("mace", cfg, updates, guides=guides, info=info)


@register("mace", MACEConfig, settings=SETTINGS, default_settings="embedded")
def mace(request: EraseRequest, cfg: MACEConfig) -> Edit:
    """MACE: closed-form K/V refinement, per-concept LoRAs on an attention-map loss, closed-form fusion."""
    return erase_mace(request, cfg)
