"""The registry of red-teaming attacks: a config dataclass plus one function, registered by name.

An attack is ``fn(request: AttackRequest, cfg, *, progress=None) -> Findings``, with one outcome per
case of ``request.cases`` (the prompts the edited model does not already show the concept for).
:func:`attack` is the entry point: it builds the request, judges the un-attacked images, runs the
attack on the rest and returns an :class:`AttackResult` with the attack success rate. Adding an
attack is a new module with ``@register("name", NameConfig)`` and its name on the import line at the
bottom; the CLI reads the registry.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from ..errors import UnknownAttackError
from ..judge import Judge
from ..registry import Registry
from ..text import TextEncoder
from .base import AttackResult, Case, CaseResult, Findings, Outcome, attack_success_rate
from .victim import Sampling, Victim


@dataclass(frozen=True)
class AttackRequest:
    """What every attack gets.

    Attributes:
        victim: the pipeline with the edit applied (``victim.original()`` reaches the base weights).
        text: the pipeline's text encoder, differentiable in chosen token slots.
        concept: the concept to bring back, as the judge names it.
        cases: the prompts to attack, each with the seed of its image.
        judge: decides whether an image shows ``concept``.
        seed: the seed of the attack's own randomness (noise draws, timesteps, sampling, search).
    """

    victim: Victim
    text: TextEncoder
    concept: str
    cases: tuple[Case, ...]
    judge: Judge
    seed: int = 0

    def generator(self, *salt: object) -> torch.Generator:
        """A CPU generator seeded from ``seed`` and ``salt`` (e.g. the case index): independent streams."""
        digest = hashlib.sha256(repr((self.seed, *salt)).encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))

    def original_latents(self) -> Tensor:
        """``[N, C, h, w]`` latents of the images the *original* model makes for the cases (their seeds)."""
        with self.victim.original():
            states = self.text.encode_text([c.prompt for c in self.cases])
            return self.victim.latents(states, [c.seed for c in self.cases])

    def judged(self, embeds: Tensor, cases: Sequence[Case]) -> tuple[list[Image.Image], list[bool]]:
        """Images of the edited model for token states ``[B, L, d]`` (case seeds) and the judge's verdicts."""
        images = self.victim.generate(embeds, [c.seed for c in cases])
        return images, [bool(v) for v in self.judge.detects(images, self.concept)]


AttackFn = Callable[..., Findings]


@dataclass(frozen=True)
class Attack:
    name: str
    config_cls: type
    fn: AttackFn

    @property
    def summary(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0]

    @property
    def budgeted(self) -> bool:
        """Whether the attack optimises for a number of ``steps`` (a budget); closed forms do not."""
        return "steps" in {f.name for f in dataclasses.fields(self.config_cls)}


REGISTRY: Registry[Attack] = Registry("attack", UnknownAttackError, normalize=lambda name: name.replace("-", "_"))


def register(name: str, config_cls: type) -> Callable[[AttackFn], AttackFn]:
    """Decorator: register ``fn`` as the attack ``name`` with its config class."""

    def wrap(fn: AttackFn) -> AttackFn:
        REGISTRY.add(name, Attack(name, config_cls, fn))
        return fn

    return wrap


def get(name: str) -> Attack:
    """The attack registered as ``name`` (``soft-prompt`` and ``soft_prompt`` are the same).

    Raises:
        UnknownAttackError: no such attack; the message suggests the closest names.
    """
    return REGISTRY.get(name)


def available() -> list[str]:
    return REGISTRY.names()


from . import derived, discrete, ringabell, soft_prompt  # noqa: E402, F401
from .run import attack  # noqa: E402

__all__ = [
    "Attack",
    "AttackRequest",
    "AttackResult",
    "Case",
    "CaseResult",
    "Findings",
    "Judge",
    "Outcome",
    "Sampling",
    "Victim",
    "attack",
    "attack_success_rate",
    "available",
    "get",
    "register",
]
