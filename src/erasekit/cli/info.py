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
    """Show what an edit file holds: method, concepts, hyper-parameters, base fingerprint, layers; for ACE also what
    it erases besides the concepts (mined words) and its gate's rates.

    Example:

      erasekit info vangogh.safetensors --json
    """
    summary = {"file": str(file), **Edit.load(file).summary()}
    if as_json:
        print_json(summary)
        return
    table = Table(show_header=False)
    for key in ("file", "method", "concepts", "guides", "preserve", "fingerprint", "layers", "ranks", "parameters"):
        table.add_row(key, str(summary[key]))
    extra = summary["info"]
    for key, label in READ_FIRST.items():  # before the config and the full info, where they would be buried
        if extra.get(key) is not None:
            table.add_row(label, json.dumps(extra[key], default=str))
    if "gate_heldout_neutral_prompts" in extra:
        table.add_row("gate on held-out captions", _gate_rates(extra))
    if summary["gate"] is not None:
        table.add_row("gate", json.dumps(summary["gate"]))
    if summary["prompt_scale"] is not None:
        table.add_row("prompt scale", json.dumps(summary["prompt_scale"]))
    table.add_row("config", json.dumps(summary["config"]))
    table.add_row("info", json.dumps({k: _short(v) for k, v in extra.items()}, default=str))
    Console().print(table)


# What an edit erases besides the concepts it was asked for (ACE's mining): read before shipping it
READ_FIRST = {
    "mined_words": "also erased (mined words)",
    "mined_render_agreement": "their render agreement r",
    "gate_siblings": "gate shut on (siblings)",
    # ACE: a concept on every token because the original draws a first word piece of its name as it ("ten" of "tench"):
    # every prompt holding that piece is moved too
    "ungated_fragments": "on every token for the word piece (r)",
}


def _gate_rates(extra: dict) -> str:
    return (
        f"open on {extra['gate_heldout_neutral_tokens']:.1%} of the neutral tokens and "
        f"{extra['gate_heldout_neutral_prompts']:.1%} of {extra.get('gate_heldout_n_neutral')} neutral captions; "
        f"found in {extra['gate_heldout_concept_prompts']:.1%} of {extra.get('gate_heldout_n_concept')} captions of "
        "the concepts"
    )


def _short(value: object) -> object:
    """A long list (per-round losses) as its length and last value: --json prints it whole."""
    if isinstance(value, list) and len(value) > 8:
        return f"{len(value)} values, the last {value[-1]!r} (--json: all)"
    return value


def list_methods(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the registered methods with their source, default hyper-parameters and named settings (--json for
    machines)."""
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
    console = Console()
    for r in rows:  # one two-column table per method: five columns side by side were unreadable at 80 columns
        table = Table(title=f"[bold]{r['name']}[/]", title_justify="left", show_header=False, expand=True)
        table.add_row("what it does", r["summary"])
        table.add_row("source", r["source"])
        table.add_row("defaults (--set NAME=VALUE)", ", ".join(f"{k}={v!r}" for k, v in r["defaults"].items()))
        table.add_row("settings (--settings)", "\n".join(f"{k}: {v}" for k, v in r["settings"].items()) or "-")
        if r["variants"]:
            table.add_row("variants (compare rows)", ", ".join(r["variants"]))
        console.print(table)


def list_attacks(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the registered attacks: full-strength defaults and the --quick tier's budgets (--json for machines).

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
    console = Console()
    for r in rows:  # one two-column table per attack, readable at 80 columns
        table = Table(title=f"[bold]{r['name']}[/]", title_justify="left", show_header=False, expand=True)
        table.add_row("what it does", r["summary"])
        table.add_row("defaults (--set NAME=VALUE)", ", ".join(f"{k}={v!r}" for k, v in r["defaults"].items()))
        table.add_row("--quick", ", ".join(f"{k}={v!r}" for k, v in r["quick"].items()) or "-")
        console.print(table)
