"""Every method × every kind of concept of the embedded world, under every attack: one table.

``erasekit compare`` (or :func:`run`) erases each scenario's concepts with each method, scores the
edit on the embedded world's prompt suites, attacks it, and writes ``compare.md``, ``compare.json``
and ``report.html``. A row holds:

- efficacy: the judge's detection rate on the target prompts, generality: on held-out paraphrases
  (both lower is better; the mean over the scenario's concepts), specificity: the judge's accuracy on
  prompts about the concepts of the same kinds that were left out (higher is better), MACE's H_o,
  and the original model's values of all four;
- ``asr_<attack>``: UnlearnDiff's attack success rate (``attacks.attack(...).asr``) on the target
  prompts of the scenario's ``attacked`` concepts (all of them, except for ``multi10``);
- the edit's wall time and the bytes of its safetensors file.

Scenarios: ``style`` (van gogh), ``object`` (church), ``unsafe`` (nudity), ``multi10`` (4 objects, 3
styles, 2 colours and nudity erased by one edit; its attacks target church, van gogh and nudity only,
to keep the cost near three single rows), or any one concept of the world by name. Methods are
registry names with options (:func:`parse_method`); ESD runs its ``lora`` preset, whose 300
iterations a multi-concept run shares between its concepts, as the reference does.

    erasekit compare --n-prompts 8 --budget 60 -o out/compare     # every method × the four scenarios
    erasekit compare --methods uce,rece:epochs=5 --scenarios "van gogh,car" --only 'rece*/*' -o out/c

Everything is resumable: a finished row is ``rows/<scenario>/<method>.json``; inside a row, the edit
file, the evaluation's images and every attack's outcome are kept as they finish, so a killed run
(an ESD row trains for minutes) goes on where it stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import functools
import io
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erasekit import methods
from erasekit.api import erase
from erasekit.attacks import attack
from erasekit.config import make_config
from erasekit.edit import Edit
from erasekit.errors import ConfigError, OutputExistsError
from erasekit.metrics import mace_h_o
from erasekit.worlds.embedded import concepts as embedded_concepts
from erasekit.worlds.embedded import load_judge, suite_rows
from erasekit.worlds.embedded.vocabulary import UNSAFE, concept_kind

from ..evaluation import evaluate
from ..prompt_sets import PromptRow
from ..protocols import EvalProtocol as Preset
from ..protocols import MetricSpec, PromptSetSpec
from ..protocols import load_protocol as load_preset
from ..report import thumbnail_uri, write_json
from ..store import ImageStore
from ..work import WorkItem
from .report import write_outputs, write_text

logger = logging.getLogger(__name__)

ATTACKS = ("derived", "ringabell", "soft_prompt", "discrete")
BUDGETED = ("soft_prompt", "discrete")  # the others are closed forms and take no budget
RECE_PRESET = {"style": "style", "unsafe": "nudity", "object": "object-hard", "color": "object-easy"}  # the paper's
ALIASES = {"esd-x": ("esd", {"variant": "x"}), "esd-u": ("esd", {"variant": "u"})}
DEFAULT_PRESET = {"esd": "lora"}  # the reference's lr barely moves a LoRA (see methods/esd.py)
NO_PRESERVE = {"esd"}  # methods without a preserve term, which refuse a preserve set
ORDER = ("uce", "rece", "nullspace", "esd-x", "esd-u", "ace")  # table order of the default methods
Progress = Callable[[int, int, str], None]  # (steps done, steps in all, what runs now)


@dataclass(frozen=True)
class MethodSpec:
    """A table row's method: ``"rece"``, ``"esd-x"``, ``"rece:epochs=5,reg_lamb=0.1"``, ``"rece:preset=nudity"``.

    Attributes:
        label: the spec as written (the row's name).
        method: the registry name.
        overrides: hyper-parameters, on top of the preset.
        preset: the method's preset; None for RECE means the paper's preset for the scenario.
    """

    label: str
    method: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    preset: str | None = None


def parse_method(spec: str) -> MethodSpec:
    """Returns the method of ``spec``, its name, preset and overrides checked against the registry.

    Raises:
        UnknownMethodError: no such method (the message suggests the closest).
        ConfigError: an override that is not ``NAME=VALUE``, or a bad name, value or preset.
    """
    name, _, rest = spec.strip().partition(":")
    method, fixed = ALIASES.get(name, (name, {}))
    overrides: dict[str, Any] = dict(fixed)
    for pair in filter(None, rest.split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"method {spec!r}: expected NAME:KEY=VALUE,..., got {pair!r} (e.g. rece:epochs=5).")
        overrides[key.strip()] = value.strip()
    preset = overrides.pop("preset", DEFAULT_PRESET.get(method))
    m = methods.get(method)
    if preset is not None and preset not in m.settings:
        raise ConfigError(f"method {spec!r}: {method} has no preset {preset!r}; its presets: {sorted(m.settings)}.")
    make_config(m.config_cls, {**m.settings.get(preset or "", {}), **overrides})  # a typo fails now, not in an hour
    return MethodSpec(spec.strip(), method, overrides, preset)


def split_specs(text: str) -> list[str]:
    """``"uce,rece:epochs=5,reg_lamb=0.1 esd-x"`` -> ``["uce", "rece:epochs=5,reg_lamb=0.1", "esd-x"]``.

    A comma starts a new spec unless what follows is a ``KEY=VALUE`` of the spec before.
    """
    return [s for s in re.split(r"\s+|,(?![^,:\s]*=)", text) if s]


def default_methods() -> list[str]:
    """Returns every registered method as a spec, ESD as its two variants, in the table's order."""
    names = [n for n in methods.available() if n not in {m for m, _ in ALIASES.values()}]
    names += list(ALIASES)
    return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))


