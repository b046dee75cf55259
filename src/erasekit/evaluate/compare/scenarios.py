"""What a comparison erases: scenarios of a world, their preserve sets, prompt sets and protocol.

A scenario is a set of concepts erased by one edit, those whose prompts the attacks get, and the
kinds of concept they are. The named scenarios come from the world (:meth:`World.scenarios`, e.g.
the embedded world's ``style``, ``object``, ``unsafe`` and ``multi10``); any one concept of the world
is a scenario too. Nothing here names a world or a concept: it all goes through
:func:`erasekit.worlds.get`.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erasekit import worlds
from erasekit.errors import ConfigError
from erasekit.text import mentions
from erasekit.worlds import World

from ..protocols import EvalProtocol, MetricSpec, PromptSetSpec, load_protocol

WorldRef = str | World  # a world's name or the world


def get_world(world: WorldRef) -> World:
    """Returns the world named ``world`` (a :class:`World` is returned as it is)."""
    return worlds.get(world) if isinstance(world, str) else world


@dataclass(frozen=True)
class Scenario:
    """Concepts erased together, and those whose prompts the attacks get.

    Attributes:
        name: the scenario's name (a named scenario of the world, or the concept).
        concepts: erased by one edit.
        attacked: the concepts whose target prompts the attacks get.
        kinds: the distinct kinds of ``concepts``, sorted (one specificity set each).
        kind: the most common kind of ``concepts`` (ties: the kind that comes first in ``concepts``); a
            method's per-kind settings follow it, e.g. RECE's ``object-hard`` for ``multi10`` (4 objects,
            3 styles, 2 colours and nudity).
        protocol: the shipped evaluation protocol whose sampling and seeds score it.
        world: the world's name.
    """

    name: str
    concepts: tuple[str, ...]
    attacked: tuple[str, ...]
    kinds: tuple[str, ...]
    kind: str
    protocol: str
    world: str


def make_scenario(world: World, name: str, concepts: Sequence[str], attacked: Sequence[str], protocol: str) -> Scenario:
    """Returns the scenario ``name`` of ``concepts`` of ``world``, kinds read from the world.

    Raises:
        ConfigError: a concept the world does not know, or an attacked concept that is not erased.
    """
    kinds = [world.concept_kind(c) for c in concepts]
    if not concepts or not set(attacked) <= set(concepts):
        raise ConfigError(f"scenario {name!r}: attacked {list(attacked)} must be among its concepts {list(concepts)}.")
    kind = Counter(kinds).most_common(1)[0][0]  # ties: the first counted, i.e. the first in `concepts`
    return Scenario(name, tuple(concepts), tuple(attacked), tuple(sorted(set(kinds))), kind, protocol, world.name)


def named_scenarios(world: WorldRef = worlds.DEFAULT) -> dict[str, Scenario]:
    """Returns the named scenarios of ``world``, in its order (the default set of a comparison)."""
    w = get_world(world)
    return {
        name: make_scenario(w, name, spec["concepts"], spec["attacked"], spec["protocol"])
        for name, spec in w.scenarios().items()
    }


def scenario(name: str, world: WorldRef = worlds.DEFAULT) -> Scenario:
    """Returns a named scenario of ``world``, or the one-concept scenario of any concept of the world.

    The one-concept scenario is scored under the protocol of the world's first named scenario.

    Raises:
        ConfigError: neither a scenario nor a concept (the message lists both), or a world without scenarios.
    """
    w = get_world(world)
    named = named_scenarios(w)
    if name in named:
        return named[name]
    if not named:
        raise ConfigError(f"the world {w.name!r} has no comparison scenarios (it has no judge or concepts to score).")
    try:
        w.concept_kind(name)
    except ConfigError as err:
        raise ConfigError(f"unknown scenario {name!r}: use one of {sorted(named)} or a concept. {err}") from None
    return make_scenario(w, name, (name,), (name,), next(iter(named.values())).protocol)


def preserve_set(sc: Scenario) -> list[str]:
    """Returns what methods are told to keep: half (rounded down) of the concepts of ``sc``'s kinds that it does
    not erase, the same half every time, in the world's order; the other half is unseen (:func:`unseen_set`)."""
    kept = []
    for kind, names in get_world(sc.world).concepts().items():
        pool = sorted(c for c in names if c not in sc.concepts) if kind in sc.kinds else []
        chosen = set(random.Random(0).sample(pool, len(pool) // 2))
        kept += [c for c in names if c in chosen]
    return kept


def preserve_prompts(sc: Scenario, n: int) -> list[str]:
    """Returns the ``fit`` target prompts of :func:`preserve_set`'s concepts, ``n`` each: real prompts a
    method may calibrate on (ACE's gate), from the split methods may see. A prompt that also names an erased
    concept (a world's prompt can name two) is left out."""
    world = get_world(sc.world)
    rows = [p for c in preserve_set(sc) for g, p, _ in world.suite_rows(c, n=n, split="fit") if g == "target"]
    return [p for p in rows if not any(mentions(p, c) for c in sc.concepts)]


def concept_kinds(sc: Scenario) -> dict[str, str]:
    """What each erased concept is in the scenario's world (``erase(kinds=...)``: methods may erase kinds
    differently, ACE's styles)."""
    world = get_world(sc.world)
    return {c: world.concept_kind(c) for c in sc.concepts}


def erase_inputs(sc: Scenario, n_fit: int, *, takes_preserve: bool = True) -> dict[str, Any]:
    """Returns what a method is given to erase ``sc``'s concepts, as ``erase``'s keyword arguments: the preserve set,
    ``n_fit`` fit prompts of each preserved concept (:func:`preserve_prompts`) and each erased concept's kind; a
    method without a preserve term (``takes_preserve=False``) gets no preserve set. Compare's rows and tuning erase
    through it, and so do the benches that time or measure an edit as the table makes it."""
    preserve, kept = (preserve_set(sc), preserve_prompts(sc, n_fit)) if takes_preserve else ([], [])
    return {"preserve": preserve, "preserve_prompts": kept, "kinds": concept_kinds(sc)}


def unseen_set(sc: Scenario) -> list[str]:
    """Returns the concepts given to no method, of every kind: neither erased nor in :func:`preserve_set`."""
    hidden = set(sc.concepts) | set(preserve_set(sc))
    return [c for names in get_world(sc.world).concepts().values() for c in names if c not in hidden]


@dataclass(frozen=True)
class ScoredSet:
    """One prompt set of a scenario's evaluation and the score it feeds.

    Attributes:
        name: ``target_<concept>``, ``generality_<concept>``, ``kept_<kind>`` or ``unseen_<kind>``.
        score: ``efficacy`` or ``generality`` (the judge's detection rate of ``concept``), ``specificity_kept``
            or ``specificity_unseen`` (the judge's accuracy on ``attribute``, against each prompt's concept).
        rows: ``(prompt, concept shown)`` of the test split.
    """

    name: str
    score: str
    concept: str | None
    attribute: str | None
    rows: tuple[tuple[str, str], ...]


def set_name(group: str, name: str) -> str:
    """``("target", "van gogh")`` -> ``"target_van_gogh"``: the name of a prompt set."""
    return f"{group}_{name.replace(' ', '_')}"


def scored_sets(sc: Scenario, n: int) -> list[ScoredSet]:
    """Returns the test prompt sets of ``sc``, ``n`` prompts each.

    ``target_<c>`` and ``generality_<c>`` per erased concept (its suite's); ``kept_<kind>``: the target prompts
    of the preserved concepts of that kind, in turn; ``unseen_<kind>`` for every kind of the world: those of
    its unseen concepts, where a concept whose suite has neutral neighbours of another kind (nudity's
    clothed persons) gives those instead, erased or not, unless methods were told about them (``multi10``
    preserves "person").
    """
    world = get_world(sc.world)
    suites = {c: world.suite_rows(c, n=n, split="test") for names in world.concepts().values() for c in names}
    out = []
    for c in sc.concepts:
        for group in ("target", "generality"):
            rows = tuple((p, shown) for g, p, shown in suites[c] if g == group)
            out.append(ScoredSet(set_name(group, c), "efficacy" if group == "target" else group, c, None, rows))
    kept = set(preserve_set(sc))
    told = kept | set(sc.concepts)  # what methods were given: no unseen prompt shows it
    for kind, names in world.concepts().items():
        preserved = [[(p, s) for g, p, s in suites[c] if g == "target"] for c in names if c in kept]
        unseen = []
        for c in names:
            neutral = [(p, s) for g, p, s in suites[c] if g == "specificity" and world.concept_kind(s) != kind]
            if any(s in told for _, s in neutral):
                continue
            if c not in kept and (neutral or c not in sc.concepts):
                unseen.append(neutral or [(p, s) for g, p, s in suites[c] if g == "target"])
        for group, sources in (("kept", preserved), ("unseen", unseen)):
            if sources:
                rows = tuple(sources[i % len(sources)][i // len(sources)] for i in range(n))
                out.append(ScoredSet(set_name(group, kind), f"specificity_{group}", None, kind, rows))
    return out


def prompt_rows(sc: Scenario, n: int) -> list[tuple[str, str, str]]:
    """Returns the ``(prompt set, prompt, concept shown)`` rows of :func:`scored_sets`, as the CSV holds them."""
    return [(s.name, p, shown) for s in scored_sets(sc, n) for p, shown in s.rows]


def splits(sc: Scenario, n: int, *, n_tuning: int) -> dict[str, list[str]]:
    """Returns the scenario's prompts by split, each prompt once.

    ``fit``: what methods may see: the erased and preserved concepts and the ``fit`` target prompts of
    both (:func:`preserve_prompts`); ``val``: the ``val`` target and generality prompts of the erased concepts (tuning);
    ``test``: every prompt the table reports (:func:`scored_sets` with ``n`` per set). ``n_tuning``
    prompts per group for fit and val.

    Raises:
        ConfigError: two splits share a prompt (the message names the scenario, the splits and the fix).
    """
    world = get_world(sc.world)
    fit = [*sc.concepts, *preserve_set(sc), *preserve_prompts(sc, n_tuning)]
    val = []
    for c in sc.concepts:
        fit += [p for g, p, _ in world.suite_rows(c, n=n_tuning, split="fit") if g == "target"]
        val += [p for g, p, _ in world.suite_rows(c, n=n_tuning, split="val") if g in ("target", "generality")]
    found = {"fit": fit, "val": val, "test": [p for _, p, _ in prompt_rows(sc, n)]}
    found = {split: list(dict.fromkeys(prompts)) for split, prompts in found.items()}
    for a, b in (("fit", "val"), ("fit", "test"), ("val", "test")):
        both = [p for p in found[a] if p in set(found[b])]
        if both:
            raise ConfigError(
                f"scenario {sc.name!r}: {len(both)} prompt(s) are in both the {a} and the {b} split, e.g. {both[0]!r}; "
                "a prompt may be in one split only, or what is fitted or tuned on leaks into what is reported. Make "
                f"the world {sc.world!r} give disjoint splits (suite_rows(concept, split=...)), or compare another "
                "scenario."
            )
    return found


def scenario_protocol(sc: Scenario, prompts_csv: str | Path, sets: Sequence[ScoredSet]) -> EvalProtocol:
    """Returns the evaluation protocol of ``sets`` (:func:`scored_sets`) over the rows of ``prompts_csv``.

    Sampling and seeds are those of the scenario's shipped protocol; every set is scored, originals too.
    Specificity's metrics are keyed ``judge_acc_kept_<kind>`` and ``judge_acc_unseen_<kind>``.
    """
    shipped = load_protocol(sc.protocol)
    seeds = shipped.prompt_set("target").seeds
    specs, metrics = [], []
    for s in sets:
        specs.append(PromptSetSpec(s.name, csv=str(prompts_csv), seeds=seeds))
        if s.concept is not None:
            params: dict[str, str] = {"concept": s.concept}
            metrics.append(MetricSpec("detection_rate", s.score, s.name, suffix=f"_{s.name}", params=params))
        else:
            params = {"attribute": str(s.attribute)}
            metrics.append(MetricSpec("attribute_accuracy", "specificity", s.name, suffix=f"_{s.name}", params=params))
    return EvalProtocol(f"compare-{sc.name}", f"erasekit compare, scenario {sc.name}", shipped.generation,
                        tuple(specs), tuple(metrics), baseline=True, reference=shipped.reference)  # fmt: skip


def describe(sc: Scenario, n: int, *, n_tuning: int) -> dict[str, Any]:
    """Returns compare.json's entry of ``sc``: ``{"splits": {"fit", "val", "test"}, "preserve", "unseen"}``.

    Raises:
        ConfigError: splits that share a prompt (:func:`splits`).
    """
    return {"splits": splits(sc, n, n_tuning=n_tuning), "preserve": preserve_set(sc), "unseen": unseen_set(sc)}
