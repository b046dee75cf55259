"""What every command shares: the console, errors as messages, JSON output, the model option's help."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from ..errors import ErasekitError

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


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
