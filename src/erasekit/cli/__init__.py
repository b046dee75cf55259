"""The ``erasekit`` command line: a thin typer app over the library, one module per verb.

Every command parses its arguments, makes one library call and prints the result (a rich table,
or JSON with ``--json``). An :class:`~erasekit.errors.ErasekitError` becomes its message and exit
code 2. Besides ``worlds/``, this package is the only place that names a world (the default
``--model embedded``).
"""

from __future__ import annotations

import logging

import typer
from rich.logging import RichHandler

from .._version import __version__
from . import attack, cache, compare, demo, erase, evaluate, export, info, tune
from ._common import console, errors_as_messages

app = typer.Typer(
    help="Erase concepts from text-to-image diffusion models, attack the erasure, measure what it cost.\n\n"
    'Start with `erasekit methods`, then `erasekit erase "van gogh" --method rece -o vangogh.safetensors`.',
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what the library does."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )


for _name, _command in {
    "erase": erase.erase,
    "export": export.export,
    "attack": attack.attack,
    "evaluate": evaluate.evaluate,
    "generate": evaluate.generate,
    "compare": compare.compare,
    "tune": tune.tune,
    "demo": demo.demo,
    "info": info.info,
    "methods": info.list_methods,
    "attacks": info.list_attacks,
    "cache": cache.cache,
}.items():
    app.command(_name)(errors_as_messages(_command))


if __name__ == "__main__":
    app()
