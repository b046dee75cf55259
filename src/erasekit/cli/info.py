"""``erasekit info``, ``erasekit methods`` and ``erasekit attacks``: what an edit file and the registries hold."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .. import methods
from ..edit import Edit
from ._common import print_json


def info(
    file: Path = typer.Argument(..., help="An edit file written by `erasekit erase` (or any U-Net LoRA)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show what an edit file holds: method, concepts, hyper-parameters, base fingerprint, layers."""
    summary = {"file": str(file), **Edit.load(file).summary()}
    if as_json:
        print_json(summary)
        return
    table = Table(show_header=False)
    for key in ("file", "method", "concepts", "guides", "preserve", "fingerprint", "layers", "ranks", "parameters"):
        table.add_row(key, str(summary[key]))
    if summary["gate"] is not None:
        table.add_row("gate", json.dumps(summary["gate"]))
    if summary["prompt_scale"] is not None:
        table.add_row("prompt scale", json.dumps(summary["prompt_scale"]))
    table.add_row("config", json.dumps(summary["config"]))
    table.add_row("info", json.dumps(summary["info"], default=str))
    Console().print(table)


def list_methods(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the registered methods with their source, default hyper-parameters and named settings."""
    rows = []
    for name in methods.available():
        m = methods.get(name)
        defaults = {f.name: f.default for f in dataclasses.fields(m.config_cls)}
        rows.append({"name": name, "summary": m.summary, "source": m.source, "defaults": defaults,
                     "settings": m.settings, "takes_preserve": m.takes_preserve,
                     "variants": list(m.variants)})  # fmt: skip
    if as_json:
        print_json(rows)
        return
    table = Table("method", "what it does", "source", "defaults (--set NAME=VALUE)", "settings (--settings)")
    for r in rows:
        defaults = "\n".join(f"{k}={v!r}" for k, v in r["defaults"].items())
        settings = "\n".join(f"{k}: {v}" for k, v in r["settings"].items()) or "-"
        table.add_row(r["name"], r["summary"], r["source"], defaults, settings)
    Console().print(table)


def list_attacks(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the registered attacks: full-strength defaults and the --quick tier's budgets.

    White-box attacks say so in their summary (the table) and in ``white_box`` (``--json``).
    """
    from .. import attacks

    rows = []
    for name in attacks.available():
        spec = attacks.get(name)
        defaults = {f.name: f.default for f in dataclasses.fields(spec.config_cls)}
        rows.append(
            {
                "name": name,
                "summary": spec.summary,
                "white_box": spec.white_box,
                "defaults": defaults,
                "quick": dict(spec.quick),
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table("attack", "what it does", "defaults (--set NAME=VALUE)", "--quick")
    for r in rows:
        defaults = "\n".join(f"{k}={v!r}" for k, v in r["defaults"].items())
        table.add_row(r["name"], r["summary"], defaults, "\n".join(f"{k}={v!r}" for k, v in r["quick"].items()))
    Console().print(table)
