"""A paper protocol's loop: every method × every table on a real model, each step kept for a resume.

A row (``rows/<table>/<method>.json``) erases the table's concept with the method on the model
(``edit.safetensors``), then either evaluates the edit with the table's protocol (:func:`evaluate`, which
shards its images over ``num_processes`` accelerate workers and resumes) or runs each attack on the
attack protocol's prompts (``attacks/<attack>.json``). ``compare.md`` and ``compare.json`` put the paper's
figures (:class:`PaperTable.paper`) beside ours, column by column; a figure the paper does not give is "–".

Where this departs from a world's comparison: a method gets the concept alone (no preserve set: the paper's
baselines erase with their defaults) at its settings for the table's kind (RECE: its reference's epochs and
λ per kind), and its final edit is kept, never one chosen among candidates (a real model has no val split
here); rates are plain values, without the world's Wilson intervals.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from erasekit import attacks, methods, worlds
from erasekit.api import erase
from erasekit.attacks.victim import Sampling
from erasekit.errors import ConfigError, OutputExistsError
from erasekit.io import atomic_write, cached_json, check_writable
from erasekit.metrics import MetricContext, preflight

from ..evaluation import evaluate, load_rows
from ..folder import make_folder
from ..report import write_json
from ..runner import launched_shard
from .paper import NudeNetJudge, PaperProtocol, PaperSettings, PaperTable, check_real_model, flatten
from .rows import MethodSpec, attack_cache, parse_method
from .run import _slug

Progress = Callable[[str], None]


def run_paper(
    paper: PaperProtocol,
    *,
    model: str,
    out: str | Path,
    methods: Sequence[str],
    settings: PaperSettings | None = None,
    tables: Sequence[str] = (),
    device: str = "cpu",
    dtype: str | None = None,
    num_processes: int = 1,
    weights: Mapping[str, str] | None = None,
    command: str | None = None,
    progress: Progress | None = None,
    judge: Any = None,
) -> list[dict[str, Any]]:
    """Computes the missing rows of ``methods`` × ``paper``'s tables on ``model``; writes compare.md/json.

    Args:
        paper: the bundle (:func:`load_paper`).
        model: a local diffusers folder of the paper's model (or a tiny world, for tests).
        methods: method specs (:func:`parse_method`).
        settings: prompts, steps, resolution, attack budget (default: the paper's).
        tables: the tables to run (default: all).
        device, dtype, num_processes, weights: as :func:`evaluate` takes them.
        command: the command line, written under the tables.
        progress: ``progress(what)`` before each step.
        judge: the attacks' judge (default: :class:`NudeNetJudge`).

    Raises:
        ConfigError: a bad method spec or table, ``model`` is a world with concepts of its own, or the run was
            started by a launcher (``accelerate launch``: ``num_processes`` shards the images instead).
        MissingWeightsError: a judge of a table (NudeNet, LPIPS, CLIP, Inception, the classifier) is not
            available locally (before any work).
        OutputExistsError: ``out`` holds rows made with other settings.
    """
    out = Path(out)
    if launched_shard() is not None:  # every launched process would erase and attack again
        raise ConfigError(
            "a paper run is one process that spawns its image workers: run it without accelerate launch / "
            "torchrun, with --num-processes N (one worker per GPU, num_processes= in Python)."
        )
    check_writable(out)
    check_real_model(model, worlds.find(model))
    settings = settings or PaperSettings()
    specs = [parse_method(m) for m in methods]
    chosen = [t for t in paper.tables if not tables or t.name in tables]
    for table in chosen:  # a missing judge (LPIPS, CLIP, NudeNet...) fails now, not after a day of sampling
        for metric in () if table.protocol is None else settings.protocol(table.protocol).metrics:
            preflight(metric.name, MetricContext(concept=table.concept, weights=dict(weights or {}), device=device))
    _check_settings(out, paper, settings)
    if judge is None and any(t.attacks for t in chosen):
        judge = NudeNetJudge()
    pipe = None
    rows = []
    for table in chosen:
        for spec in specs:
            path = out / "rows" / table.name / f"{_slug(spec.label)}.json"
            if not path.is_file():
                if pipe is None:
                    pipe = worlds.load_pipeline(model, device=device, dtype=dtype)
                    pipe.set_progress_bar_config(disable=True)
                say = (lambda what, t=table, s=spec: progress(f"{s.label} / {t.name}: {what}")) if progress else None
                row = _row(pipe, model, table, spec, settings, path.with_suffix(""), judge=judge, say=say,
                           cache=out / "cache", evaluate_kw={"device": device, "dtype": dtype,
                                                             "num_processes": num_processes,
                                                             "weights": dict(weights or {})})  # fmt: skip
                path.parent.mkdir(parents=True, exist_ok=True)
                write_json(row, path)
            rows.append(json.loads(path.read_text()))
            write_paper_outputs(out, paper, rows, settings, command=command)
    return rows


def _row(pipe: Any, model: str, table: PaperTable, spec: MethodSpec, settings: PaperSettings, folder: Path, *,
         judge: Any, say: Progress | None, cache: Path, evaluate_kw: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Erases the table's concept with ``spec`` and scores or attacks the edit; returns the row."""
    say = say or (lambda what: None)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    say("erase")
    edit_path = folder / "edit.safetensors"
    m = methods.get(spec.method)
    named = spec.settings or m.settings_by_kind.get(table.kind, m.default_settings)
    if not edit_path.is_file():  # a resume keeps the edit (and so the evaluation's folder, keyed by it)
        erase(pipe, [table.concept], spec.method, settings=named, **spec.overrides).save(edit_path)
    row: dict[str, Any] = {"table": table.name, "method": spec.label, "concept": table.concept, "settings": named}
    if table.protocol is not None:
        say("evaluate")
        others = sorted(p for p in folder.parent.glob("*/eval") if p != folder / "eval")
        single = evaluate_kw["num_processes"] == 1  # workers load their own pipeline
        result = evaluate(settings.protocol(table.protocol), model=model, out=folder / "eval", edit=edit_path,
                          concept=table.concept, limit=settings.n_prompts, progress=False,
                          pipe=pipe if single else None, originals_from=others, **evaluate_kw)  # fmt: skip
        assert result is not None, "evaluate returns None only in secondary processes of an accelerate launch"
        row["ours"], row["original"] = flatten(result["metrics"]), flatten(result["baseline"] or {})
        row["report"] = (folder / "eval" / "report.html").as_posix()
    else:
        row["ours"] = {}
        for name, protocol_name in table.attacks.items():
            say(name)
            run = functools.partial(_attack, pipe, table, name, protocol_name, settings, edit_path, judge, cache)
            found = cached_json(folder / "attacks" / f"{name}.json", run)  # a killed row keeps its finished attacks
            row["ours"][f"asr.{name}"] = found["asr"]
            row.setdefault("attack_n", {})[name] = found["n"]
    row["row_s"] = time.perf_counter() - start
    return row


def _attack(pipe: Any, table: PaperTable, name: str, protocol_name: str, settings: PaperSettings, edit_path: Path,
            judge: Any, cache: Path) -> dict[str, Any]:  # fmt: skip
    """One attack on the first prompt set of ``protocol_name`` (its seeds, the protocol's sampling); an attack
    whose config has a ``cache`` field gets ``cache/<attack>`` (Ring-A-Bell's searches, shared by every row)."""
    from erasekit.edit import Edit

    protocol = settings.protocol(protocol_name)
    rows = next(iter(load_rows(protocol, concept=table.concept, limit=settings.n_prompts).values()))
    sampling = Sampling(protocol.generation.steps, protocol.generation.guidance)
    shared = attack_cache(name, cache)
    start = time.perf_counter()
    res = attacks.attack(pipe, name, table.concept, judge=judge, edit=Edit.load(edit_path),
                         prompts=[r.prompt for r in rows], seeds=[r.seeds[0] for r in rows],
                         budget=settings.budget if attacks.get(name).budgeted else None, concept_kind=table.kind,
                         seed=settings.seed, sampling=sampling, **shared)  # fmt: skip
    return {"asr": res.asr, "n": len(res.cases), "seconds": time.perf_counter() - start}


def _check_settings(out: Path, paper: PaperProtocol, settings: PaperSettings) -> None:
    """Records the bundle and settings in ``out``; rows of others there are refused, never mixed in."""
    wanted = {"paper": paper.name, **dataclasses.asdict(settings)}
    path = out / "settings.json"
    if path.is_file():
        found = json.loads(path.read_text())
        if found != wanted:
            changed = sorted(k for k in set(found) | set(wanted) if found.get(k) != wanted.get(k))
            raise OutputExistsError(
                f"{out} holds a {found.get('paper')} run made with other settings (they differ in {changed}: "
                f"{found}); rerun with those to resume it, choose another -o, or delete the folder to start afresh."
            )
        return
    make_folder(out)
    write_json(wanted, path)


def paper_tables(paper: PaperProtocol, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per table that has rows: per method, each column's ours and the paper's figure (None: not published)."""
    found = []
    for table in paper.tables:
        mine = [r for r in rows if r["table"] == table.name]
        if not mine:
            continue
        lines = [{"method": r["method"], "source": table.source.get(r["method"]),
                  "columns": {c: {"ours": r["ours"].get(c), "paper": table.paper.get(r["method"], {}).get(c)}
                              for c in table.columns}} for r in mine]  # fmt: skip
        found.append({"table": table.name, "title": table.title, "rows": lines})
    return found


def write_paper_outputs(out: Path, paper: PaperProtocol, rows: Sequence[Mapping[str, Any]],
                        settings: PaperSettings, *, command: str | None = None) -> None:  # fmt: skip
    """Writes compare.json (the tables, the rows, the settings) and compare.md, atomically."""
    tables = paper_tables(paper, rows)
    write_json({"paper": paper.name, "reference": paper.reference, "settings": dataclasses.asdict(settings),
                "tables": tables, "rows": list(rows), "command": command}, out / "compare.json")  # fmt: skip
    atomic_write(out / "compare.md", markdown(paper, tables, settings, command))


def _number(value: Any) -> str:
    return "–" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown(paper: PaperProtocol, tables: Sequence[Mapping[str, Any]], settings: PaperSettings,
             command: str | None) -> str:  # fmt: skip
    """One Markdown table per paper table: a row per method, "ours | paper" per column."""
    reduced = {k: v for k, v in dataclasses.asdict(settings).items() if v is not None and k != "seed"}
    lines = [f"# {paper.name}: {paper.reference}", ""]
    if reduced:
        lines += [f"**Reduced run** ({reduced}): not the paper's protocol; its figures are not comparable.", ""]
    for table in tables:
        columns = list(table["rows"][0]["columns"])
        lines += [f"## {table['title']}", "", "| method | " + " | ".join(f"{c} ours | paper" for c in columns) + " |",
                  "|---|" + "---:|---:|" * len(columns)]  # fmt: skip
        for row in table["rows"]:
            cells = [f"{_number(v['ours'])} | {_number(v['paper'])}" for v in row["columns"].values()]
            lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
        sources = sorted({r["source"] for r in table["rows"] if r["source"]})
        note = "; ".join(sources) if sources else 'none of these methods\' figures are in the bundle ("–")'
        lines += ["", f"Paper figures: {note}.", ""]
    if command:
        lines += [f"`{command}`", ""]
    return "\n".join(lines)
