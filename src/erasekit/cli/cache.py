"""``erasekit cache``: the encoded prompt sets erasekit keeps on disk between processes, and how to delete them."""

from __future__ import annotations

import typer
from rich.console import Console

from .. import state_cache
from ._common import print_json


def cache(
    clear: bool = typer.Option(False, "--clear", help="Delete every stored table (the next run encodes again)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show where erasekit keeps encoded prompt sets between processes (ACE's neutral captions: ~95 MB a training
    seed for the embedded world, 1 GiB at most), and how much they take.

    Set ERASEKIT_CACHE=DIR to move the folder, ERASEKIT_CACHE=off to keep nothing on disk.

    Example:

      erasekit cache --clear
    """
    folder = state_cache.cache_folder()
    tables = state_cache.stored()
    summary = {
        "folder": None if folder is None else str(folder),
        "tables": len(tables),
        "bytes": sum(size for _, size in tables),
    }
    if clear:
        summary["freed_bytes"] = state_cache.clear()
    if as_json:
        print_json(summary)
        return
    console = Console()
    if folder is None:
        console.print("ERASEKIT_CACHE=off: nothing is kept on disk.")
        return
    console.print(f"{folder}: {summary['tables']} table(s), {summary['bytes'] / 2**20:.1f} MiB")
    if clear:
        console.print(f"deleted them: {summary['freed_bytes'] / 2**20:.1f} MiB freed")
