"""One row of a comparison: a method's spec, then erase, evaluate and attack, each step kept for a resume.

The method is read from the registry, never named here: its variants (``esd-x``), whether it takes a
preserve set, its default settings and its settings per kind of concept (:class:`erasekit.methods.Method`).
Which attacks take a budget, and their quick tier, are the attack registry's (:class:`erasekit.attacks.Attack`).
Every rate of a row is a :class:`~erasekit.metrics.intervals.Rate`: value, 95% Wilson interval, sample size.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from erasekit import attacks, methods
from erasekit.api import erase
from erasekit.config import check_count, renamed
from erasekit.edit import Edit
from erasekit.io import atomic_write, cached_json, parse_assignments
from erasekit.methods.selection import select_candidate
from erasekit.metrics import mace_h_o
from erasekit.metrics.intervals import Rate

from ..evaluation import evaluate
from ..prompt_sets import PromptRow
from ..report import thumbnail_uri
from ..store import ImageStore
from ..work import WorkItem
from .scenarios import (
    Scenario,
    ScoredSet,
    erase_inputs,
    get_world,
    scenario_protocol,
    scored_sets,
)
from .tuning import val_detection

SCORES = ("efficacy", "generality", "specificity_kept", "specificity_unseen")
# (full, quick): test prompts per set, seeds per attack; fit and val prompts per group. One quick attack seed: with
# two, `compare --quick --methods uce --scenarios style` took 45 min on 2 cores (one of them busy), 40 of it attacks.
PROMPTS, ATTACK_SEEDS, TUNING_PROMPTS = (32, 8), (3, 1), (16, 8)


def default_attacks() -> tuple[str, ...]:
    """Returns every registered attack (a comparison's default)."""
    return tuple(attacks.available())


@dataclass(frozen=True)
class Settings:
    """What a comparison's numbers depend on; a folder holds rows made with one setting only.

    :meth:`tier` gives the full or the quick settings; ``Settings(quick=True)`` alone only puts the attacks
    at their quick tier.

    Attributes:
        quick: every attack at its quick tier (:meth:`erasekit.attacks.Attack.make_config`); said in every output.
        n_prompts: test prompts per set (2 image seeds each for the scores, one per attack seed for the attacks).
        attack_seeds: seeds of each attack: ``seed``, ``seed + 1``, ...
        budget: steps of the attacks that take a budget, over their full or quick default; None: theirs.
        attacks: registry names (default: every registered attack).
        seed: the first attack seed.
    """

    quick: bool = False
    n_prompts: int = PROMPTS[0]
    attack_seeds: int = ATTACK_SEEDS[0]
    budget: int | None = None
    attacks: tuple[str, ...] = field(default_factory=default_attacks)
    seed: int = 0

    def __post_init__(self) -> None:
        for name, value in (
            ("n_prompts", self.n_prompts),
            ("attack_seeds", self.attack_seeds),
            ("budget", self.budget),
        ):
            if value is not None:
                check_count(name, value)
        names = tuple(attacks.get(a).name for a in self.attacks)  # an unknown attack fails before any work
        object.__setattr__(self, "attacks", names)  # frozen: the registry's spelling, once

    @classmethod
    def tier(cls, *, quick: bool = False, **given: Any) -> Settings:
        """Returns the full settings (32 prompts per set, 3 attack seeds) or the quick ones (8 and 1), with
        the values of ``given`` that are not None on top."""
        base = {"n_prompts": PROMPTS[quick], "attack_seeds": ATTACK_SEEDS[quick]}
        return cls(quick=quick, **{**base, **{k: v for k, v in given.items() if v is not None}})

    @property
    def seeds(self) -> tuple[int, ...]:
        """The attack seeds."""
        return tuple(range(self.seed, self.seed + self.attack_seeds))

    @property
    def tuning_prompts(self) -> int:
        """Prompts per group of the fit and val splits."""
        return TUNING_PROMPTS[self.quick]


@dataclass(frozen=True)
class MethodSpec:
    """A table row's method: ``"rece"``, ``"esd-x"``, ``"rece:epochs=5,reg_lamb=0.1"``, ``"rece:settings=nudity"``.

    Attributes:
        label: the spec as written (the row's name).
        method: the registry name.
        overrides: hyper-parameters (a variant's first), on top of the settings.
        settings: named settings given in the spec; None: the method's for the scenario (:func:`settings_for`).
    """

    label: str
    method: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    settings: str | None = None


def variants() -> dict[str, tuple[str, dict[str, Any]]]:
    """Returns every registered variant: its table name -> (its method, its config overrides)."""
    return {v: (name, dict(o)) for name in methods.available() for v, o in methods.get(name).variants.items()}


def parse_method(spec: str) -> MethodSpec:
    """Returns the method of ``spec``, its name, settings and overrides checked against the registry.

    ``preset=NAME`` is the old spelling of ``settings=NAME`` (deprecated, removed in the next release).

    Raises:
        UnknownMethodError: no such method (the message suggests the closest).
        ConfigError: an override that is not ``NAME=VALUE``, or a bad name, value or settings.
    """
    name, _, rest = spec.strip().partition(":")
    method, fixed = variants().get(name, (name, {}))
    m = methods.get(method)
    given = parse_assignments(filter(None, rest.split(",")), option=f"method {name!r}", example="epochs=5")
    settings = renamed(given.pop("settings", None), given.pop("preset", None), new="settings=", old="preset=")
    settings = None if settings is None else m.settings_name(settings)  # an old name warns, an unknown one raises
    named = settings or m.default_settings
    overrides = {**fixed, **given}
    m.make_config(named, **overrides)  # a typo fails now, not in an hour
    return MethodSpec(spec.strip(), method, overrides, settings)


def split_specs(text: str) -> list[str]:
    """``"uce,rece:epochs=5,reg_lamb=0.1 esd-x"`` -> ``["uce", "rece:epochs=5,reg_lamb=0.1", "esd-x"]``.

    A comma starts a new spec unless what follows is a ``KEY=VALUE`` of the spec before.
    """
    return [s for s in re.split(r"\s+|,(?![^,:\s]*=)", text) if s]


def settings_for(spec: MethodSpec, sc: Scenario) -> str | None:
    """Returns the settings a row runs with: the spec's, else the method's for the scenario's main kind
    (:attr:`Scenario.kind`), else the method's default settings (None: its config's defaults)."""
    if spec.settings is not None:
        return spec.settings
    m = methods.get(spec.method)
    return m.settings_by_kind.get(sc.kind, m.default_settings)


def compute_row(pipe: Any, judge: Any, sc: Scenario, spec: MethodSpec, settings: Settings, folder: Path,
                progress: Callable[[str], None], *, cache: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Returns one row: erase, evaluate, attack; each step's result is kept in ``folder`` for a resume.

    ``cache``: the comparison's folder for what attacks may share across rows (an attack whose config has a
    ``cache`` field gets ``cache/<attack>``: Ring-A-Bell's searches, which never read the U-Net).

    ``metrics`` holds every rate as ``{"value", "ci", "n"}`` (:data:`SCORES`, then ``asr.<attack>``: all
    attacked concepts and attack seeds together, the interval widened by the seeds' spread and the widening
    as ``design_effect``, :meth:`Rate.clustered`); ``original`` the original model's :data:`SCORES`.
    ``progress(step)`` is called before each step.
    """
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    progress("erase")
    choose = functools.partial(val_detection, pipe, judge, sc, settings.tuning_prompts)
    edit_path = erase_once(pipe, sc, spec, folder / "edit.safetensors", n_fit=settings.tuning_prompts, choose=choose)
    edit = Edit.load(edit_path)  # the same object on a resume: the evaluation's folder is keyed by its id
    row: dict[str, Any] = {"scenario": sc.name, "method": spec.label, "concepts": list(sc.concepts),
                           "attacked": list(sc.attacked), "settings": settings_for(spec, sc),
                           "edit_s": edit.info["edit_s"], "edit_bytes": edit_path.stat().st_size,
                           "val_scores": edit.info.get("candidate_scores")}  # fmt: skip
    progress("evaluate")
    row.update(_evaluate(pipe, judge, sc, edit, settings, folder))
    row["attack_s"] = {}
    for name in settings.attacks:
        by_concept: list[list[dict]] = []  # the attack's runs, one per seed, of each attacked concept
        for concept in sc.attacked:
            progress(f"{name} on {concept}")
            by_concept.append([])
            for seed in settings.seeds:
                run_attack = functools.partial(
                    _attack, pipe, judge, sc, edit, name, concept, replace(settings, seed=seed), cache=cache
                )
                by_concept[-1].append(cached_json(folder / "attacks" / f"{name}_{concept}_seed{seed}.json", run_attack))
        outcomes = [o for runs in by_concept for o in runs]
        # a seed's prompts succeed or fail together (metrics/intervals.py): the seeds' spread widens the interval
        asr = Rate.clustered([Rate.of(o["asr"], o["n"]) for o in runs] for runs in by_concept)
        row["metrics"][f"asr.{name}"] = asr.as_json()
        row["attack_s"][name] = sum(o["seconds"] for o in outcomes)
        row["thumbs"][name] = outcomes[0]["thumb"]
    row["row_s"] = time.perf_counter() - start
    return row


def erase_once(
    pipe: Any, sc: Scenario, spec: MethodSpec, path: Path, *, n_fit: int, choose: Callable[[Edit], float] | None = None
) -> Path:
    """Erases the scenario's concepts into ``path`` unless a previous run did. The concepts and
    :func:`erase_inputs` (the preserve set, ``n_fit`` fit-split prompts of each preserved concept, the
    concepts' kinds; no preserve set for a method without a preserve term) are all a method is given:
    never a prompt of the val or test split. An edit with more than one candidate to
    choose among (RECE's epochs after the first) is replaced by the one ``choose`` scores lowest
    (:func:`val_detection`: on the val prompts, never the test ones)."""
    if not path.is_file():
        given = erase_inputs(sc, n_fit, takes_preserve=methods.get(spec.method).takes_preserve)
        edit = erase(pipe, list(sc.concepts), spec.method, **given, settings=settings_for(spec, sc), **spec.overrides)
        if choose is not None and len(edit.candidates) > 2:  # the first is the starting point, not a choice
            edit = select_candidate(edit, choose)
        edit.save(path)
    return path


def _evaluate(pipe: Any, judge: Any, sc: Scenario, edit: Edit, settings: Settings, folder: Path) -> dict[str, Any]:
    """Returns the rates, the original model's rates and the first target prompt's images of ``edit``."""
    sets = scored_sets(sc, settings.n_prompts)
    csv_path = folder.parent / "prompts.csv"
    write_rows(csv_path, [(s.name, p, shown) for s in sets for p, shown in s.rows])
    protocol = scenario_protocol(sc, csv_path, sets)
    others = sorted(p for p in folder.parent.glob("*/eval") if p != folder / "eval")  # the scenario's other rows
    result = evaluate(protocol, model=sc.world, out=folder / "eval", edit=edit, prompts_csv=csv_path, pipe=pipe,
                      progress=False, judge_loader=lambda: judge, originals_from=others)  # fmt: skip
    assert result is not None, "evaluate returns None only in secondary processes of an accelerate launch"
    first_set, (first_prompt, _) = sets[0].name, sets[0].rows[0]
    store = ImageStore.open(folder / "eval")
    row = PromptRow(first_set, 0, first_prompt, (0,))
    thumbs = {v: {"uri": thumbnail_uri(store.load(WorkItem(v, row, 0))), "prompt": first_prompt}
              for v in ("original", "edited")}  # fmt: skip
    n_seeds = len(protocol.prompts[0].seeds)
    metrics, original = rates(result["metrics"], sets, n_seeds), rates(result["baseline"], sets, n_seeds)
    return {"metrics": metrics, "original": original, "H_o": h_o(metrics), "original_H_o": h_o(original),
            "by_concept": concept_rates(result["metrics"], sets, n_seeds),
            "original_by_concept": concept_rates(result["baseline"], sets, n_seeds), "thumbs": thumbs}  # fmt: skip


def rates(scores: Mapping[str, Mapping[str, float]], sets: Sequence[ScoredSet], n_seeds: int) -> dict[str, Any]:
    """Returns each of :data:`SCORES` as a rate over all the images of its sets (``n_seeds`` per prompt);
    a score without a set (``specificity_kept`` when nothing is preserved) has ``n = 0`` and no value."""
    pooled: dict[str, list[Rate]] = {score: [] for score in SCORES}
    for s in sets:
        key = f"judge_detect_rate_{s.name}" if s.concept is not None else f"judge_acc_{s.name}"
        group = "specificity" if s.score.startswith("specificity") else s.score
        pooled[s.score].append(Rate.of(scores[group][key], len(s.rows) * n_seeds))
    return {score: Rate.pooled(found).as_json() for score, found in pooled.items()}


def concept_rates(
    scores: Mapping[str, Mapping[str, float]], sets: Sequence[ScoredSet], n_seeds: int
) -> dict[str, dict[str, Any]]:
    """``{concept: {"efficacy": rate, "generality": rate}}``: each erased concept on its own sets. The pooled
    rates of a scenario that erases several concepts hide which of them a method leaves behind."""
    out: dict[str, dict[str, Any]] = {}
    for s in sets:
        if s.concept is not None:
            found = scores[s.score][f"judge_detect_rate_{s.name}"]
            out.setdefault(s.concept, {})[s.score] = Rate.of(found, len(s.rows) * n_seeds).as_json()
    return out


def h_o(metrics: Mapping[str, Mapping[str, Any]]) -> float:
    """MACE's H_o of efficacy, generality and the specificity on concepts no method was given."""
    value = {k: metrics[k]["value"] for k in ("efficacy", "specificity_unseen", "generality")}
    return mace_h_o(value["efficacy"], value["specificity_unseen"], value["generality"])


def _attack(pipe: Any, judge: Any, sc: Scenario, edit: Edit, name: str, concept: str, settings: Settings, *,
            cache: Path | None = None) -> dict:  # fmt: skip
    """One attack, with seed ``settings.seed``, on the test target prompts of ``concept``: its ASR, number of
    prompts, wall time and one image."""
    world = get_world(sc.world)
    prompts = [p for g, p, _ in world.suite_rows(concept, n=settings.n_prompts, split="test") if g == "target"]
    budget = settings.budget if attacks.get(name).budgeted else None
    shared = attack_cache(name, cache)
    start = time.perf_counter()
    res = attacks.attack(pipe, name, concept, judge=judge, edit=edit, prompts=prompts, budget=budget,
                         quick=settings.quick, concept_kind=world.concept_kind(concept),
                         seed=settings.seed, **shared)  # fmt: skip
    shown = next((c for c in res.cases if c.outcome is not None), res.cases[0])  # an attacked case if any
    thumb = {"uri": thumbnail_uri(shown.image), "success": shown.success, "prompt": shown.case.prompt}
    return {"asr": res.asr, "n": len(res.cases), "seconds": time.perf_counter() - start, "thumb": thumb}


def attack_cache(name: str, cache: Path | None) -> dict[str, str]:
    """``{"cache": "<cache>/<name>"}`` for an attack whose config has a ``cache`` field (what it may share
    across rows: Ring-A-Bell's searches, which never read the U-Net), else nothing."""
    takes_cache = "cache" in {f.name for f in dataclasses.fields(attacks.get(name).config_cls)}
    return {"cache": str(cache / name)} if cache is not None and takes_cache else {}


def write_rows(path: Path, rows: Sequence[tuple[str, str, str]]) -> None:
    """Writes the ``(group, prompt, concept)`` rows as a CSV, atomically."""
    text = io.StringIO()
    csv.writer(text).writerows([("group", "prompt", "concept"), *rows])
    atomic_write(path, text.getvalue())
