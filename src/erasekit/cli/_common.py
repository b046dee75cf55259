"""What every command shares: the console, errors as messages, output checks, JSON output, the options' help."""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from ..config import renamed
from ..errors import ErasekitError, OutputError, OutputExistsError

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

MODEL_HELP = "A world ('embedded', 'tiny-sd1', 'tiny-sd2', 'tiny-sdxl'), a local diffusers folder or a cached hub id."
DEVICE_HELP = "cpu, cuda, cuda:1, mps or auto."
DTYPE_HELP = "float32, fp16 or bf16 (default: the checkpoint's)."
SET_HELP = "Override a hyper-parameter: NAME=VALUE (repeatable)."


def errors_as_messages(fn: F) -> F:
    """An :class:`ErasekitError` becomes its message on stderr and exit code 2; anything else keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ErasekitError as e:
            console.print(f"[bold red]error:[/] {e}", markup=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def check_output_file(path: Path, *, overwrite: bool) -> None:
    """Refuse, before any work, an output file that could not be written at the end.

    Raises:
        OutputError: ``path`` is a folder, or its folder does not exist or is not writable.
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    if path.is_dir():
        raise OutputError(f"{path} is a folder: give a file name (e.g. {path / 'out.safetensors'}).")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; choose another name or pass --overwrite.")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"Output folder {folder} does not exist: create it first (mkdir -p {folder}).")
    _check_writable(folder)


def check_output_folder(path: Path, *, overwrite: bool, marker: str) -> None:
    """Refuse, before any work, an output folder that could not be created or written at the end.

    ``marker``: the file whose presence means the folder already holds a result (``result.json``).

    Raises:
        OutputError: ``path`` or a folder above it is a file, or the folder it would be made in is not writable.
        OutputExistsError: ``path / marker`` exists and ``overwrite`` is False.
    """
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file, not a folder: give -o a folder name (it is created if needed).")
    if (path / marker).exists() and not overwrite:
        raise OutputExistsError(f"{path} already holds a result ({marker}); choose another folder or pass --overwrite.")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise OutputError(f"Cannot create the output folder {path}: {existing} is a file.")
    _check_writable(existing)


def _check_writable(folder: Path) -> None:
    """Create and delete a file in ``folder`` (permission bits do not stop root; read-only mounts do)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".erasekit-probe-", suffix=".tmp")
    except OSError as e:
        raise OutputError(f"Cannot write to {folder}: {e.strerror}. Choose a writable folder.") from e
    os.close(fd)
    os.unlink(name)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def renamed_option(new_value: Any, old_value: Any, *, new: str, old: str) -> Any:
    """A renamed command-line option (:func:`erasekit.config.renamed`), the warning also printed for the user."""
    if old_value is not None:
        console.print(f"[yellow]warning:[/] {old} is now {new}; {old} goes in the next release.")
    return renamed(new_value, old_value, new=new, old=old, stacklevel=4)
