"""Receler's hyper-parameters (the reference's argparse defaults), named settings, and a run's resumable state."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ...errors import ConfigError
from ..esd.config import ESDState


@dataclass(frozen=True)
class RecelerConfig:
    iterations: int = 500  # train_receler.py --iterations
    lr: float = 3e-4  # --lr (Adam on the erasers)
    rank: int = 128  # --eraser_rank: the eraser's hidden width r (ΔW = B A of rank r)
    reg_weight: float = 0.1  # --concept_reg_weight: weight of the concept-localised regularisation
    mask_threshold: float = 0.1  # --mask_thres: of the min-max normalised cross-attention map
    adversary_steps: int = 50  # --advrs_iters: attack steps per iteration (0: no adversarial prompts)
    adversary_tokens: int = 16  # --num_advrs_prompts: token states learned after the concept's words
    adversary_lr: float = 0.1  # Adam lr of the adversarial states (hard-coded in the reference)
    adversary_weight_decay: float = 0.1  # Adam weight decay of the adversarial states (hard-coded)
    negative_guidance: float = 1.0  # η of the ESD target, --negative_guidance
    start_guidance: float = 3.0  # CFG scale of the sampled x_t, --start_guidance
    ddim_steps: int = 50  # --ddim_steps
    seed: int = 0  # of the generator behind noise, timesteps, concepts, adversaries and the eraser init

    def __post_init__(self) -> None:
        for name in ("iterations", "rank", "ddim_steps", "adversary_tokens"):
            if not getattr(self, name) >= 1:
                raise ConfigError(f"RecelerConfig.{name} must be ≥ 1, got {getattr(self, name)}.")
        if not self.adversary_steps >= 0:
            raise ConfigError(f"RecelerConfig.adversary_steps must be ≥ 0 (0: none), got {self.adversary_steps}.")
        for name in ("lr", "adversary_lr"):
            if not getattr(self, name) > 0 or not math.isfinite(getattr(self, name)):
                raise ConfigError(f"RecelerConfig.{name} must be a finite number > 0, got {getattr(self, name)}.")
        for name in ("reg_weight", "adversary_weight_decay"):
            if not getattr(self, name) >= 0 or not math.isfinite(getattr(self, name)):
                raise ConfigError(f"RecelerConfig.{name} must be a finite number ≥ 0, got {getattr(self, name)}.")
        if not 0 <= self.mask_threshold < 1:
            raise ConfigError(
                f"RecelerConfig.mask_threshold must be in [0, 1) (of the normalised attention map), got "
                f"{self.mask_threshold}."
            )
        for name in ("negative_guidance", "start_guidance"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"RecelerConfig.{name} must be finite, got {getattr(self, name)}.")


@dataclass(frozen=True)
class RecelerState(ESDState):
    """A run after ``iteration`` iterations: what :func:`train_receler` needs to go on bit-identically:
    ESD's run state (``optimizer``: the erasers' Adam; ``losses``: the erase loss of every iteration done)
    and Receler's own.

    On disk: ``torch.save(dataclasses.asdict(state), path)``, back with ``RecelerState(**torch.load(path))``.

    Attributes:
        reg_losses: the regularisation of every iteration done.
        adversaries: per concept ``[K, d]`` adversarial token states, and their Adam ``state_dict`` s.
    """

    reg_losses: list[float]
    adversaries: list[Tensor]
    adversary_optimizers: list[dict[str, Any]]


# Measured on the embedded world ("parachute", seed 0, one thread, tests/methods/test_receler.py, slow; 16 prompts
# per set): target detection 1.00 -> 0.00, held-out paraphrases 0.94 -> 0.00, unrelated objects kept 1.00 -> 1.00;
# the whole test took 161 CPU s (the erasure 550 s wall on a machine shared at load ~10).
SETTINGS: dict[str, dict[str, Any]] = {
    "embedded": {
        "lr": 2e-3,
        "iterations": 200,
        "rank": 16,
        "ddim_steps": 10,
        "adversary_steps": 3,
        "adversary_tokens": 4,
    }
}
