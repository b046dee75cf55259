"""One row of a comparison: a method's spec, then erase, evaluate and attack, each step kept for a resume.

The method is read from the registry, never named here: its variants (``esd-x``), whether it takes a
preserve set, its default settings and its settings per kind of concept (:class:`erasekit.methods.Method`).
Which attacks take a budget is the attack registry's (:attr:`erasekit.attacks.Attack.budgeted`).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erasekit import attacks, methods
from erasekit.api import erase
from erasekit.config import make_config, renamed
from erasekit.edit import Edit
from erasekit.errors import ConfigError
from erasekit.io import atomic_write, parse_assignments
from erasekit.metrics import mace_h_o

from ..evaluation import evaluate
from ..prompt_sets import PromptRow
from ..report import thumbnail_uri, write_json
from ..store import ImageStore
from ..work import WorkItem
from .scenarios import Scenario, get_world, preserve_set, prompt_rows, scenario_protocol, set_name

ATTACKS = ("derived", "ringabell", "soft_prompt", "discrete")


@dataclass(frozen=True)
class Settings:
    """What a comparison's numbers depend on; a folder holds rows made with one setting only."""

    n_prompts: int = 8  # prompts per set (2 seeds each for the scores, 1 for the attacks)
    budget: int = 60  # optimisation steps of the attacks that take a budget
    attacks: tuple[str, ...] = ATTACKS
    seed: int = 0  # of the attacks' own randomness

    def __post_init__(self) -> None:
        if self.n_prompts < 1 or self.budget < 1:
            raise ConfigError(f"n_prompts and budget must be >= 1, got {self.n_prompts} and {self.budget}.")


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
    named = settings or m.default_settings
    if settings is not None and settings not in m.settings:
        known = sorted(m.settings)
        raise ConfigError(f"method {spec!r}: {method} has no settings {settings!r}; its settings: {known}.")
    overrides = {**fixed, **given}
    make_config(m.config_cls, {**m.settings.get(named or "", {}), **overrides})  # a typo fails now, not in an hour
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
                progress: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """Returns one row: erase, evaluate, attack; each step's result is kept in ``folder`` for a resume.

    ``progress(step)`` is called before each step.
    """
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    progress("erase")
    edit_path = erase_once(pipe, sc, spec, folder / "edit.safetensors")
    edit = Edit.load(edit_path)  # the same object on a resume: the evaluation's folder is keyed by its id
    row: dict[str, Any] = {"scenario": sc.name, "method": spec.label, "concepts": list(sc.concepts),
                           "attacked": list(sc.attacked), "settings": settings_for(spec, sc),
                           "edit_s": edit.info["edit_s"], "edit_bytes": edit_path.stat().st_size}  # fmt: skip
    progress("evaluate")
    row.update(_evaluate(pipe, judge, sc, edit, settings, folder))
    for name in settings.attacks:
        outcomes = []
        for concept in sc.attacked:
            progress(f"{name} on {concept}")
            run_attack = functools.partial(_attack, pipe, judge, sc, edit, name, concept, settings)
            outcomes.append(cached(folder / "attacks" / f"{name}_{concept}.json", run_attack))
        row[f"asr_{name}"] = sum(o["asr"] for o in outcomes) / len(outcomes)  # equal prompts per concept
        row[f"{name}_s"] = sum(o["seconds"] for o in outcomes)
        row["thumbs"][name] = outcomes[0]["thumb"]
    row["row_s"] = time.perf_counter() - start
    return row


def erase_once(pipe: Any, sc: Scenario, spec: MethodSpec, path: Path) -> Path:
    """Erases the scenario's concepts into ``path`` unless a previous run did; a method without a
    preserve term (``takes_preserve=False``) gets no preserve set."""
    if not path.is_file():
        preserve = preserve_set(sc) if methods.get(spec.method).takes_preserve else []
        edit = erase(pipe, list(sc.concepts), spec.method, preserve=preserve, settings=settings_for(spec, sc),
                     **spec.overrides)  # fmt: skip
        edit.save(path)
    return path


def _evaluate(pipe: Any, judge: Any, sc: Scenario, edit: Edit, settings: Settings, folder: Path) -> dict[str, Any]:
    """Returns the scores, the original model's scores and the first target prompt's images of ``edit``."""
    prompts = prompt_rows(sc, settings.n_prompts)
    csv_path = folder.parent / "prompts.csv"
    write_rows(csv_path, prompts)
    result = evaluate(scenario_protocol(sc, csv_path), model=sc.world, out=folder / "eval", edit=edit,
                      prompts_csv=csv_path, pipe=pipe, progress=False, judge_loader=lambda: judge)  # fmt: skip
    assert result is not None, "evaluate returns None only in secondary processes of an accelerate launch"
    first_set, first_prompt, _ = prompts[0]
    store = ImageStore.open(folder / "eval")
    row = PromptRow(first_set, 0, first_prompt, (0,))
    thumbs = {v: {"uri": thumbnail_uri(store.load(WorkItem(v, row, 0))), "prompt": first_prompt}
              for v in ("original", "edited")}  # fmt: skip
    return {**scores(result["metrics"], sc), "original": scores(result["baseline"], sc), "thumbs": thumbs}


def scores(metrics: Mapping[str, Mapping[str, float]], sc: Scenario) -> dict[str, float]:
    """Efficacy and generality: mean over concepts; specificity: over all its images (equal n per kind)."""
    out = {
        "efficacy": _mean(metrics["efficacy"][f"judge_detect_rate_{set_name('target', c)}"] for c in sc.concepts),
        "generality": _mean(
            metrics["generality"][f"judge_detect_rate_{set_name('generality', c)}"] for c in sc.concepts
        ),
        "specificity": _mean(metrics["specificity"][f"judge_acc_{set_name('specificity', k)}"] for k in sc.kinds),
    }
    out["H_o"] = mace_h_o(out["efficacy"], out["specificity"], out["generality"])
    return out


def _mean(values: Any) -> float:
    values = list(values)
    return sum(values) / len(values)


def _attack(pipe: Any, judge: Any, sc: Scenario, edit: Edit, name: str, concept: str, settings: Settings) -> dict:
    """One attack on the target prompts of ``concept``: its ASR, wall time and one image."""
    world = get_world(sc.world)
    prompts = [p for g, p, _ in world.suite_rows(concept, n=settings.n_prompts) if g == "target"]
    budget = settings.budget if attacks.get(name).budgeted else None
    start = time.perf_counter()
    res = attacks.attack(pipe, name, concept, judge=judge, edit=edit, prompts=prompts, budget=budget,
                         seed=settings.seed)  # fmt: skip
    shown = next((c for c in res.cases if c.outcome is not None), res.cases[0])  # an attacked case if any
    thumb = {"uri": thumbnail_uri(shown.image), "success": shown.success, "prompt": shown.case.prompt}
    return {"asr": res.asr, "seconds": time.perf_counter() - start, "thumb": thumb}


def write_rows(path: Path, rows: Sequence[tuple[str, str, str]]) -> None:
    """Writes the ``(group, prompt, concept)`` rows as a CSV, atomically."""
    text = io.StringIO()
    csv.writer(text).writerows([("group", "prompt", "concept"), *rows])
    atomic_write(path, text.getvalue())


def cached(path: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Returns the JSON in ``path``, or computes it and writes it there atomically first."""
    if path.is_file():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    value = compute()
    write_json(value, path)
    return value
