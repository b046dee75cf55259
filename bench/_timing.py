"""Shared helpers of the bench scripts: thread pinning, median-of-k timing, a plain table, ACE's settings by name."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from erasekit import methods


def pin_threads(n: int) -> None:
    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)


def timed(fn: Callable[[], Any], *, repeats: int, warmup: int = 1) -> tuple[float, float, Any]:
    """(median seconds, min seconds, last result) of ``repeats`` calls after ``warmup`` untimed ones."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), result


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = list(rows[0])
    cells = [[_fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.4f}".rstrip("0").rstrip(".")
    return str(v)


def ace_settings(choice: str, kind: str) -> str | None:
    """ACE's settings for a ``--settings`` choice: ``kind`` gives what compare runs for a concept of ``kind``
    (ACE's ``BY_KIND``), ``defaults`` none, any other name itself."""
    return {"kind": methods.get("ace").settings_by_kind.get(kind), "defaults": None}.get(choice, choice)
