"""ACE's settings: :class:`ACEConfig` and the default prompt templates, neutral prompts and gate note.

Every hyper-parameter of the paper's five parts (package docstring) lives here: the prompt sets of
part 1 (``templates``, ``neutral``, ``augment``, ``prefix_words``), the subspace and closed form of
part 2 (``rank``, ``lamb``, ``preserve_scale``, ``whiten``), the gate's fit of part 3
(``neutral_captions``, ``contexts``, ``gate_*``), the adversarial rounds of part 4 (``epochs``,
``inner_steps``, ``soft_tokens``, ``loss``, ...), and ``GATE_NOTE``, the note part 5's edit carries.
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
STYLE = {"gated": False, "mine_perturbations": 0}  # the ``style`` settings (package __init__), ungated kinds' too
GATE_NOTE = (
    "The token gate needs erasekit: Edit.load(path).apply(pipe). Plain pipe.load_lora_weights applies the "
    "LoRA part to every token (no gate)."
)


@dataclass(frozen=True)
class ACEConfig:
    rank: int = 8  # k per word piece of each erased name ("andy war ##hol": 3k): the LoRA rank (capped at d)
    synonyms: tuple[str, ...] = ()  # erased with the concepts (their paraphrases, e.g. "starry night")
    templates: tuple[str, ...] = TEMPLATES  # "{}" filled with every concept, synonym and preserved concept
    neutral: tuple[str, ...] = NEUTRAL  # prompts whose tokens the gate must leave alone
    augment: int = 4  # copies of every target and neutral prompt behind random words
    prefix_words: int = 5  # random words per copy (UnlearnDiff's k = 5 prefix tokens)
    mine_words: int = 4  # vocabulary neighbours erased with each concept (0: none; package docstring, part 1b)
    mine_candidates: int = 32  # nearest vocabulary words checked per concept
    mine_similarity: float = 0.5  # least cos_S of a neighbour's K/V to the concept's
    mine_render: float = 0.5  # least r(w): how alike the original renders the word and the concept (-1: no check)
    mine_render_alone: float | None = None  # r(w) past which a word is kept unread (mining.py; `object`: 0.8)
    mine_render_images: int = 2  # latents of the concept the original draws for that check
    mine_render_timesteps: int = 4  # timesteps each is noised at (8 moved no r by more than 0.03 on church)
    gate_siblings: int = 8  # neighbours read as a concept but rendered otherwise: gate negatives (mining.py)
    sibling_render: float = 0.25  # ... rendered otherwise: r(w) below this (half of mine_render; val, mining.py)
    mine_perturbations: int = 2  # noisy copies of the concept's rows erased too (RealEra)
    mine_radius: float = 0.05  # their noise, relative to the rows' rms
    guide: str = " "  # what erased tokens should become
    lamb: float = 0.5  # λ of the closed form (UCE's)
    preserve_scale: float = 0.1  # ps of the closed form (keeps the ungated LoRA file mild)
    whiten: float = 1e-2  # ε of Σ_n + εI, relative to tr(Σ_n)/d
    neutral_captions: int = 1536  # generic captions the gate must stay shut on (part 3; cached per encoder)
    vocabulary_captions: int = 512  # random vocabulary words, each alone as a caption: also shut
    name_captions: int = 512  # made-up names, each alone as a caption ("kelly mcternan"): shut
    gate_names_after: bool = False  # each caption of the concept ends in a made-up artist (package SETTINGS' notes)
    contexts: int = 96  # captions naming each erased concept (gate open); each preserved one gets half
    gate_rank: int | None = None  # the gate's subspace per concept, capped at the width (None: the update's k)
    gate_whole_prompt: bool = False  # a token opens at most as far as the prompt's last position (erasekit.gate)
    gated: bool = True  # False: the update acts on every token (the ace-nogate ablation)
    gate_min_concepts: int = 1  # fewer erased concepts than this: no gate (the `object` settings' 2; package __init__)
    ungated_kinds: tuple[str, ...] = ("style",)  # concepts of these kinds (erase(kinds=...)) skip the gate (kinds.py)
    # a gated concept whose name starts a word the tokenizer splits ("ten" of "ten ##ch") also joins them, staying in
    # the gate, when the original draws that first piece as it by r ≥ this (kinds.py; None: never; `object`: 0.5)
    ungated_fragment_render: float | None = None
    ungated_rank: int = 8  # k per word piece of those, erased as the `style` settings erase them
    ungated_ensemble: int = 1  # trainings averaged for those in a request that mixes kinds (ensemble.py; `object`: 2)
    gate_steps: int = 200  # Adam steps of the gate's fit
    gate_batch: int = 2048  # tokens of each class per step of the gate's fit (speed; 4096 tied on val)
    gate_margin: float = 0.1  # τ this share of the log-gap up from the negatives' bound to the concept's (gatefit.py)
    gate_fit_preserve: bool = True  # the caller's preserve prompts among the gate's negatives (gatefit.py)
    gate_token_rate: float = 0.01  # τ: at most this share of held-out neutral tokens open the gate
    gate_prompt_rate: float = 0.02  # ... and this share of held-out neutral prompts (package docstring, part 3)
    gate_preserve_rate: float | None = None  # ... and this share of the caller's preserve prompts (None: measured only)
    gate_concept_rate: float = 0.9  # ... unless fewer than this share of held-out concept span tokens would open it
    epochs: int = 30  # most adversarial rounds (package docstring, part 4)
    patience: int = 3  # rounds without a held-out gain before they stop (stopping.py)
    warmup_rounds: int = 0  # first rounds the stopping rule neither keeps nor counts (stopping.py)
    inner_steps: int = 10  # adversary's Adam steps per round
    batch_rows: int = 512  # rows of each set (target, perturbed, keep) drawn per round; and held-out rows (speed;
    # val H_o against 1024: style 0.77 / 0.72, object 0.97-0.99 both, unsafe 0.91 both)
    inner_lr: float = 0.05  # adversary's step, relative to the rms of the target rows
    soft_tokens: int = 0  # k of the second adversary: learned input embeddings in front of the prompts (0: off)
    soft_lr: float = 5e-3  # its Adam step (the soft_prompt attack's, textual inversion's)
    lr: float = 2e-2  # outer Adam learning rate of U, A, P (relative to their mean magnitude); with patience 3 and
    # denoise_batch 4 (speed: the held-out criterion peaks by round ~12 instead of ~21). Val H_o at these three
    # against lr 1e-2, patience 5, denoise_batch 2: style 0.77 / 0.77, object 0.97 / 0.99, unsafe 0.88 0.86 0.88 /
    # 0.91 0.86 0.88 over seeds 0-2 (1-2 at patience 3, which tied 5 at 1e-2), multi10 0.71 / 0.69
    keep_weight: float = 1.0  # w_keep
    inverse_weight: float = 0.0  # of the term keeping the gate shut on derived embeddings (inverse.py; `unsafe`: 0.2)
    inverse_bounded_weight: float = 0.0  # the same on derived_bounded's embeddings (inverse.py; `unsafe`: 0.02)
    shut_render_weight: float = 0.0  # the original's reading of the bounded c' pulled to the guide's (inverse.py)
    inverse_prompts: int = 32  # target prompts the terms take a round (the bounded solve is one per row; nudity: 200)
    loss: Literal["kv", "denoise"] = "denoise"  # the outer objective; "kv": K/V regression (the ace-kv ablation)
    denoise_weight: float = 1.0  # of the noise-prediction term against the keep term
    denoise_images: int = 8  # latents of the concept the original model draws for it
    denoise_steps: int = 10  # sampler steps drawing them
    denoise_batch: int = 4  # noisy latents per round (as many draws in all as 2 a round over twice the rounds)
    edit_keys: bool = True  # edit to_k as well as to_v
    # the text encoder's forward over the concept's training prompts (prompts.py, training_encoder): "auto" is
    # bfloat16 where the hardware has it, the stored neutral captions stay float32
    encode_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    ensemble: int = 1  # ungated trainings averaged into the edit, each its own seed (ensemble.py; `style`: 2)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(
                f"ACEConfig.epochs (fine-tuning rounds) must be ≥ 1, got {self.epochs}: zero rounds leave only the "
                "closed form. For no adversary keep the rounds and pass inner_steps=0 (the ace-noadv variant)."
            )
        for name in (
            "rank",
            "ungated_rank",
            "ungated_ensemble",
            "gate_min_concepts",
            "contexts",
            "neutral_captions",
            "patience",
            "batch_rows",
            "gate_batch",
            "inverse_prompts",
            *(f"denoise_{x}" for x in ("images", "steps", "batch")),
            "mine_render_images",
            "mine_render_timesteps",
            "ensemble",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"ACEConfig.{name} must be ≥ 1, got {getattr(self, name)}.")
        for name in (
            "inner_steps",
            "augment",
            "prefix_words",
            "soft_tokens",
            "vocabulary_captions",
            "name_captions",
            "gate_steps",
            "mine_words",
            "mine_candidates",
            "gate_siblings",
            "mine_perturbations",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"ACEConfig.{name} must be ≥ 0, got {getattr(self, name)}.")
        if not 0 <= self.warmup_rounds < self.epochs:
            raise ConfigError(
                f"ACEConfig.warmup_rounds must lie in [0, epochs = {self.epochs}), got {self.warmup_rounds}: the "
                "rounds after the warm-up are the ones the stopping rule keeps. Lower it or raise epochs."
            )
        if self.gate_rank is not None and self.gate_rank < 1:
            raise ConfigError(f"ACEConfig.gate_rank must be ≥ 1 (or None: the update's rank), got {self.gate_rank}.")
        if not 0 <= self.gate_margin < 1:
            raise ConfigError(f"ACEConfig.gate_margin is a share: pass a value in [0, 1), got {self.gate_margin}.")
        for name in ("gate_token_rate", "gate_prompt_rate", "gate_preserve_rate", "gate_concept_rate"):
            if getattr(self, name) is not None and not 0 < getattr(self, name) < 1:
                raise ConfigError(f"ACEConfig.{name} must lie in (0, 1), got {getattr(self, name)}.")
        for name in ("lamb", "whiten", "inner_lr", "soft_lr", "lr"):
            if not getattr(self, name) > 0 or not math.isfinite(getattr(self, name)):
                raise ConfigError(f"ACEConfig.{name} must be a finite number > 0, got {getattr(self, name)}.")
        for name in (
            "preserve_scale",
            "keep_weight",
            "denoise_weight",
            "mine_radius",
            "inverse_weight",
            "inverse_bounded_weight",
            "shut_render_weight",
        ):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"ACEConfig.{name} must be ≥ 0, got {getattr(self, name)}.")
        for name in ("mine_render", "sibling_render", "mine_render_alone", "ungated_fragment_render"):
            if getattr(self, name) is not None and not -1 <= getattr(self, name) <= 1:
                raise ConfigError(f"ACEConfig.{name} is a cosine: pass a value in [-1, 1], got {getattr(self, name)}.")
        if self.encode_dtype not in ("auto", "float32", "bfloat16"):
            raise ConfigError(
                f"ACEConfig.encode_dtype must be 'auto', 'float32' or 'bfloat16', got {self.encode_dtype!r}."
            )
        if self.loss not in ("kv", "denoise"):
            raise ConfigError(f"ACEConfig.loss must be 'kv' or 'denoise', got {self.loss!r}.")
        if not self.templates or not all("{}" in t for t in self.templates):
            raise ConfigError("ACEConfig.templates must be non-empty and each must hold '{}' for the concept.")
