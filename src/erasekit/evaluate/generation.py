"""``generate_images``: the first half of ``evaluate``, and all of ``erasekit generate``.

Everything is checked before the run folder is touched: the settings, the prompts, whether the folder
holds another run's images, the model and whether the edit fits it. run.json is written only then, so
a refused run never blocks the corrected one. The missing images are then made in this process, in
``num_processes`` spawned workers, or as one shard of an ``accelerate launch``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import erasekit
from erasekit import worlds
from erasekit.config import check_count
from erasekit.edit import Edit
from erasekit.errors import ConfigError
from erasekit.io import check_writable

from .folder import RunLock
from .prompt_sets import PromptRow
from .protocols import EvalProtocol, Generation, PromptSetSpec
from .runner import (
    WorkerJob,
    check_pipeline_accepts,
    generate,
    launched_device,
    launched_shard,
    run_shards,
    wait_for_items,
)
from .store import ImageStore, dumps_strict
from .work import Shard, WorkItem, build_work

logger = logging.getLogger(__name__)


def run_lock(out: str | os.PathLike[str]) -> AbstractContextManager[Any]:
    """Returns the lock that keeps a second run out of ``out`` (:class:`RunLock`): nothing in the secondary
    processes of an ``accelerate launch``, which share the first process's run."""
    shard = launched_shard()
    return nullcontext() if shard is not None and shard.index != 0 else RunLock(out)


def default_generation(model: str, **overrides: Any) -> Generation:
    """Returns sampling settings for ``model``: a world's defaults, else SD's 50 steps at 7.5.

    Raises:
        ConfigError: an override out of range (steps or batch size < 1, a guidance that is not finite).
    """
    steps, guidance = worlds.sampling(model)
    base = Generation(steps=steps, guidance=guidance)
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def user_protocol(
    path: str | os.PathLike[str], generation: Generation | None = None, *, seeds: tuple[int, ...] = (0,)
) -> EvalProtocol:
    """Returns a protocol with no metrics over a user's CSV (``--prompts`` without ``--protocol``).

    Args:
        path: the CSV.
        generation: sampling settings (default ``Generation()``).
        seeds: seeds of prompts without a seed column.
    """
    return EvalProtocol(
        name=f"prompts:{Path(path).name}",
        description=f"images for the prompts of {path}",
        generation=generation or Generation(),
        prompts=(PromptSetSpec(name="prompts", csv=str(path), seeds=seeds),),
    )


def run_info(
    model: str, edit: Edit | None, protocol: EvalProtocol, concept: str | None, rows: Mapping[str, Any]
) -> dict:
    """Returns what identifies a run's images (stored as run.json; a mismatch refuses to resume).

    The batch size is left out: it changes how images are grouped, not what they are.
    """
    prompts = {name: [(r.prompt, list(r.seeds), r.guidance) for r in set_rows] for name, set_rows in rows.items()}
    generation = {k: v for k, v in dataclasses.asdict(protocol.generation).items() if k != "batch_size"}
    return {
        "model": model,
        "edit": edit.id if edit is not None else None,
        "generation": generation,
        "concept": concept,
        "prompt_sets": {name: len(set_rows) for name, set_rows in rows.items()},
        "prompts_sha256": hashlib.sha256(dumps_strict(prompts, sort_keys=True).encode()).hexdigest(),
    }


def check_edit_fits(pipe: Any, edit: Any) -> None:
    """Applies ``edit`` to ``pipe`` and removes it again (bit-identical), so that an edit made for another
    model is refused before anything is written.

    Raises:
        FingerprintMismatchError: the edit was made for another base model.
        EditFileError: the edit names layers ``pipe`` does not have.
    """
    edit.apply(pipe)
    edit.remove(pipe)


def generate_images(
    *,
    model: str,
    out: str | os.PathLike[str],
    protocol: EvalProtocol,
    rows: Mapping[str, Sequence[PromptRow]],
    edit: Edit | None = None,
    edit_path: str | os.PathLike[str] | None = None,
    concept: str | None = None,
    pipe: Any = None,
    num_processes: int = 1,
    device: str = "cpu",
    dtype: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    on_image: Callable[[WorkItem], None] | None = None,
    originals_from: Sequence[str | os.PathLike[str]] = (),
) -> tuple[ImageStore, list[WorkItem], float]:
    """Makes every missing image of ``rows`` (edited, and original where the protocol needs it).

    ``originals_from``: folders of runs that differ from this one in their edit only; the original-model
    images they finished are copied, not drawn again (:meth:`ImageStore.adopt_originals`).

    Returns:
        The run's store, the full work list and the seconds spent generating.

    Raises:
        ConfigError: ``num_processes`` < 1, or ``pipe`` given with ``num_processes`` > 1 (workers load their
            own model).
        OutputExistsError: ``out`` holds another run's images and ``overwrite`` is False.
        OutputError: ``out`` cannot be created or written (checked before the model is loaded).
        FingerprintMismatchError, EditFileError: the edit was made for another model (nothing is written).
        GenerationError: a worker failed.
    """
    check_count("--num-processes", num_processes)
    shard = launched_shard()
    spawn = num_processes > 1 and shard is None
    if spawn and pipe is not None:
        raise ConfigError("num_processes > 1 loads the model in each worker: pass the model name, not a pipeline.")
    if spawn and edit is not None and edit_path is None:
        raise ConfigError("num_processes > 1 needs the edit as a file (edit_path) for the workers to load.")
    all_rows = [row for set_rows in rows.values() for row in set_rows]
    items = build_work(all_rows, needs_originals=lambda name: edit is not None and protocol.needs_originals(name))
    run = run_info(model, edit, protocol, concept, rows)
    check_writable(out)
    with run_lock(out):  # a second run into ``out`` is refused (it would draw every image again)
        store = ImageStore(out, run, overwrite=overwrite, create=False)  # refuses another run's images; writes nothing
        if spawn:
            job = WorkerJob(model, str(edit_path) if edit_path else None, device, dtype, tuple(items), str(out), run,
                            protocol.generation, progress)  # fmt: skip
            return store.create(), items, run_shards(job, num_processes)
        if pipe is None and store.resumes and all(store.has(item) for item in items):  # finished: no model needed
            store.repair(items, shard=(shard or Shard()).index)
            logger.info("all %d images of %s exist: nothing to generate", len(items), out)
            return store, items, 0.0
        if pipe is None:
            pipe = erasekit.load_pipeline(model, device=launched_device(device), dtype=dtype)
        check_pipeline_accepts(pipe, protocol.generation)
        if edit is not None:
            check_edit_fits(pipe, edit)
        store.create()
        for source in originals_from:
            if adopted := store.adopt_originals(items, source, shard=(shard or Shard()).index):
                logger.info("took %d original image(s) from %s", adopted, source)
        stats = generate(pipe, items, store, protocol.generation, edit=edit, shard=shard or Shard(),
                         progress=progress, on_image=on_image)  # fmt: skip
        if shard is not None and shard.index == 0:
            wait_for_items(store, items)
    logger.info("generated %d image(s), %d already done, in %.1f s", stats.made, stats.skipped, stats.seconds)
    return store, items, stats.seconds