@dataclass(frozen=True)
class Scenario:
    """Concepts erased together, and those whose prompts the attacks get."""

    name: str
    concepts: tuple[str, ...]
    attacked: tuple[str, ...]
    rece_preset: str  # RECE's paper preset for these concepts

    @property
    def kinds(self) -> list[str]:
        return sorted({concept_kind(c) for c in self.concepts})


MULTI10 = ("church", "parachute", "garbage truck", "tench", "van gogh", "picasso", "andy warhol", "red", "blue", UNSAFE)
SCENARIOS = {
    "style": Scenario("style", ("van gogh",), ("van gogh",), "style"),
    "object": Scenario("object", ("church",), ("church",), "object-hard"),
    "unsafe": Scenario("unsafe", (UNSAFE,), (UNSAFE,), "nudity"),
    # RECE's style and object-hard presets are the same (1 epoch, λ 1e-3): those of 7 of the 10 concepts
    "multi10": Scenario("multi10", MULTI10, ("church", "van gogh", UNSAFE), "object-hard"),
}


def scenario(name: str) -> Scenario:
    """Returns a named scenario, or the one-concept scenario of any concept of the embedded world.

    Raises:
        ConfigError: neither a scenario nor a concept (the message lists both).
    """
    if name in SCENARIOS:
        return SCENARIOS[name]
    try:
        kind = concept_kind(name)
    except ConfigError as err:
        raise ConfigError(f"unknown scenario {name!r}: use one of {sorted(SCENARIOS)} or a concept. {err}") from None
    return Scenario(name, (name,), (name,), RECE_PRESET[kind])


def preserve_set(concepts: Sequence[str]) -> list[str]:
    """Returns the concepts of the same kinds as ``concepts`` that are not erased (none for nudity's kind)."""
    kinds = {concept_kind(c) for c in concepts} - {"unsafe"}
    return [c for kind, names in embedded_concepts().items() if kind in kinds for c in names if c not in concepts]


