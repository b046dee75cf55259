"""ACE's settings: :class:`ACEConfig` and the default prompt templates, neutral prompts and gate note.

Every hyper-parameter of the paper's five parts (package docstring) lives here: the prompt sets of
part 1 (``templates``, ``neutral``, ``augment``, ``prefix_words``), the subspace and closed form of
part 2 (``rank``, ``lamb``, ``preserve_scale``, ``whiten``), the gate's start of part 3
(``sharpness``), the adversarial rounds of part 4 (``epochs``, ``inner_steps``, ``soft_tokens``,
``loss``, ...), and ``GATE_NOTE``, the note part 5's edit carries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ...errors import ConfigError

TEMPLATES = (
    "{}",
    "a photo of {}",
    "an image of {}",
    "a painting of {}",
    "a picture of {}",
    "art by {}",
    "{}, detailed",
    "a drawing of {}",
)
NEUTRAL = ("", "a photo", "an image", "a painting", "a picture", "a drawing", "a scene", "art", "a photo of something")
GATE_NOTE = (
    "The token gate needs erasekit: Edit.load(path).apply(pipe). Plain pipe.load_lora_weights applies the "
    "LoRA part to every token (no gate)."
)


@dataclass(frozen=True)
class ACEConfig:
    rank: int = 8  # k per erased concept: dimension of the concept subspace = LoRA rank (capped at d)
    synonyms: tuple[str, ...] = ()  # erased with the concepts (their paraphrases, e.g. "starry night")
    templates: tuple[str, ...] = TEMPLATES  # "{}" filled with every concept, synonym and preserved concept
    neutral: tuple[str, ...] = NEUTRAL  # prompts whose tokens the gate must leave alone
    augment: int = 4  # copies of every target and neutral prompt behind random words
    prefix_words: int = 5  # random words per copy (UnlearnDiff's k = 5 prefix tokens)
    guide: str = " "  # what erased tokens should become
    lamb: float = 0.5  # λ of the closed form (UCE's)
    preserve_scale: float = 0.1  # ps of the closed form (keeps the ungated LoRA file mild)
    whiten: float = 1e-2  # ε of Σ_n + εI, relative to tr(Σ_n)/d
    sharpness: float | None = None  # initial s of the gate; None: from the rows (package docstring, part 3)
    epochs: int = 30  # adversarial rounds (package docstring, part 4)
    inner_steps: int = 10  # adversary's Adam steps per round
    inner_lr: float = 0.05  # adversary's step, relative to the rms of the target rows
    soft_tokens: int = 0  # k of the second adversary: learned input embeddings in front of the prompts (0: off)
    soft_lr: float = 5e-3  # its Adam step (the soft_prompt attack's, textual inversion's)
    lr: float = 1e-2  # outer Adam learning rate of U, A, P (relative to their mean magnitude)
    gate_lr: float = 1e-2  # outer Adam learning rate of log s and log τ
    keep_weight: float = 1.0  # w_keep
    gate_weight: float = 1.0  # w_gate
    loss: Literal["kv", "denoise"] = "kv"  # "denoise": add the denoising loss on the U-Net each round
    denoise_weight: float = 1.0
    denoise_images: int = 2  # original-model images of the concept for the denoising loss
    edit_keys: bool = True  # edit to_k as well as to_v
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("rank",):
            if getattr(self, name) < 1:
                raise ConfigError(f"ACEConfig.{name} must be ≥ 1, got {getattr(self, name)}.")
        for name in ("epochs", "inner_steps", "augment", "prefix_words", "soft_tokens"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ACEConfig.{name} must be ≥ 0, got {getattr(self, name)}.")
        if self.sharpness is not None and not self.sharpness > 0:
            raise ConfigError(f"ACEConfig.sharpness must be > 0 or None, got {self.sharpness}.")
        for name in ("lamb", "whiten", "inner_lr", "soft_lr", "lr", "gate_lr"):
            if not getattr(self, name) > 0 or not math.isfinite(getattr(self, name)):
                raise ConfigError(f"ACEConfig.{name} must be a finite number > 0, got {getattr(self, name)}.")
        for name in ("preserve_scale", "keep_weight", "gate_weight", "denoise_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"ACEConfig.{name} must be ≥ 0, got {getattr(self, name)}.")
        if self.loss not in ("kv", "denoise"):
            raise ConfigError(f"ACEConfig.loss must be 'kv' or 'denoise', got {self.loss!r}.")
        if not self.templates or not all("{}" in t for t in self.templates):
            raise ConfigError("ACEConfig.templates must be non-empty and each must hold '{}' for the concept.")
