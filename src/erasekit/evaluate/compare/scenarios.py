"""What a comparison erases: scenarios of a world, their preserve sets, prompt sets and protocol.

A scenario is a set of concepts erased by one edit, those whose prompts the attacks get, and the
kinds of concept they are. The named scenarios come from the world (:meth:`World.scenarios`, e.g.
the embedded world's ``style``, ``object``, ``unsafe`` and ``multi10``); any one concept of the world
is a scenario too. Nothing here names a world or a concept: it all goes through
:func:`erasekit.worlds.get`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from erasekit import worlds
from erasekit.errors import ConfigError
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
    """Returns the concepts of the same kinds as ``sc``'s that are not erased (none for a kind whose every
    concept is erased, such as the embedded world's nudity)."""
    return [
        c
        for kind, names in get_world(sc.world).concepts().items()
        if kind in sc.kinds
        for c in names
        if c not in sc.concepts
    ]


def set_name(group: str, name: str) -> str:
    """``("target", "van gogh")`` -> ``"target_van_gogh"``: the name of a prompt set."""
    return f"{group}_{name.replace(' ', '_')}"


def prompt_rows(sc: Scenario, n: int) -> list[tuple[str, str, str]]:
    """Returns ``(prompt set, prompt, concept shown)`` rows, ``n`` per set.

    Sets: ``target_<c>`` and ``generality_<c>`` per erased concept (its suite's), ``specificity_<kind>``
    per kind: training-word prompts about the concepts of that kind left out, in turn; for a kind with
    none left out (the embedded world's nudity), the specificity prompts of its first erased concept's
    suite (clothed persons).
    """
    world = get_world(sc.world)
    rows = []
    for c in sc.concepts:
        for group, prompt, shown in world.suite_rows(c, n=n):
            if group != "specificity":
                rows.append((set_name(group, c), prompt, shown))
    for kind in sc.kinds:
        name = set_name("specificity", kind)
        left = [c for c in world.concepts()[kind] if c not in sc.concepts]
        if not left:
            first = next(c for c in sc.concepts if world.concept_kind(c) == kind)
            rows += [(name, p, s) for g, p, s in world.suite_rows(first, n=n) if g == "specificity"]
            continue
        per = [[p for g, p, _ in world.suite_rows(c, n=-(-n // len(left))) if g == "target"] for c in left]
        rows += [(name, per[i % len(left)][i // len(left)], left[i % len(left)]) for i in range(n)]
    return rows


def scenario_protocol(sc: Scenario, prompts_csv: str | Path) -> EvalProtocol:
    """Returns the evaluation protocol of ``sc`` over the rows of ``prompts_csv`` (see :func:`prompt_rows`).

    Sampling and seeds are those of the scenario's shipped protocol; every set is scored, originals too.
    """
    shipped = load_protocol(sc.protocol)
    seeds = shipped.prompt_set("target").seeds
    specs, metrics = [], []
    for c in sc.concepts:
        for group in ("target", "generality"):
            name = set_name(group, c)
            specs.append(PromptSetSpec(name, csv=str(prompts_csv), seeds=seeds))
            scored = "efficacy" if group == "target" else "generality"
            metrics.append(MetricSpec("detection_rate", scored, name, suffix=f"_{name}", params={"concept": c}))
    for kind in sc.kinds:
        name = set_name("specificity", kind)
        specs.append(PromptSetSpec(name, csv=str(prompts_csv), seeds=seeds))
        params = {"attribute": kind}
        metrics.append(MetricSpec("attribute_accuracy", "specificity", name, suffix=f"_{name}", params=params))
    return EvalProtocol(f"compare-{sc.name}", f"erasekit compare, scenario {sc.name}", shipped.generation,
                        tuple(specs), tuple(metrics), baseline=True, reference=shipped.reference)  # fmt: skip
