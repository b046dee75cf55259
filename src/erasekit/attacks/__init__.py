"""The registry of red-teaming attacks: a config dataclass plus one function, registered by name.

An attack is ``fn(request: AttackRequest, cfg, *, progress=None) -> Findings``, with one outcome per
case of ``request.cases`` (the prompts the edited model does not already show the concept for).
:func:`attack` is the entry point: it builds the request, judges the un-attacked images, runs the
attack on the rest and returns an :class:`AttackResult` with the attack success rate. Adding an
attack is a new module with ``@register("name", NameConfig)`` and its name on the import line at the
bottom; the CLI reads the registry.

Every config's defaults are the attack's full strength, its paper's budget; :meth:`Attack.make_config`
with ``quick=True`` applies the reduced budgets of :data:`QUICK` instead (CI and smoke runs; results
say ``"quick": true``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from ..config import make_config, renamed
from ..errors import UnknownAttackError
from ..judge import Judge
from ..kinds import CONCEPT_KINDS, check_kind
from ..registry import Registry
from ..text import TextEncoder
from .base import AttackResult, Case, CaseResult, Findings, Outcome, attack_success_rate
from .victim import Sampling, Victim

KIND_ARGUMENT = "(concept_kind; None: not known)"  # how a bad kind's message names it (kinds.check_kind)


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
        concept_kind: what ``concept`` is, one of :data:`CONCEPT_KINDS`, for settings that papers
            give per kind (Ring-A-Bell's η); None: unknown. Callers that know it (a world) fill it.
    """

    victim: Victim
    text: TextEncoder
    concept: str
    cases: tuple[Case, ...]
    judge: Judge
    seed: int = 0
    concept_kind: str | None = None

    def __post_init__(self) -> None:
        check_kind(self.concept_kind, named=KIND_ARGUMENT)

    def generator(self, *salt: object) -> torch.Generator:
        """A CPU generator seeded from ``seed`` and ``salt`` (e.g. the case index): independent streams."""
        digest = hashlib.sha256(repr((self.seed, *salt)).encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))

    def original_latents(self, cases: Sequence[Case] | None = None) -> Tensor:
        """``[N, C, h, w]`` latents of the images the *original* model makes for ``cases`` (default the request's)."""
        cases = self.cases if cases is None else cases
        with self.victim.original():
            states = self.text.encode_text([c.prompt for c in cases])
            return self.victim.latents(states, [c.seed for c in cases])

    def judged(self, embeds: Tensor, cases: Sequence[Case]) -> tuple[list[Image.Image], list[bool]]:
        """Images of the edited model for token states ``[B, L, d]`` (case seeds) and the judge's verdicts."""
        images = self.victim.generate(embeds, [c.seed for c in cases])
        return images, [bool(v) for v in self.judge.detects(images, self.concept)]


# The reduced budgets of the quick tier, per attack, each well under a minute per case on one CPU core
# in the embedded world; whatever is not listed keeps its full-strength default (k = 5 prefix tokens,
# soft_prompt's lr 0.08, Ring-A-Bell's 16 tokens). What they still win is the positive controls'
# (tests/attacks/test_positive_controls.py, causal world, 8 prompts): p4d +37.5 and unlearndiff +37.5
# points on weak UCE edits of "red" (10 timesteps x 4 updates), soft_prompt +75 on "nudity". The
# genetic search at 30 generations of 40 is far from converged (60 of 40 won 0.25 -> 0.50 on 4
# "garbage truck" prompts), so quick ringabell numbers understate the paper's attack. soft_prompt
# and ringabell were halved (batch 2, 30 generations) so that a quick compare row fits 20 minutes.
QUICK: dict[str, dict[str, Any]] = {
    "unlearndiff": {"steps": 40, "iterations": 4},
    "p4d": {"steps": 40, "iterations": 4},
    "ringabell": {"steps": 30, "population": 40},
    "soft_prompt": {"steps": 50, "batch_size": 2, "train_images": 8},
}

# Names kept for one release, each pointing at the attack that now carries it.
RENAMED = {"discrete": "unlearndiff"}

AttackFn = Callable[..., Findings]


@dataclass(frozen=True)
class Attack:
    """A registered attack: its config class, its function and what reports say about it.

    Attributes:
        white_box: the attack reads the model's weights, the edited ones against the originals
            (RECE's derived embedding); reports list it as a white-box diagnostic, not as a threat
            model an outside user could follow. The others only run the models (and differentiate
            them).
    """

    name: str
    config_cls: type
    fn: AttackFn
    white_box: bool = False

    @property
    def summary(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0]

    @property
    def budgeted(self) -> bool:
        """Whether the attack optimises for a number of ``steps`` (a budget); closed forms do not."""
        return "steps" in {f.name for f in dataclasses.fields(self.config_cls)}

    @property
    def quick(self) -> Mapping[str, Any]:
        """The overrides of the quick tier (empty for closed forms, which are quick already)."""
        return QUICK.get(self.name, {})

    def make_config(self, *, quick: bool = False, **overrides: Any) -> Any:
        """The attack's config: full strength, or with ``quick`` the reduced budget of :data:`QUICK`.

        ``overrides`` (``steps=...``, ``eta=...``; strings are parsed as from ``--set``) win over both.

        Raises:
            ConfigError: an unknown hyper-parameter, an ill-typed value, a budget of 0 or less.
        """
        return make_config(self.config_cls, {**(self.quick if quick else {}), **overrides})


REGISTRY: Registry[Attack] = Registry("attack", UnknownAttackError, normalize=lambda name: name.replace("-", "_"))


def register(name: str, config_cls: type, *, white_box: bool = False) -> Callable[[AttackFn], AttackFn]:
    """Decorator: register ``fn`` as the attack ``name`` with its config class."""

    def wrap(fn: AttackFn) -> AttackFn:
        REGISTRY.add(name, Attack(name, config_cls, fn, white_box))
        return fn

    return wrap


def get(name: str) -> Attack:
    """The attack registered as ``name`` (``soft-prompt`` and ``soft_prompt`` are the same).

    A name of :data:`RENAMED` warns (DeprecationWarning) and answers the attack that now carries it.

    Raises:
        UnknownAttackError: no such attack; the message suggests the closest names.
    """
    if isinstance(name, str) and name in RENAMED:
        name = renamed(None, RENAMED[name], new=f"the attack {RENAMED[name]!r}", old=f"the attack {name!r}")
    return REGISTRY.get(name)


def available() -> list[str]:
    return REGISTRY.names()


from . import derived, ringabell, soft_prompt, unlearndiff  # noqa: E402, F401
from .run import attack  # noqa: E402

__all__ = [
    "CONCEPT_KINDS",
    "QUICK",
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
