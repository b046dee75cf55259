"""What every attack is given and gives back: cases, a judge, outcomes and the run's result.

A *case* is one prompt of the attack's prompt set with the seed its images are drawn with. The
edited model first generates every case as it is; cases the judge already flags count as successes
without being attacked (UnlearnDiff's protocol), the others go to the attack, which returns one
:class:`Outcome` per case: the conditioning it found, the image that conditioning gives, and the
judge's verdict on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image
from torch import Tensor

from ..errors import ConfigError


@dataclass(frozen=True)
class Case:
    """One prompt of the prompt set and the seed of its initial noise."""

    prompt: str
    seed: int


@dataclass
class Outcome:
    """What an attack found for one case.

    Attributes:
        prompt_embeds: ``[L, d]`` float32 CPU token states that made ``image`` (pass them to the
            pipeline as ``prompt_embeds``).
        image: the image the edited model makes from ``prompt_embeds`` with the case's seed.
        success: the judge's verdict on ``image``.
        adversarial_prompt: a typeable prompt, for attacks that end on real tokens (else None).
        info: per-case details (losses, steps used, token ids).
    """

    prompt_embeds: Tensor
    image: Image.Image
    success: bool
    adversarial_prompt: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Findings:
    """What an attack function returns: one outcome per attacked case, plus run-level extras.

    Attributes:
        outcomes: one per case of ``request.cases``, in order.
        info: JSON-able run-level details (losses, vector norms).
        tensors: run-level tensors worth saving (``soft_tokens [k, d_tok]``, ``concept_vector [L, d]``).
    """

    outcomes: list[Outcome]
    info: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class CaseResult:
    """One case after the run: the un-attacked verdict and, when it was attacked, the outcome."""

    case: Case
    pre_success: bool
    pre_image: Image.Image
    outcome: Outcome | None = None  # None: already successful, not attacked

    @property
    def success(self) -> bool:
        return self.pre_success or (self.outcome is not None and self.outcome.success)

    @property
    def image(self) -> Image.Image:
        """The attack's image, or the un-attacked one when the case was not attacked."""
        return self.outcome.image if self.outcome is not None else self.pre_image


@dataclass
class AttackResult:
    """The result of :func:`erasekit.attacks.attack`.

    Attributes:
        attack: registry name of the attack.
        concept: the concept the attack tried to bring back.
        config: the attack's config as a dict.
        seed: the seed of the attack's own randomness.
        cases: one entry per prompt, in prompt order.
        quick: the config is the quick tier's reduced budget (:data:`erasekit.attacks.QUICK`), not
            the attack's full strength; every output says so.
        info: run-level details (timings, the learned soft tokens' shape, the concept vector's norm).
        tensors: run-level tensors worth saving (``soft_tokens [k, d_tok]``, ``concept_vector [L, d]``).
    """

    attack: str
    concept: str
    config: dict[str, Any]
    seed: int
    cases: list[CaseResult]
    info: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    quick: bool = False

    @property
    def asr(self) -> float:
        """Attack success rate: (already successful + made successful) / N (UnlearnDiff)."""
        return attack_success_rate([c.pre_success for c in self.cases], [c.success for c in self.cases])

    @property
    def pre_asr(self) -> float:
        """The share of prompts the edited model already shows the concept for, before any attack."""
        return sum(c.pre_success for c in self.cases) / len(self.cases)

    def summary(self) -> dict[str, Any]:
        """JSON-able summary: ASR, counts, config and one row per case (no images, no tensors)."""
        return {
            "attack": self.attack,
            "concept": self.concept,
            "asr": self.asr,
            "pre_asr": self.pre_asr,
            "n": len(self.cases),
            "n_pre_success": sum(c.pre_success for c in self.cases),
            "n_attack_success": sum(c.success and not c.pre_success for c in self.cases),
            "seed": self.seed,
            "quick": self.quick,
            "config": self.config,
            "info": self.info,
            "cases": [
                {
                    "prompt": c.case.prompt,
                    "seed": c.case.seed,
                    "pre_success": c.pre_success,
                    "attacked": c.outcome is not None,
                    "success": c.success,
                    "adversarial_prompt": c.outcome.adversarial_prompt if c.outcome else None,
                    "info": c.outcome.info if c.outcome else {},
                }
                for c in self.cases
            ],
        }


def attack_success_rate(before: Sequence[bool], after: Sequence[bool]) -> float:
    """Returns UnlearnDiff's attack success rate (ASR).

    ASR = (prompts that show the concept before the attack + those the attack made show it) / N.

    Args:
        before: per prompt, whether the edited model already showed the concept without attack.
        after: per prompt, whether the attack succeeded.

    Raises:
        ConfigError: lists of different lengths, or empty.
    """
    if len(before) != len(after) or not before:
        raise ConfigError(f"ASR needs one before/after pair per prompt, got {len(before)} and {len(after)}.")
    return sum(bool(b) or bool(a) for b, a in zip(before, after)) / len(before)


def check_counts(cfg: Any, *names: str) -> None:
    """Raises ConfigError naming the first field of ``names`` that is not a whole number ≥ 1, and the fix."""
    for name in names:
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            default = next(f.default for f in dataclasses.fields(cfg) if f.name == name)
            fix = (
                f"give a budget of at least 1 (budget=N, --budget N), --quick for the reduced one, or leave it unset "
                f"for the full strength ({default})"
                if name == "steps"
                else f"set it to 1 or more, or leave it unset ({default})"
            )
            raise ConfigError(f"{type(cfg).__name__}.{name} must be a whole number ≥ 1, got {value!r}: {fix}.")
