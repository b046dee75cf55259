"""Generation: prompt × seed -> one image file, resumable, sharded across processes.

``generate`` makes one shard's missing images with a pipeline already loaded (the edit applied for
``edited`` items, removed for ``original`` ones). ``run_shards`` starts ``num_processes`` workers, each
loading the model and taking its shard of the same deterministic work list; under ``accelerate launch``
(or torchrun, mpirun) each launched process is one shard (``launched_shard``), and the first one waits
for the others' images on disk (``wait_for_items``) before scoring. A killed run resumes
from the files on disk: finished images are neither made again nor logged twice.

Progress bars live here (rich, as on the rest of the command line): one per run, drawn by the first
shard only when several processes share the work; the pipeline's own bar is turned off.
"""

from __future__ import annotations

import inspect
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from erasekit.errors import ConfigError, ErasekitError

from .protocols import Generation
from .store import ImageStore
from .work import Shard, WorkItem

logger = logging.getLogger(__name__)


class GenerationError(ErasekitError, RuntimeError):
    """A generation worker failed; its message and exit code say which."""


@dataclass(frozen=True)
class GenerateStats:
    """What one shard did: images made now, images found finished, repaired manifest lines, seconds."""

    made: int
    skipped: int
    repaired: int
    seconds: float


def generate(
    pipe: Any,
    items: Sequence[WorkItem],
    store: ImageStore,
    generation: Generation,
    *,
    edit: Any | None = None,
    shard: Shard = Shard(),
    progress: bool = True,
    on_image: Callable[[WorkItem], None] | None = None,
) -> GenerateStats:
    """Makes the missing images of this shard's items and logs each in the manifest.

    Items are made in list order, edited ones with ``edit`` applied to ``pipe`` and original ones
    without it, in batches of ``generation.batch_size`` that share a guidance scale. Each image's noise
    comes from its own CPU generator seeded with the item's seed, so an image does not depend on its
    batch, shard or device.

    Args:
        pipe: a diffusers text-to-image pipeline (or the embedded one).
        items: the whole work list; this shard takes its part.
        store: the run's output folder.
        generation: steps, guidance, size, negative prompt, batch size.
        edit: the ``Edit`` for ``edited`` items; None evaluates ``pipe`` as it is.
        shard: which part of ``items`` this process makes.
        progress: show a progress bar.
        on_image: called after each image is saved and logged (tests use it to stop a run midway).

    Returns:
        The shard's counts and time.
    """
    start = time.perf_counter()
    check_pipeline_accepts(pipe, generation)
    mine = shard.take(items)
    removed = store.remove_stale_temporaries(mine)
    if removed:
        logger.info("removed %d temporary file(s) left by a killed run", removed)
    skipped, repaired = store.repair(mine, shard=shard.index)
    todo = [item for item in mine if not store.has(item)]
    pipe.set_progress_bar_config(disable=True)
    desc = "generate" if shard.count == 1 else f"generate (shard 1 of {shard.count})"
    bar = ProgressBar(desc, enabled=progress and bool(todo) and shard.index == 0)  # one live bar per terminal
    bar(0, len(todo))
    try:
        for variant, group in groupby(todo, key=lambda item: item.variant):
            batch_items = list(group)
            applied = edit is not None and variant == "edited"
            if applied:
                edit.apply(pipe)
            try:
                for batch in _batches(batch_items, generation.batch_size):
                    t0 = time.perf_counter()
                    images = _run(pipe, batch, generation)
                    seconds = (time.perf_counter() - t0) / len(batch)
                    for item, image in zip(batch, images):
                        store.save(item, image)
                        store.record(item, shard=shard.index, seconds=seconds)
                        bar.advance()
                        if on_image is not None:
                            on_image(item)
            finally:
                if applied:
                    edit.remove(pipe)
    finally:
        bar.close()
    return GenerateStats(len(todo), skipped, repaired, time.perf_counter() - start)


class ProgressBar:
    """A rich bar on stderr driven by ``(done, total)`` calls, for loops that take a ``progress`` callback."""

    def __init__(self, desc: str, *, enabled: bool = True) -> None:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("img"),
                   TimeElapsedColumn(), TimeRemainingColumn())  # fmt: skip
        self._bar = Progress(*columns, console=Console(stderr=True), disable=not enabled)
        self._task = self._bar.add_task(desc, total=None)
        self._started = False

    def __call__(self, done: int, total: int) -> None:
        if not self._started:
            self._bar.start()
            self._started = True
        self._bar.update(self._task, completed=done, total=total)

    def advance(self, n: int = 1) -> None:
        self._bar.advance(self._task, n)

    def close(self) -> None:
        if self._started:
            self._bar.stop()


def _batches(items: list[WorkItem], size: int) -> list[list[WorkItem]]:
    """Returns consecutive batches of at most ``size`` items sharing one guidance scale."""
    out: list[list[WorkItem]] = []
    for _, group in groupby(items, key=lambda item: item.row.guidance):
        run = list(group)
        out += [run[i : i + size] for i in range(0, len(run), size)]
    return out


