"""``evaluate``: one call from a model, an edit and a protocol to metrics.json and report.html.

Steps: resolve the concept and the prompt rows; build the work list; generate the missing images (in
this process, in ``num_processes`` spawned workers, or as one shard of an ``accelerate launch``); score
them; write the outputs. ``generate_images`` is the first half alone, for ``erasekit generate``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import erasekit
from erasekit import worlds
from erasekit.config import check_count
from erasekit.edit import Edit
from erasekit.errors import ConfigError
from erasekit.metrics import GROUPS, Judge, MetricContext, preflight
from erasekit.worlds import World

from .generation import default_generation, generate_images, run_lock, user_protocol
from .prompt_sets import PromptRow, load_prompt_set, read_user_prompts
from .protocols import EvalProtocol, load_protocol
from .report import AttackRecord, check_attacks, with_attacks, write_html, write_json
from .runner import ProgressBar, launched_shard
from .scoring import score
from .store import finite_or_none
from .work import WorkItem

__all__ = [
    "default_generation",
    "evaluate",
    "generate_images",
    "load_rows",
    "resolve_concept",
    "user_protocol",
]

logger = logging.getLogger(__name__)


def resolve_concept(
    protocol: EvalProtocol, edit: Edit | None, concept: str | None, world: World | None = None
) -> str | None:
    """Returns the concept under evaluation: ``concept``, else the edit's first, else the protocol's default,
    in ``world``'s spelling (:func:`erasekit.worlds.canonical_concept`: "Van Gogh" is the embedded world's "van gogh").

    Raises:
        ConfigError: an embedded-world protocol made for one kind of concept (e.g. styles) is asked to
            evaluate another kind (e.g. an object): its report would carry the wrong name.
    """
    found = concept
    if not found and edit is not None and edit.concepts:
        if len(edit.concepts) > 1:
            logger.info("the edit erases %s; evaluating the first, %r", edit.concepts, edit.concepts[0])
        found = edit.concepts[0]
    if not found:
        return protocol.concept
    found = worlds.canonical_concept(world, found)
    if world is not None and protocol.concept and any(spec.embedded for spec in protocol.prompts):
        kind, expected = world.concept_kind(found), world.concept_kind(protocol.concept)
        if kind != expected:
            shipped = "embedded-nudity" if kind == "unsafe" else f"embedded-{kind}"
            article = "an" if kind[0] in "aeiou" else "a"
            raise ConfigError(
                f"{protocol.name} evaluates {expected} concepts but {found!r} is {article} {kind} concept: use "
                f"--protocol {shipped}, or --concept with a {expected} concept."
            )
    return found


def load_rows(
    protocol: EvalProtocol,
    *,
    concept: str | None,
    prompts_csv: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    world: World | None = None,
) -> dict[str, list[PromptRow]]:
    """Returns the prompt rows of every set of ``protocol``, by set name.

    With ``prompts_csv``, the user's CSV replaces the protocol's prompts: rows go to the set its ``group``
    column names, or all to the protocol's first set; sets that get no row are left out (and so are
    their metrics).

    Raises:
        PromptsFileError: missing file or columns.
        ConfigError: ``limit`` < 1, or a set left empty.
    """
    if limit is not None:
        check_count("--n-prompts (limit)", limit)
    if prompts_csv is None:
        rows = {spec.name: load_prompt_set(spec, concept=concept, world=world) for spec in protocol.prompts}
    else:
        names = [spec.name for spec in protocol.prompts]
        user = read_user_prompts(prompts_csv, set_names=names, seeds=protocol.prompts[0].seeds)
        rows = {name: [r for r in user if r.set == name] for name in names}
        rows = {name: r for name, r in rows.items() if r}
    return {name: r[:limit] if limit else r for name, r in rows.items()}


def evaluate(
    protocol: EvalProtocol | str | None = None,
    *,
    model: str = "embedded",
    out: str | os.PathLike[str],
    edit: Edit | str | os.PathLike[str] | None = None,
    prompts_csv: str | os.PathLike[str] | None = None,
    concept: str | None = None,
    limit: int | None = None,
    num_processes: int = 1,
    device: str = "cpu",
    dtype: str | None = None,
    weights: Mapping[str, str] | None = None,
    attacks: Sequence[AttackRecord] = (),
    overwrite: bool = False,
    progress: bool = True,
    pipe: Any = None,
    judge_loader: Callable[[], Judge] | None = None,
    world: World | str | None = None,
    on_image: Callable[[WorkItem], None] | None = None,
    originals_from: Sequence[str | os.PathLike[str]] = (),
) -> dict[str, Any] | None:
    """Generates, scores and reports one edit under one protocol; returns the metrics.json content.

    Args:
        protocol: a ``EvalProtocol``, a shipped protocol name or a YAML path; None with ``prompts_csv`` makes
            images of the user's prompts only (no metrics).
        model: "embedded", a tiny model name, a local diffusers folder or a cached hub id.
        out: the run's folder (images, manifest, metrics.json, report.html); re-running resumes.
        edit: an ``Edit`` or its file; None evaluates the model as it is.
        prompts_csv: a user's CSV replacing the protocol's prompts (see ``load_rows``).
        concept: the concept to evaluate; default the edit's first concept, else the protocol's.
        limit: keep the first ``limit`` prompts of every set (quick runs).
        num_processes: generation workers spawned here (ignored under ``accelerate launch``).
        device, dtype: where and how the model runs.
        weights: judge name -> local weights path (``--weights clip=/models/clip``).
        attacks: attack outcomes to add to the ASR group and the report.
        overwrite: start afresh when ``out`` holds another run.
        progress: show progress bars.
        pipe: an already loaded pipeline (tests; single process only).
        judge_loader: returns the judge (default: the world's; tests pass a stub).
        world: the world whose prompt suites, concepts and judge score the images (a name or a
            :class:`World`); default: ``model``'s own world, none for a diffusers folder.
        on_image: called after each image is saved (tests stop a run with it).
        originals_from: folders of runs of other edits under the same protocol, model and prompts, whose
            original-model images are copied instead of drawn again (``erasekit compare``'s rows).

    Returns:
        The metrics.json content; None in processes other than the main one of an accelerate launch.

    Raises:
        ConfigError: neither protocol nor prompts, a bad option, or an attack result of another edit or
            concept, or two of one attack (``check_attacks``).
        MissingWeightsError: the model, the edit or a judge is not available locally.
        OutputExistsError: ``out`` holds another run's images.
    """
    if protocol is None and prompts_csv is None:
        raise ConfigError("pass a protocol (--protocol NAME) or a prompts CSV (--prompts FILE).")
    check_count("--num-processes", num_processes)
    edit_path = None
    if edit is not None and not isinstance(edit, Edit):
        edit_path, edit = edit, Edit.load(edit)
    if protocol is None:
        protocol = user_protocol(prompts_csv, default_generation(model))  # type: ignore[arg-type]
    elif not isinstance(protocol, EvalProtocol):
        protocol = load_protocol(protocol)
    world = worlds.find(model) if world is None else worlds.get(world) if isinstance(world, str) else world
    concept = resolve_concept(protocol, edit, concept, world)
    check_attacks(attacks, None if edit is None else edit.summary(brief=True), concept)
    rows = load_rows(protocol, concept=concept, prompts_csv=prompts_csv, limit=limit, world=world)
    has_concepts = world is not None and bool(world.concepts())
    if judge_loader is None and has_concepts:
        judge_loader = world.load_judge  # type: ignore[union-attr]
    ctx = MetricContext(
        concept=concept, weights=dict(weights or {}), device=device, judge_loader=judge_loader,
        concept_kind=world.concept_kind if has_concepts else None,  # type: ignore[union-attr]
    )  # fmt: skip
    for spec in protocol.metrics:  # a missing judge fails now, not after hours of sampling
        preflight(spec.name, ctx)
    with run_lock(out):  # one run at a time in ``out``, from the first image to report.html
        store, items, generate_s = generate_images(
            model=model, out=out, protocol=protocol, rows=rows, edit=edit, edit_path=edit_path, concept=concept,
            pipe=pipe, num_processes=num_processes, device=device, dtype=dtype, overwrite=overwrite,
            progress=progress, on_image=on_image, originals_from=originals_from,
        )  # fmt: skip
        shard = launched_shard()
        if shard is not None and shard.index != 0:
            return None
        start = time.perf_counter()
        bar = ProgressBar("score", enabled=progress)
        try:
            with_edit = edit is not None
            metrics, baseline = score(protocol, rows, store, ctx, baseline=protocol.baseline and with_edit,
                                      references="original" if with_edit else "edited", progress=bar)  # fmt: skip
        finally:
            bar.close()
        result = {
            "model": model,
            "edit": None if edit is None else edit.summary(brief=True),
            "protocol": protocol.name,
            "preset": protocol.name,  # the key's old name, kept for one release (DESIGN.md's JSON)
            "concept": concept,
            "n_images": len(items),
            "metrics": metrics,
            "baseline": baseline,
            "timing": {
                "edit_s": edit.info.get("edit_s") if edit is not None else None,
                "generate_s": round(generate_s, 3),
                "score_s": round(time.perf_counter() - start, 3),
            },
            "settings": {
                "generation": dataclasses.asdict(protocol.generation),
                "prompt_sets": {name: len(r) for name, r in rows.items()},
                "n_prompts": limit,
                "limit": limit,  # the key's old name, kept for one release
                "reference": protocol.reference,
            },
            "erasekit_version": erasekit.__version__,
        }
        assert set(result["metrics"]) == set(GROUPS), "scoring must fill exactly the five groups"
        result = finite_or_none(with_attacks(result, attacks))  # strict JSON: an undefined score is null
        write_json(result, Path(out) / "metrics.json")
        write_html(result, rows, store, Path(out) / "report.html", attacks=attacks)
    return result
