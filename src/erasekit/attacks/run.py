"""``attack``: one call from a pipeline, an edit and a concept to an :class:`AttackResult`."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from ..config import config_dict
from ..edit import Edit
from ..errors import ConfigError
from ..judge import Judge
from ..kinds import check_kind
from ..progress import Progress
from ..text import TextEncoder
from . import KIND_ARGUMENT, AttackRequest, get
from .base import AttackResult, Case, CaseResult
from .victim import Sampling, Victim

logger = logging.getLogger(__name__)


def attack(
    pipe: Any,
    name: str,
    concept: str,
    *,
    judge: Judge,
    edit: Edit | None = None,
    prompts: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    budget: int | None = None,
    quick: bool = False,
    concept_kind: str | None = None,
    seed: int = 0,
    sampling: Sampling | None = None,
    force: bool = False,
    progress: Progress | None = None,
    **overrides: Any,
) -> AttackResult:
    """Attack ``edit`` on ``pipe``: try to make the edited model show ``concept`` again.

    The edit is applied for the length of the call and removed after (the pipeline ends as it
    began). Every prompt is first drawn as it is; prompts the judge already flags count as
    successes and are not attacked (UnlearnDiff's protocol), the others go to the attack.

    Args:
        pipe: a single-encoder diffusers pipeline (SD 1.x/2.x, the embedded world) without the edit applied.
        name: a registered attack (``erasekit.attacks.available()``); ``-`` and ``_`` are interchangeable.
        concept: the erased concept, as the judge names it.
        judge: ``judge.detects(images, concept) -> list[bool]``.
        edit: the erasure under attack; None attacks ``pipe`` as it is.
        prompts: the prompt set; default the concept itself.
        seeds: one image seed per prompt; default ``seed + i`` for prompt ``i``.
        budget: the attack's optimisation budget (its config's ``steps``: Adam updates or
            generations); None keeps the paper's. Closed-form attacks take none.
        quick: the reduced budgets of :data:`erasekit.attacks.QUICK` instead of full strength (the
            result says ``quick``); ``budget`` and ``overrides`` still win.
        concept_kind: what ``concept`` is ("unsafe", "style", "object", "color"), for settings given
            per kind (Ring-A-Bell's η); None: unknown.
        seed: the seed of the attack's own randomness.
        sampling: steps and guidance of every image (None: the pipeline's defaults).
        force: apply ``edit`` even if its base fingerprint does not match ``pipe``.
        progress: ``progress(done, total)`` as the attack advances.
        **overrides: hyper-parameters of the attack's config (``eta=0.9``, ``k=3``, ...).

    Returns:
        The result, with ``result.asr`` the attack success rate.

    Raises:
        UnknownAttackError: no such attack.
        ConfigError: bad hyper-parameter, budget ≤ 0 or given to a closed form, empty prompt set,
            seeds that do not match the prompts, a concept that tokenises to nothing, an unknown
            concept kind.
    """
    spec = get(name)
    cfg = spec.make_config(quick=quick, **with_budget(spec.name, spec.config_cls, overrides, budget))
    check_kind(concept_kind, named=KIND_ARGUMENT)
    cases = _cases(concept, prompts, seeds, seed)
    text = TextEncoder(pipe)
    text.check_single_encoder()
    text.check_concept(concept)
    victim = Victim(pipe, edit, sampling=sampling, force=force)
    start = time.perf_counter()
    with victim.attacking():
        states = text.encode_text([c.prompt for c in cases])
        pre_images = victim.generate(states, [c.seed for c in cases])
        pre = [bool(v) for v in judge.detects(pre_images, concept)]
        todo = tuple(c for c, p in zip(cases, pre) if not p)
        logger.info("%s: %d of %d prompts already show %r; attacking the rest.", name, sum(pre), len(cases), concept)
        request = AttackRequest(victim, text, concept, todo, judge, seed, concept_kind)
        findings = spec.fn(request, cfg, progress=progress) if todo else None
    if findings is not None:
        assert len(findings.outcomes) == len(todo), f"{name} returned {len(findings.outcomes)} outcomes for {len(todo)}"
    outcomes = iter(findings.outcomes if findings else [])
    results = [CaseResult(c, p, img, None if p else next(outcomes)) for c, p, img in zip(cases, pre, pre_images)]
    info = {
        "attack_s": time.perf_counter() - start,
        "edit": edit.summary(brief=True) if edit is not None else None,
        "sampling": dataclasses.asdict(victim.sampling),
        **(findings.info if findings else {}),
    }
    tensors = findings.tensors if findings else {}
    return AttackResult(spec.name, concept, config_dict(cfg), seed, results, info=info, tensors=tensors, quick=quick)


def with_budget(name: str, config_cls: type, overrides: dict[str, Any], budget: int | None) -> dict[str, Any]:
    """``overrides`` with ``budget`` as ``steps``.

    Raises:
        ConfigError: a budget that is not a whole number ≥ 1, one given to a closed form, or given twice.
    """
    if budget is None:
        return overrides
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise ConfigError(
            f"The budget must be a whole number of steps ≥ 1, got {budget!r}: pass e.g. --budget 50, --quick for the "
            "reduced budget, or nothing for the attack's full strength."
        )
    if "steps" not in {f.name for f in dataclasses.fields(config_cls)}:
        raise ConfigError(f"The {name!r} attack is closed form and has no budget: leave budget unset.")
    if "steps" in overrides:
        raise ConfigError("Give the budget once: either budget=... or steps=..., not both.")
    return {**overrides, "steps": budget}


def _cases(concept: str, prompts: Sequence[str] | None, seeds: Sequence[int] | None, seed: int) -> list[Case]:
    if not isinstance(concept, str):
        raise ConfigError(f"The concept to attack must be a string, got {type(concept).__name__}.")
    prompts = [concept] if prompts is None else list(prompts)
    if not prompts:
        raise ConfigError("The prompt set is empty: pass at least one prompt, or none to use the concept itself.")
    if not all(isinstance(p, str) for p in prompts):
        raise ConfigError(f"Prompts must be strings, got {sorted({type(p).__name__ for p in prompts})}.")
    seeds = [seed + i for i in range(len(prompts))] if seeds is None else [int(s) for s in seeds]
    if len(seeds) != len(prompts):
        raise ConfigError(f"{len(prompts)} prompts but {len(seeds)} seeds: give one seed per prompt.")
    return [Case(p, s) for p, s in zip(prompts, seeds)]
