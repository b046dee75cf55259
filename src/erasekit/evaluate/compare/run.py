"""The comparison's loop: the grid of methods × scenarios, finished rows kept, outputs rewritten, progress."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from erasekit import methods as registry
from erasekit import worlds
from erasekit.errors import ConfigError, OutputExistsError
from erasekit.io import check_writable
from erasekit.worlds import World

from ..folder import make_folder
from ..report import write_json
from .report import Goal, write_outputs
from .rows import MethodSpec, Settings, compute_row, parse_method
from .scenarios import Scenario, describe, get_world, scenario

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (steps done, steps in all, what runs now)


def default_methods() -> list[str]:
    """Returns every registered method as a spec, in the registry's order, a method with variants as its
    variants in its place (ESD as ``esd-x`` and ``esd-u``)."""
    return [v for name in registry.available() for v in (registry.get(name).variants or [name])]


def default_scenarios(world: str = worlds.DEFAULT) -> list[str]:
    """Returns the names of the world's named scenarios (a comparison's default)."""
    return list(get_world(world).scenarios())


def load(world: World) -> tuple[Any, Any]:
    """Returns the world's pipeline (its own progress bar off) and its judge."""
    pipe = world.load_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe, world.load_judge()


def run(
    *,
    out: str | os.PathLike[str],
    methods: Sequence[str],
    scenarios: Sequence[str],
    settings: Settings | None = None,
    world: str = worlds.DEFAULT,
    only: Sequence[str] = (),
    command: str | None = None,
    goals: Sequence[Goal] = (),
    progress: Progress | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    loader: Callable[[World], tuple[Any, Any]] = load,
) -> list[dict[str, Any]]:
    """Computes the missing rows of ``methods`` × ``scenarios`` and writes the table; returns every row.

    Outputs are rewritten after each row, so a long run can be read while it goes on.

    Args:
        out: the folder of the comparison (rows, edits, images, compare.md/json, report.html).
        methods: specs such as ``"uce"``, ``"esd-x"``, ``"rece:epochs=5"`` (see :func:`parse_method`).
        scenarios: named scenarios of the world (:func:`default_scenarios`) or any of its concepts.
        settings: quick or full, prompts per set, attack seeds and budget, attacks (default: the full settings).
        world: the registered world whose pipeline, judge, concepts and prompt suites are used.
        only: glob patterns on ``"<method>/<scenario>"``: compute only the rows they match (the table
            still shows every finished row of the grid).
        command: the command line that made the table, written under it.
        goals: verdicts to write under the table (:class:`Goal`).
        progress: ``progress(done, total, what)`` before each step of each row to compute.
        on_row: called with each row computed now.
        loader: returns the world's pipeline and judge; called once, when the first row is to be computed.

    Raises:
        UnknownMethodError, UnknownWorldError, ConfigError: a bad method spec, world or scenario, or a scenario
            whose fit, val and test prompts overlap (before any work).
        ConfigError: ``out`` holds a quick comparison and this one is full, or the other way round.
        OutputExistsError: ``out`` holds rows made with other settings.
        OutputError: ``out`` cannot be created or written (before any work).
    """
    out = Path(out)
    check_writable(out)  # a folder that cannot be written is refused before any work
    w = worlds.get(world)
    specs = [parse_method(m) for m in methods]
    settings = settings or Settings()
    grid = [(sc, spec) for sc in (scenario(_spelled(name, w), w) for name in scenarios) for spec in specs]
    described = {sc.name: describe(sc, settings.n_prompts, n_tuning=settings.tuning_prompts) for sc, _ in grid}
    _check_settings(out, settings)
    todo = [(sc, spec) for sc, spec in grid if not _row_path(out, sc, spec).is_file() and _selected(only, sc, spec)]
    steps = _Steps(progress, sum(2 + len(settings.attacks) * len(sc.attacked) for sc, _ in todo))
    rows: list[dict[str, Any]] = []
    pipe, judge = None, None
    for sc, spec in grid:
        path = _row_path(out, sc, spec)
        if (sc, spec) in todo:
            if pipe is None:
                pipe, judge = loader(w)
            folder = path.with_suffix("")
            row = compute_row(pipe, judge, sc, spec, settings, folder, steps.within(f"{spec.label} / {sc.name}"),
                              cache=out / "cache")  # fmt: skip
            row["report"] = (folder / "eval" / "report.html").relative_to(out).as_posix()
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(row, path)
            logger.info("%s / %s done in %.0f s", spec.label, sc.name, row["row_s"])
            if on_row is not None:
                on_row(row)
        if path.is_file():
            rows.append(json.loads(path.read_text()))
            write_outputs(out, rows, settings, scenarios=described, command=command, goals=goals)
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


def _spelled(name: str, world: World) -> str:
    """Returns the world's spelling of a scenario or concept name, whatever its case ("Van Gogh", "STYLE")."""
    key = " ".join(name.split()).casefold()
    return next((s for s in world.scenarios() if s.casefold() == key), None) or worlds.canonical_concept(world, name)


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
        if found.get("quick", False) != settings.quick:
            was, now = ("quick", "full") if settings.quick is False else ("full", "quick")
            raise ConfigError(
                f"{out} holds a {was} comparison and this run is a {now} one: its rows would be mixed with "
                f"{was} rows. Rerun {'with' if was == 'quick' else 'without'} --quick to resume it, or give the "
                f"{now} run another -o (the rows in {out} are kept)."
            )
        if found != wanted:
            changed = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
            raise OutputExistsError(
                f"{out} holds a comparison made with other settings (they differ in {changed}: {found}); "
                "choose another -o, or delete the folder to start afresh."
            )
        return
    make_folder(out)
    write_json(wanted, path)