def check_pipeline_accepts(pipe: Any, generation: Generation) -> None:
    """Raises ConfigError when the settings name arguments ``pipe`` does not take (e.g. a size for the
    embedded model, whose images have one fixed size)."""
    taken = inspect.signature(pipe.__call__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in taken.values()):
        return
    asked = {"height": generation.height, "width": generation.width, "negative_prompt": generation.negative_prompt}
    refused = sorted(name for name, value in asked.items() if value is not None and name not in taken)
    if refused:
        raise ConfigError(
            f"the protocol sets {refused} but {type(pipe).__name__} takes no such argument: this protocol is for "
            "Stable Diffusion pipelines. Use an embedded-* protocol with the embedded model."
        )


def _run(pipe: Any, batch: list[WorkItem], generation: Generation) -> list[Any]:
    """Returns the PIL images of one batch."""
    guidance = batch[0].row.guidance if batch[0].row.guidance is not None else generation.guidance
    kwargs: dict[str, Any] = {
        "prompt": [item.row.prompt for item in batch],
        "num_inference_steps": generation.steps,
        "guidance_scale": guidance,
        "generator": [torch.Generator("cpu").manual_seed(item.seed) for item in batch],
    }
    if generation.height is not None:
        kwargs["height"] = generation.height
    if generation.width is not None:
        kwargs["width"] = generation.width
    if generation.negative_prompt is not None:
        kwargs["negative_prompt"] = [generation.negative_prompt] * len(batch)
    images = pipe(**kwargs).images
    if len(images) != len(batch):
        raise GenerationError(f"the pipeline returned {len(images)} images for {len(batch)} prompts.")
    return images


_RANK_ENV = (("RANK", "WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"))
"""Where launchers put a process's rank and the process count: ``accelerate launch`` / torchrun, then MPI
(accelerate's multi-CPU launches go through mpirun)."""


def launched_shard() -> Shard | None:
    """Returns this process's shard when a launcher started several (``accelerate launch``, torchrun,
    mpirun), None when it runs alone.

    The rank is read from the launcher's environment rather than from ``accelerate.PartialState``, which
    reports a single process on CPU-only machines even when several were launched.
    """
    for rank, size in _RANK_ENV:
        if int(os.environ.get(size, "1")) > 1:
            return Shard(int(os.environ[rank]), int(os.environ[size]))
    return None


def launched_device(device: str) -> str:
    """Returns ``device`` pinned to this process's GPU under a launcher (``cuda`` -> ``cuda:LOCAL_RANK``)."""
    if device in ("cuda", "auto") and "LOCAL_RANK" in os.environ and torch.cuda.is_available():
        return f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    return device


def wait_for_items(
    store: ImageStore, items: Sequence[WorkItem], *, poll_s: float = 2.0, stall_s: float = 1800.0
) -> None:
    """Blocks until every item's image exists (the other launched processes finished their shards).

    Raises:
        GenerationError: no new image appeared for ``stall_s`` seconds (another process died).
    """
    missing = [item for item in items if not store.has(item)]
    last_change, last_count = time.monotonic(), len(missing)
    while missing:
        if time.monotonic() - last_change > stall_s:
            raise GenerationError(
                f"{len(missing)} image(s) still missing after {stall_s:.0f} s without progress (e.g. "
                f"{missing[0].key}): another process of the launch has stopped. Run the same command again to resume."
            )
        time.sleep(poll_s)
        missing = [item for item in missing if not store.has(item)]
        if len(missing) != last_count:
            last_change, last_count = time.monotonic(), len(missing)


@dataclass(frozen=True)
class WorkerJob:
    """Everything a spawned worker needs to make its shard (picklable: names and paths, no models)."""

    model: str
    edit_path: str | None
    device: str
    dtype: str | None
    items: tuple[WorkItem, ...]
    out: str
    run: Mapping[str, Any]
    generation: Generation
    progress: bool


def _worker(job: WorkerJob, shard: Shard) -> None:
    import erasekit
    from erasekit.edit import Edit

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // shard.count))
    device = job.device
    if device.startswith("cuda") and torch.cuda.device_count() > 1:
        device = f"cuda:{shard.index % torch.cuda.device_count()}"
    pipe = erasekit.load_pipeline(job.model, device=device, dtype=job.dtype)
    edit = Edit.load(job.edit_path) if job.edit_path else None
    store = ImageStore(job.out, job.run)
    generate(pipe, job.items, store, job.generation, edit=edit, shard=shard, progress=job.progress)


def run_shards(job: WorkerJob, num_processes: int) -> float:
    """Makes every missing image of ``job.items`` with ``num_processes`` spawned workers; returns seconds.

    Raises:
        ConfigError: ``num_processes`` < 1.
        GenerationError: a worker exited with an error (its traceback is on stderr).
    """
    if num_processes < 1:
        raise ConfigError(f"--num-processes must be >= 1, got {num_processes}.")
    start = time.perf_counter()
    context = mp.get_context("spawn")  # fork would copy torch's thread pools and any CUDA state
    workers = [context.Process(target=_worker, args=(job, Shard(i, num_processes))) for i in range(num_processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    failed = [(i, w.exitcode) for i, w in enumerate(workers) if w.exitcode != 0]
    if failed:
        raise GenerationError(
            f"generation worker(s) {failed} (shard, exit code) failed; see the traceback above. Finished images "
            f"are kept: run the same command again to resume in {Path(job.out)}."
        )
    return time.perf_counter() - start
