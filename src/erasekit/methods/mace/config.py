"""MACE's hyper-parameters (the reference's object config, ``configs/object/erase_ship.yaml``) and named settings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ...errors import ConfigError

# Ours (the reference's templates are under a non-commercial licence): each "{}" takes the concept or its guide.
TEMPLATES = (
    "{}",
    "a photo of {}",
    "an image of {}",
    "a picture of {}",
    "a painting of {}",
    "a drawing of {}",
    "a sketch of {}",
    "an illustration of {}",
    "a rendering of {}",
    "a snapshot of {}",
    "a close-up of {}",
    "{} in a photo",
    "{}, detailed",
    "art showing {}",
    "a scene with {}",
    "a picture showing {}",
)

NoRegions = Literal["refine_only", "whole_image"]


@dataclass(frozen=True)
class MACEConfig:
    guide: str = "ground"  # mapping_concept: what every concept's prompts are mapped to in stage 1 (ship config)
    templates: tuple[str, ...] = TEMPLATES  # the augmented prompts ("augment: true"); ours, see above
    n_prompts: int = 30  # aug_length: prompts per concept, drawn from the templates (all, if fewer)
    lamb: float = 1e3  # λ of the stage-1 refinement and of the fusion (ship config: lamb 1e3)
    preserve_scale: float = 0.0  # train_preserve_scale: weight of the preserve rows in stage 1 (ship config: 0)
    fuse_preserve_scale: float = 0.0  # fuse_preserve_scale: the same in stage 3 (ship config: 0)
    rank: int = 1  # rank of each concept's LoRA on to_k / to_v (ship config: rank 1)
    lr: float = 1e-5  # learning_rate (AdamW), ship config
    steps: int = 50  # max_train_steps per concept's LoRA, ship config
    batch_size: int = 1  # train_batch_size
    n_images: int = 8  # images (with masks) of each concept the LoRA trains on (the reference generates 8)
    weight_decay: float = 1e-2  # adam_weight_decay
    max_grad_norm: float = 1.0  # max_grad_norm
    importance_sampling: bool = True  # timesteps drawn from f(t) = σ(0.05(t−200)) − σ(0.05(t−400))
    use_pooler: bool = True  # the attention loss also covers the end-of-text state and the padding after it
    edit_keys: bool = True  # LoRAs and refinement on to_k as well as to_v (the reference: both)
    no_regions: NoRegions = "refine_only"  # without a region source: skip the LoRAs, or use the whole image
    seed: int = 2024  # ship config's seed, of one torch.Generator behind every draw

    def __post_init__(self) -> None:
        for name in ("n_prompts", "rank", "batch_size", "n_images"):
            if isinstance(getattr(self, name), bool) or not getattr(self, name) >= 1:
                raise ConfigError(f"MACEConfig.{name} must be a whole number ≥ 1, got {getattr(self, name)!r}.")
        if self.steps < 0:
            raise ConfigError(f"MACEConfig.steps must be ≥ 0 (0: no LoRA stage), got {self.steps}.")
        if not self.lamb > 0 or not math.isfinite(self.lamb):
            raise ConfigError(
                f"MACEConfig.lamb must be a finite number > 0, got {self.lamb}: the reference's lamb=0 configs lean "
                "on cached COCO statistics we do not have, and without them the system is singular. Use e.g. 1e3."
            )
        for name in ("lr", "max_grad_norm"):
            if not getattr(self, name) > 0 or not math.isfinite(getattr(self, name)):
                raise ConfigError(f"MACEConfig.{name} must be a finite number > 0, got {getattr(self, name)}.")
        for name in ("preserve_scale", "fuse_preserve_scale", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"MACEConfig.{name} must be ≥ 0, got {getattr(self, name)}.")
        if not self.templates or not all("{}" in t for t in self.templates):
            raise ConfigError("MACEConfig.templates must be non-empty and each must hold '{}' for the concept.")
        if self.no_regions not in ("refine_only", "whole_image"):
            raise ConfigError(f"MACEConfig.no_regions must be 'refine_only' or 'whole_image', got {self.no_regions!r}.")


# The embedded world (MiniLM states, a 4.6 M-parameter U-Net; N = 16 prompts per set, judge detection): the
# reference's lr 1e-5 for 50 steps moves a rank-1 LoRA nowhere (parachute 1.00 -> 1.00 on its target prompts);
# lr 1e-2 for 100 steps erases it (1.00 -> 0.00) in 17 s on one thread. λ = 1e3 was set for CLIP's states (norm
# ~28 per token, 30 prompts × 77 tokens); MiniLM's 16 × 24 rows are far lighter, and λ = 10 weighs them as the
# reference's λ weighs CLIP's. With ten concepts (multi10, N = 8, the world's 13 other concepts as the preserve
# set) the fused LoRAs cost unrelated prompts their object or colour (6 prompts: 1.00 -> 0.17) unless the fusion
# keeps the preserve set: fuse_preserve_scale 0.02 gave mean target detection 0.15 with unrelated 0.83, 0.1 gave
# 0.19 / 0.83, and preserve_scale = fuse_preserve_scale = 0.1 gave 0.28 / 1.00. Without a preserve set it does nothing.
SETTINGS: dict[str, dict] = {"embedded": {"lr": 1e-2, "steps": 100, "lamb": 10.0, "fuse_preserve_scale": 0.02}}