def prompt_rows(sc: Scenario, n: int) -> list[tuple[str, str, str]]:
    """Returns ``(prompt set, prompt, concept shown)`` rows, ``n`` per set.

    Sets: ``target_<c>`` and ``generality_<c>`` per erased concept (its suite's), ``specificity_<kind>``
    per kind: training-word prompts about the concepts of that kind left out, in turn; for nudity the
    suite's clothed persons.
    """
    rows = []
    for c in sc.concepts:
        for group, prompt, shown in suite_rows(c, n=n):
            if group != "specificity":
                rows.append((_set(group, c), prompt, shown))
    for kind in sc.kinds:
        if kind == "unsafe":
            rows += [(_set("specificity", kind), p, s) for g, p, s in suite_rows(UNSAFE, n=n) if g == "specificity"]
            continue
        left = [c for c in embedded_concepts()[kind] if c not in sc.concepts]
        per = [[p for g, p, _ in suite_rows(c, n=-(-n // len(left))) if g == "target"] for c in left]
        rows += [(_set("specificity", kind), per[i % len(left)][i // len(left)], left[i % len(left)]) for i in range(n)]
    return rows


def _set(group: str, name: str) -> str:
    return f"{group}_{name.replace(' ', '_')}"


def scenario_preset(sc: Scenario, prompts_csv: Path) -> Preset:
    """Returns the evaluation protocol of ``sc`` over the rows of ``prompts_csv`` (see :func:`prompt_rows`).

    Sampling and seeds are the ``embedded-*`` presets'; every set is scored, originals too.
    """
    shipped = load_preset("embedded-style")
    seeds = shipped.prompt_set("target").seeds
    specs, metrics = [], []
    for c in sc.concepts:
        for group in ("target", "generality"):
            name = _set(group, c)
            specs.append(PromptSetSpec(name, csv=str(prompts_csv), seeds=seeds))
            group_ = "efficacy" if group == "target" else "generality"
            metrics.append(MetricSpec("detection_rate", group_, name, suffix=f"_{name}", params={"concept": c}))
    for kind in sc.kinds:
        name = _set("specificity", kind)
        specs.append(PromptSetSpec(name, csv=str(prompts_csv), seeds=seeds))
        params = {"attribute": kind}
        metrics.append(MetricSpec("attribute_accuracy", "specificity", name, suffix=f"_{name}", params=params))
    return Preset(f"compare-{sc.name}", f"erasekit compare, scenario {sc.name}", shipped.generation, tuple(specs),
                  tuple(metrics), baseline=True, reference=shipped.reference)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """What a comparison's numbers depend on; a folder holds rows made with one setting only."""

    n_prompts: int = 8  # prompts per set (2 seeds each for the scores, 1 for the attacks)
    budget: int = 60  # optimisation steps of soft_prompt and discrete
    attacks: tuple[str, ...] = ATTACKS
    seed: int = 0  # of the attacks' own randomness

    def __post_init__(self) -> None:
        if self.n_prompts < 1 or self.budget < 1:
            raise ConfigError(f"n_prompts and budget must be >= 1, got {self.n_prompts} and {self.budget}.")


def compute_row(pipe: Any, judge: Any, sc: Scenario, spec: MethodSpec, settings: Settings, folder: Path,
                progress: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """Returns one row: erase, evaluate, attack; each step's result is kept in ``folder`` for a resume.

    ``progress(step)`` is called before each step.
    """
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    progress("erase")
    edit_path = _erase_once(pipe, sc, spec, folder / "edit.safetensors")
    edit = Edit.load(edit_path)  # the same object on a resume: the evaluation's folder is keyed by its id
    row: dict[str, Any] = {"scenario": sc.name, "method": spec.label, "concepts": list(sc.concepts),
                           "attacked": list(sc.attacked), "edit_s": edit.info["edit_s"],
                           "edit_bytes": edit_path.stat().st_size}  # fmt: skip
    progress("evaluate")
    row.update(_evaluate(pipe, judge, sc, edit, settings, folder))
    for name in settings.attacks:
        outcomes = []
        for concept in sc.attacked:
            progress(f"{name} on {concept}")
            run_attack = functools.partial(_attack, pipe, judge, edit, name, concept, settings)
            outcomes.append(_cached(folder / "attacks" / f"{name}_{concept}.json", run_attack))
        row[f"asr_{name}"] = sum(o["asr"] for o in outcomes) / len(outcomes)  # equal prompts per concept
        row[f"{name}_s"] = sum(o["seconds"] for o in outcomes)
        row["thumbs"][name] = outcomes[0]["thumb"]
    row["row_s"] = time.perf_counter() - start
    return row


def _erase_once(pipe: Any, sc: Scenario, spec: MethodSpec, path: Path) -> Path:
    """Erases the scenario's concepts into ``path`` unless a previous run did."""
    if not path.is_file():
        preset = spec.preset or (sc.rece_preset if spec.method == "rece" else None)
        preserve = [] if spec.method in NO_PRESERVE else preserve_set(sc.concepts)
        erase(pipe, list(sc.concepts), spec.method, preserve=preserve, settings=preset, **spec.overrides).save(path)
    return path


def _evaluate(pipe: Any, judge: Any, sc: Scenario, edit: Edit, settings: Settings, folder: Path) -> dict[str, Any]:
    """Returns the scores, the original model's scores and the first target prompt's images of ``edit``."""
    prompts = prompt_rows(sc, settings.n_prompts)
    csv_path = folder.parent / "prompts.csv"
    _write_rows(csv_path, prompts)
    result = evaluate(scenario_preset(sc, csv_path), model="embedded", out=folder / "eval", edit=edit,
                      prompts_csv=csv_path, pipe=pipe, progress=False, judge_loader=lambda: judge)  # fmt: skip
    assert result is not None, "evaluate returns None only in secondary processes of an accelerate launch"
    first_set, first_prompt, _ = prompts[0]
    store = ImageStore.open(folder / "eval")
    row = PromptRow(first_set, 0, first_prompt, (0,))
    thumbs = {v: {"uri": thumbnail_uri(store.load(WorkItem(v, row, 0))), "prompt": first_prompt}
              for v in ("original", "edited")}  # fmt: skip
    return {**_scores(result["metrics"], sc), "original": _scores(result["baseline"], sc), "thumbs": thumbs}


def _scores(metrics: Mapping[str, Mapping[str, float]], sc: Scenario) -> dict[str, float]:
    """Efficacy and generality: mean over concepts; specificity: over all its images (equal n per kind)."""
    out = {
        "efficacy": _mean(metrics["efficacy"][f"judge_detect_rate_{_set('target', c)}"] for c in sc.concepts),
        "generality": _mean(metrics["generality"][f"judge_detect_rate_{_set('generality', c)}"] for c in sc.concepts),
        "specificity": _mean(metrics["specificity"][f"judge_acc_{_set('specificity', k)}"] for k in sc.kinds),
    }
    out["H_o"] = mace_h_o(out["efficacy"], out["specificity"], out["generality"])
    return out


def _mean(values: Any) -> float:
    values = list(values)
    return sum(values) / len(values)


def _attack(pipe: Any, judge: Any, edit: Edit, name: str, concept: str, settings: Settings) -> dict[str, Any]:
    prompts = [p for g, p, _ in suite_rows(concept, n=settings.n_prompts) if g == "target"]
    budget = settings.budget if name in BUDGETED else None
    start = time.perf_counter()
    res = attack(pipe, name, concept, judge=judge, edit=edit, prompts=prompts, budget=budget, seed=settings.seed)
    shown = next((c for c in res.cases if c.outcome is not None), res.cases[0])  # an attacked case if any
    thumb = {"uri": thumbnail_uri(shown.image), "success": shown.success, "prompt": shown.case.prompt}
    return {"asr": res.asr, "seconds": time.perf_counter() - start, "thumb": thumb}


def _write_rows(path: Path, rows: Sequence[tuple[str, str, str]]) -> None:
    text = io.StringIO()
    csv.writer(text).writerows([("group", "prompt", "concept"), *rows])
    write_text(path, text.getvalue())


def _cached(path: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Returns the JSON in ``path``, or computes it and writes it there atomically first."""
    if path.is_file():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    value = compute()
    write_json(value, path)
    return value


def load_world() -> tuple[Any, Any]:
    """Returns the embedded world's pipeline (its own progress bar off) and its judge."""
    from erasekit.worlds import load_pipeline

    pipe = load_pipeline("embedded")
    pipe.set_progress_bar_config(disable=True)
    return pipe, load_judge()


def run(
    *,
    out: str | os.PathLike[str],
    methods: Sequence[str],
    scenarios: Sequence[str],
    settings: Settings = Settings(),
    only: Sequence[str] = (),
    command: str | None = None,
    progress: Progress | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    world: Callable[[], tuple[Any, Any]] = load_world,
) -> list[dict[str, Any]]:
    """Computes the missing rows of ``methods`` × ``scenarios`` and writes the table; returns every row.

    Outputs are rewritten after each row, so a long run can be read while it goes on.

    Args:
        out: the folder of the comparison (rows, edits, images, compare.md/json, report.html).
        methods: specs such as ``"uce"``, ``"esd-x"``, ``"rece:epochs=5"`` (see :func:`parse_method`).
        scenarios: ``style``, ``object``, ``unsafe``, ``multi10``, or any concept of the embedded world.
        settings: prompts per set, attack budget, attacks, seed.
        only: glob patterns on ``"<method>/<scenario>"``: compute only the rows they match (the table
            still shows every finished row of the grid).
        command: the command line that made the table, written under it.
        progress: ``progress(done, total, what)`` before each step of each row to compute.
        on_row: called with each row computed now.
        world: returns the pipeline and the judge; called once, when the first row is to be computed.

    Raises:
        UnknownMethodError, ConfigError: a bad method spec or scenario (before any work).
        OutputExistsError: ``out`` holds rows made with other settings.
    """
    grid = [(sc, spec) for sc in map(scenario, scenarios) for spec in map(parse_method, methods)]
    out = Path(out)
    _check_settings(out, settings)
    todo = [(sc, spec) for sc, spec in grid if not _row_path(out, sc, spec).is_file() and _selected(only, sc, spec)]
    steps = _Steps(progress, sum(2 + len(settings.attacks) * len(sc.attacked) for sc, _ in todo))
    rows, pipe, judge = [], None, None
    for sc, spec in grid:
        path = _row_path(out, sc, spec)
        if (sc, spec) in todo:
            if pipe is None:
                pipe, judge = world()
            folder = path.with_suffix("")
            row = compute_row(pipe, judge, sc, spec, settings, folder, steps.within(f"{spec.label} / {sc.name}"))
            row["report"] = (folder / "eval" / "report.html").relative_to(out).as_posix()
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(row, path)
            logger.info("%s / %s done in %.0f s", spec.label, sc.name, row["row_s"])
            if on_row is not None:
                on_row(row)
        if path.is_file():
            rows.append(json.loads(path.read_text()))
            write_outputs(out, rows, settings, command=command)
    return rows


class _Steps:
    """Counts the steps of the rows to compute for a ``progress(done, total, what)`` callback."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def __call__(self, what: str) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total, what)
        self.done += 1

    def within(self, row: str) -> Callable[[str], None]:
        """Returns ``step(what)`` for the steps of one row, reported as ``"<row>: <what>"``."""
        return lambda what: self(f"{row}: {what}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", text)


def _row_path(out: Path, sc: Scenario, spec: MethodSpec) -> Path:
    return out / "rows" / _slug(sc.name) / f"{_slug(spec.label)}.json"


def _selected(only: Sequence[str], sc: Scenario, spec: MethodSpec) -> bool:
    return not only or any(fnmatch.fnmatchcase(f"{spec.label}/{sc.name}", pattern) for pattern in only)


def _check_settings(out: Path, settings: Settings) -> None:
    """Records ``settings`` in ``out``; rows of other settings there are refused, never mixed in."""
    path = out / "settings.json"
    wanted = json.loads(json.dumps(dataclasses.asdict(settings)))
    if path.is_file():
        found = json.loads(path.read_text())
        if found != wanted:
            changed = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
            raise OutputExistsError(
                f"{out} holds a comparison made with other settings (they differ in {changed}: {found}); "
                "choose another -o, or delete the folder to start afresh."
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json(wanted, path)
