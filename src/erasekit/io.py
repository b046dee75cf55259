"""Writing files so that nothing is lost (and checking, before any work, that they can be written);
reading ``NAME=VALUE`` options and prompt CSVs.

:func:`atomic_write` is the one way erasekit writes a file: into a temporary file in the target's
folder, flushed to disk, then renamed over the target, so a killed run leaves either the old file
or the new one, never half of one. The file gets the permissions a plain ``open`` would give
(``0o666`` less the umask), not ``mkstemp``'s ``0o600``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, OutputError, PromptsFileError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], data: bytes | str | Callable[[Path], object]) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    Args:
        path: the file to write; its folder must exist.
        data: the bytes or text to write, or ``write(tmp_path)`` that writes the file itself
            (``image.save``, ``safetensors.torch.save_file``).

    Raises:
        OutputError: the folder does not exist or cannot be written, or ``path`` is a folder.
    """
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise OutputError(f"{path} is a folder: give a file name (e.g. {path / 'out.safetensors'}).")
    if not folder.is_dir():
        raise OutputError(f"Output folder {folder} does not exist: create it first (mkdir -p {folder}).")
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"Cannot write to {folder}: {e.strerror}. Choose a writable folder.") from e
    tmp = Path(name)
    try:
        if callable(data):
            os.close(fd)
            data(tmp)
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def parse_assignments(pairs: Iterable[str], *, option: str = "--set", example: str = "lamb=0.1") -> dict[str, str]:
    """``["lamb=0.1", "epochs=1"]`` -> ``{"lamb": "0.1", "epochs": "1"}`` (values stay strings).

    Raises:
        ConfigError: an item that is not ``NAME=VALUE`` or names a key twice.
    """
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{option} expects NAME=VALUE, got {pair!r} (e.g. {option} {example}).")
        if key in out:
            raise ConfigError(f"{option} names {key!r} twice: give each name once.")
        out[key] = value.strip()
    return out


def prompts_dir() -> Path:
    """The folder of the prompt CSVs shipped with erasekit (``erasekit/data/prompts``, see its SOURCES.md)."""
    return Path(__file__).parent / "data" / "prompts"


def read_csv(path: str | os.PathLike[str], *, required: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV (``.csv`` or ``.csv.gz``) as dicts, checking that ``required`` columns exist.

    Raises:
        PromptsFileError: the file is missing, unreadable, has no rows, or lacks required columns.
    """
    path = Path(path)
    if not path.is_file():
        raise PromptsFileError(f"prompts file {path} not found: check the path (a CSV with a 'prompt' column).")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))
        rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error, EOFError, gzip.BadGzipFile) as err:
        raise PromptsFileError(f"cannot read prompts file {path} as UTF-8 CSV: {err}") from err
    columns = list(reader.fieldnames or [])
    missing = [c for c in required if c not in columns]
    if missing:
        raise PromptsFileError(
            f"{path} lacks the column(s) {missing}; it has {columns}. Rename the columns or pick others "
            "(a prompts CSV needs at least a 'prompt' column; seed, guidance and label are optional)."
        )
    if not rows:
        raise PromptsFileError(f"{path} has a header but no rows.")
    return rows


def check_writable(folder: str | os.PathLike[str], option: str = "-o") -> None:
    """Refuses, before any work, an output folder that could not be created or written; creates nothing.
    ``option``: the command-line option that named it, for the message.

    Raises:
        OutputError: ``folder`` or a folder above it is a file, or the nearest existing folder on its path
            cannot be written (a probe file is created and deleted there: permission bits do not stop root,
            read-only mounts do).
    """
    path = Path(folder)
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise OutputError(f"cannot use {path} as an output folder: {existing} is a file. Choose another {option}.")
    try:
        fd, name = tempfile.mkstemp(dir=existing, prefix=".erasekit-probe-", suffix=".tmp")
    except OSError as err:
        raise OutputError(
            f"cannot write to {existing} ({err.strerror or err}): choose a writable folder for {option} {path}."
        ) from err
    os.close(fd)
    os.unlink(name)


def cached_json(path: str | os.PathLike[str], compute: Callable[[], Any]) -> Any:
    """The JSON in ``path``, or ``compute()`` written there atomically first (the folder is created)."""
    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    value = compute()
    atomic_write(path, json.dumps(value, allow_nan=False))
    return value
