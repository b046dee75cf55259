"""The output folder of a run: images written atomically, a manifest, and a guard against mixing runs.

Layout::

    OUT/run.json                     what made the images (model, edit, generation settings)
    OUT/images/<variant>/<set>/<row>_s<seed>.png    variant: edited, original; model for a run without an edit
    OUT/manifest/shard-<i>.jsonl     one line per finished image, appended by the shard that made it
    OUT/.erasekit.lock               the pid of the run using the folder (folder.RunLock), while it runs

An image is written to a temporary name in its folder and renamed into place, so a file under its final
name is always complete; the image file is the ground truth of "done", and the manifest is its log.
A run killed between the rename and the manifest line is repaired on resume (the line is added, the
image is not made again). Lines cut short by a kill are ignored.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from PIL import Image

from erasekit.errors import ConfigError, OutputError, OutputExistsError
from erasekit.io import atomic_write

from .folder import make_folder
from .work import WorkItem

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"


class ImageStore:
    """The images and manifest of one run under ``root``.

    Args:
        root: the output folder (created if missing).
        run: what identifies the images (model, edit id, generation settings, prompts); a folder holding
            images of another run is refused, so a resume never mixes two runs. A folder whose run.json
            names another run but that holds no image (a run refused or stopped before its first image)
            is taken over.
        overwrite: discard a folder of another run instead of refusing it.
        create: create the folder and write run.json now; False only checks (nothing is written until
            :meth:`create`), so a run refused later, e.g. for its edit, leaves no trace.

    Raises:
        OutputExistsError: ``root`` holds another run's images and ``overwrite`` is False.
        OutputError: ``root`` cannot be created or written.
    """

    def __init__(
        self, root: str | os.PathLike[str], run: Mapping[str, Any], *, overwrite: bool = False, create: bool = True
    ) -> None:
        self.root = Path(root)
        self.images = self.root / "images"
        self.manifest_dir = self.root / "manifest"
        self.run = json.loads(dumps_strict(dict(run), sort_keys=True, default=str))
        self._created = False
        self.resumes = False  # run.json names this very run: finished images are kept
        self._discard = False  # the folder holds another run's files, to clear on create()
        run_file = self.root / RUN_FILE
        if run_file.is_file():
            previous = _read_json(run_file)
            self.resumes = previous == self.run
            if not self.resumes and self._has_images():
                changed = sorted(k for k in set(previous) | set(self.run) if previous.get(k) != self.run.get(k))
                if not overwrite:
                    raise OutputExistsError(
                        f"{self.root} holds images of another run (it differs in {changed}); resuming would mix "
                        "them. Choose another -o, or pass --overwrite to start this folder afresh."
                    )
            self._discard = not self.resumes
        if create:
            self.create()

    def create(self) -> ImageStore:
        """Creates the folder, clears another run's files (see the class), writes run.json; returns self."""
        if self._created:
            return self
        make_folder(self.manifest_dir)
        if self._discard:
            self._clear()
        atomic_write(self.root / RUN_FILE, dumps_strict(self.run, indent=2, sort_keys=True))
        self._created = True
        return self

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> ImageStore:
        """Returns the store of the finished or interrupted run in ``root`` (to score or report it again).

        Raises:
            OutputError: ``root`` holds no run (no run.json).
        """
        run_file = Path(root) / RUN_FILE
        if not run_file.is_file():
            raise OutputError(f"{root} holds no erasekit run ({RUN_FILE} missing): generate into it first.")
        return cls(root, _read_json(run_file), create=False)

    def _has_images(self) -> bool:
        return self.images.is_dir() and any(p.is_file() for p in self.images.rglob("*.png"))

    def _clear(self) -> None:
        logger.info("discarding the files of another run in %s", self.root)
        for path in sorted(self.images.rglob("*"), reverse=True) if self.images.exists() else []:
            path.unlink() if path.is_file() else path.rmdir()
        for path in self.manifest_dir.glob("*.jsonl"):
            path.unlink()

    @cached_property
    def model_only(self) -> bool:
        """Whether the run has no edit: its images are the model's as it is, filed under ``images/model/``.

        A run made before that name (its images under ``images/edited/``) keeps its folder, so it resumes.
        """
        if "edit" not in self.run or self.run["edit"] is not None:
            return False
        return not (self.resumes and (self.images / "edited").is_dir())

    def key(self, item: WorkItem) -> str:
        """Returns ``item``'s name in this run: its path under ``images/`` without suffix, its manifest key."""
        return f"model/{item.key.partition('/')[2]}" if self.model_only and item.variant == "edited" else item.key

    def path(self, item: WorkItem) -> Path:
        """Returns where ``item``'s image lives."""
        return self.images / f"{self.key(item)}.png"

    def has(self, item: WorkItem) -> bool:
        """Returns whether ``item``'s image is finished (its final name exists)."""
        return self.path(item).is_file()

    def load(self, item: WorkItem) -> Image.Image:
        """Returns ``item``'s image, read fully into memory."""
        with Image.open(self.path(item)) as image:
            return image.convert("RGB")

    def save(self, item: WorkItem, image: Image.Image) -> Path:
        """Writes ``item``'s image atomically: to a temporary file in the same folder, then renamed."""
        path = self.path(item)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))

    def adopt_originals(self, items: Sequence[WorkItem], source: str | os.PathLike[str], *, shard: int) -> int:
        """Copies into this run the original-model images of ``items`` that the run in ``source`` finished;
        returns how many. An original image does not depend on the edit, so a run that differs from this
        one in its edit only (same model, sampling, concept and prompts) has drawn exactly these; any other
        source gives nothing. Each copy is atomic and logged, as a drawn image is."""
        other = Path(source)
        run_file = other / RUN_FILE
        if not run_file.is_file() or other.resolve() == self.root.resolve():
            return 0
        previous = _read_json(run_file)
        if {k: v for k, v in previous.items() if k != "edit"} != {k: v for k, v in self.run.items() if k != "edit"}:
            return 0
        adopted = 0
        for item in items:
            found = other / "images" / f"{item.key}.png"
            if item.variant != "original" or self.has(item) or not found.is_file():
                continue
            self.path(item).parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path(item), found.read_bytes())
            self.record(item, shard=shard)
            adopted += 1
        return adopted

    def remove_stale_temporaries(self, items: list[WorkItem]) -> int:
        """Deletes temporary files a killed process left for ``items``; returns how many."""
        removed = 0
        for item in items:
            path = self.path(item)
            for tmp in path.parent.glob(f".{path.name}.*.tmp") if path.parent.exists() else []:
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    def repair(self, items: list[WorkItem], *, shard: int) -> tuple[int, int]:
        """Logs finished images of ``items`` that have no manifest line (a kill between rename and log).

        Returns:
            (finished images, lines added).
        """
        logged = self.manifest()
        finished = [item for item in items if self.has(item)]
        missing = [item for item in finished if self.key(item) not in logged]
        for item in missing:
            self.record(item, shard=shard)
        return len(finished), len(missing)

    def record(self, item: WorkItem, *, shard: int, seconds: float | None = None) -> None:
        """Appends ``item``'s manifest line to this shard's log."""
        line = {
            "key": self.key(item),
            "file": str(self.path(item).relative_to(self.root)),
            "variant": self.key(item).partition("/")[0],
            "set": item.row.set,
            "index": item.row.index,
            "prompt": item.row.prompt,
            "seed": item.seed,
            "guidance": item.row.guidance,
            "label": item.row.label,
            "shard": shard,
            "seconds": seconds,
        }
        data = (dumps_strict(line) + "\n").encode()
        with open(self.manifest_dir / f"shard-{shard}.jsonl", "ab+") as f:
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a line cut short by a kill: end it, so this one stays whole
                    data = b"\n" + data
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def manifest(self) -> dict[str, dict[str, Any]]:
        """Returns every finished image's manifest line, by key (first line wins; partial lines skipped)."""
        out: dict[str, dict[str, Any]] = {}
        for line in self._lines():
            out.setdefault(line["key"], line)
        return out

    def manifest_lines(self) -> list[dict[str, Any]]:
        """Returns every readable manifest line of every shard, duplicates included (for checks)."""
        return list(self._lines())

    def _lines(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self.manifest_dir.glob("*.jsonl")):
            for text in path.read_text().splitlines():
                try:
                    line = json.loads(text)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill; its image is checked on resume
                if isinstance(line, dict) and "key" in line:
                    yield line


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """Returns ``obj`` as strict JSON (no NaN or Infinity, which strict readers refuse).

    Raises:
        ConfigError: ``obj`` holds a NaN or an infinity.
    """
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError as err:
        raise ConfigError(f"cannot write {str(obj)[:200]} as JSON: it holds NaN or an infinity ({err}).") from err


def finite_or_none(obj: Any, *, where: str = "") -> Any:
    """Returns ``obj`` (dicts, lists, numbers) with every NaN or infinity replaced by None, each logged.

    metrics.json is strict JSON: a score that came out undefined (e.g. a metric over no image) is written
    ``null``, never ``NaN``, which strict readers refuse.
    """
    if isinstance(obj, float) and not math.isfinite(obj):
        logger.warning("%s is %s: written as null", where or "a value", obj)
        return None
    if isinstance(obj, Mapping):
        return {k: finite_or_none(v, where=f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v, where=f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise OutputError(f"{path} is not readable JSON ({err}): delete it or choose another -o.") from err
    if not isinstance(data, dict):
        raise OutputError(f"{path} is not an erasekit run file: delete it or choose another -o.")
    return data
