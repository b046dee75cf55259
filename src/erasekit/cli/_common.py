"""What every command shares: the console, errors as messages, output checks, JSON output, the options' help."""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from ..config import renamed
from ..errors import ErasekitError, OutputError, OutputExistsError
from ..io import check_writable

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

MODEL_HELP = "A world ('embedded', 'tiny-sd1', 'tiny-sd2', 'tiny-sdxl'), a local diffusers folder or a cached hub id."
DEVICE_HELP = "cpu, cuda, cuda:1, mps or auto."
DTYPE_HELP = "float32, float16 (fp16) or bfloat16 (bf16); default: the checkpoint's. Half precision is for GPUs."
SET_HELP = "Override a hyper-parameter: NAME=VALUE (repeatable)."


def _show_deprecations() -> None:
    """Print the library's DeprecationWarnings (an old settings name, ``--preset``) as the command line's warnings.

    Python hides DeprecationWarning outside ``__main__``, so a user of the command line never saw that
    ``--settings style`` had become ``reference-style``. Only warnings raised for erasekit's own code are shown;
    other libraries' stay hidden. Called inside ``warnings.catch_warnings()``, which restores both afterwards.
    """
    warnings.filterwarnings("default", category=DeprecationWarning, module=r"erasekit(\.|$)")
    python_show = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, DeprecationWarning):
            console.print(f"[yellow]warning:[/] {message}", highlight=False)
        else:
            python_show(message, category, *args, **kwargs)

    warnings.showwarning = show


def errors_as_messages(fn: F) -> F:
    """An :class:`ErasekitError` becomes its message on stderr and exit code 2; anything else keeps its traceback.
    The library's deprecation warnings are printed as the command's own."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                _show_deprecations()
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
    check_writable(folder)


def check_output_folder(path: Path, *, overwrite: bool, marker: str) -> None:
    """Refuse, before any work, an output folder that could not be created or written at the end.

    ``marker``: the file whose presence means the folder already holds a result (``result.json``).

    Raises:
        OutputError: ``path`` or a folder above it is a file, or the folder it would be made in is not writable.
        OutputExistsError: ``path / marker`` exists and ``overwrite`` is False.
    """
    if (path / marker).exists() and not overwrite:
        raise OutputExistsError(f"{path} already holds a result ({marker}); choose another folder or pass --overwrite.")
    check_writable(path)


@contextmanager
def on_interrupt(message: str) -> Iterator[None]:
    """A Ctrl-C (KeyboardInterrupt) inside ends the command with ``message`` (what is kept, what to do) and exit
    code 130."""
    try:
        yield
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted:[/] {message}", highlight=False)
        raise typer.Exit(130) from None


def resumable(what: str = "Finished images are kept") -> AbstractContextManager[None]:
    """:func:`on_interrupt` for a command that resumes: ``what`` it keeps, and how to resume."""
    return on_interrupt(f"{what}; rerun the same command to resume.")


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def renamed_option(new_value: Any, old_value: Any, *, new: str, old: str) -> Any:
    """A renamed command-line option (:func:`erasekit.config.renamed`); its warning reaches the user through
    :func:`errors_as_messages`."""
    return renamed(new_value, old_value, new=new, old=old, stacklevel=4)
