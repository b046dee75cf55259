"""The ``erasekit`` command line: a thin typer app over the library.

Every command parses its arguments, makes one library call and prints the result (a rich table,
or JSON with ``--json``). An :class:`ErasekitError` becomes its message and exit code 2.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import Progress, TimeElapsedColumn
from rich.table import Table

from . import __version__, methods
from .attacks.cli import attack as _attack
from .attacks.cli import list_attacks as _list_attacks
from .edit import Edit
from .errors import ConfigError, ErasekitError, OutputExistsError
from .evaluate.cli import evaluate as _evaluate
from .evaluate.cli import generate as _generate

app = typer.Typer(
    help="Erase concepts from text-to-image diffusion models, attack the erasure, measure what it cost.\n\n"
    'Start with `erasekit methods`, then `erasekit erase "van gogh" --method rece -o vangogh.safetensors`.',
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def _errors_as_messages(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ErasekitError as e:
            console.print(f"[bold red]error:[/] {e}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what the library does."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        print(__version__)
        raise typer.Exit()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["lamb=0.1", "epochs=1"]`` -> ``{"lamb": "0.1", "epochs": "1"}``; values are typed by the config."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects NAME=VALUE, got {pair!r} (e.g. --set lamb=0.1).")
        out[key.strip()] = value.strip()
    return out


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


@app.command()
@_errors_as_messages
def erase(
    concepts: list[str] = typer.Argument(..., help='Concepts to erase, e.g. "van gogh" nudity.'),
    out: Path = typer.Option(..., "--out", "-o", help="Edit file to write (safetensors, a diffusers LoRA)."),
    method: str = typer.Option("uce", "--method", "-m", help="Method name; see `erasekit methods`."),
    preserve: list[str] = typer.Option([], "--preserve", "-p", help="A concept to keep unchanged (repeatable)."),
    guide: list[str] = typer.Option([], "--guide", "-g", help="What the concept becomes: one for all, or one each."),
    model: str = typer.Option("embedded", help="'embedded', 'tiny-sd1', a local diffusers folder or a cached hub id."),
    preset: str | None = typer.Option(None, help="A named set of the method's hyper-parameters (see `methods`)."),
    set_: list[str] = typer.Option([], "--set", help="Override a hyper-parameter: NAME=VALUE (repeatable)."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, mps or auto."),
    dtype: str | None = typer.Option(None, help="float32, fp16 or bf16 (default: the checkpoint's)."),
    overwrite: bool = typer.Option(False, help="Replace OUT if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Erase concepts from a model and write the edit as a LoRA file. The model on disk is never touched."""
    import erasekit

    if out.exists() and not overwrite:  # fail before loading the model and solving
        raise OutputExistsError(f"{out} exists; choose another name or pass --overwrite.")
    pipe = erasekit.load_pipeline(model, device=device, dtype=dtype)
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"{method}", total=None)
        edit = erasekit.erase(
            pipe,
            concepts,
            method,
            preserve=preserve,
            guides=guide or None,
            preset=preset,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            **parse_overrides(set_),
        )
    edit.info["model"] = model
    edit.save(out, overwrite=overwrite)
    summary = _summary(edit, out)
    if as_json:
        _print_json(summary)
    else:
        console.print(
            f"Erased {', '.join(map(repr, edit.concepts))} with [bold]{edit.method}[/] in "
            f"{edit.info['edit_s']:.3f} s: {len(edit.updates)} layers, {edit.n_params:,} parameters -> {out}"
        )


@app.command("methods")
@_errors_as_messages
def list_methods(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """List the registered methods with their default hyper-parameters and presets."""
    rows = []
    for name in methods.available():
        m = methods.get(name)
        defaults = {f.name: f.default for f in dataclasses.fields(m.config_cls)}
        rows.append({"name": name, "summary": m.summary, "defaults": defaults, "presets": m.presets})
    if as_json:
        _print_json(rows)
        return
    table = Table("method", "what it does", "defaults (--set NAME=VALUE)", "presets (--preset)")
    for r in rows:
        defaults = "\n".join(f"{k}={v!r}" for k, v in r["defaults"].items())
        presets = "\n".join(f"{k}: {v}" for k, v in r["presets"].items()) or "-"
        table.add_row(r["name"], r["summary"], defaults, presets)
    Console().print(table)


@app.command()
@_errors_as_messages
def info(
    file: Path = typer.Argument(..., help="An edit file written by `erasekit erase` (or any U-Net LoRA)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show what an edit file holds: method, concepts, hyper-parameters, base fingerprint, layers."""
    edit = Edit.load(file)
    summary = _summary(edit, file)
    if as_json:
        _print_json(summary)
        return
    table = Table(show_header=False)
    for key in ("file", "method", "concepts", "guides", "preserve", "fingerprint", "layers", "ranks", "parameters"):
        table.add_row(key, str(summary[key]))
    if summary["gate"] is not None:
        table.add_row("gate", json.dumps(summary["gate"]))
    table.add_row("config", json.dumps(summary["config"]))
    table.add_row("info", json.dumps(summary["info"], default=str))
    Console().print(table)


@app.command()
@_errors_as_messages
def compare(
    out: Path = typer.Option(Path("out/compare"), "--out", "-o", help="Folder of the comparison (resumable)."),
    methods_: list[str] = typer.Option(
        [], "--methods", help="Methods, comma-separated or repeated: uce,rece,esd-x,rece:epochs=5 (default: all)."
    ),
    scenarios: list[str] = typer.Option(
        [], "--scenarios", help="style, object, unsafe, multi10 or any concept, comma-separated (default: the four)."
    ),
    n_prompts: int | None = typer.Option(None, "--n-prompts", help="Prompts per set and per attack [default: 8]."),
    budget: int | None = typer.Option(None, help="Steps of soft_prompt and discrete [default: 60]."),
    only: list[str] = typer.Option([], "--only", help="Compute only rows matching METHOD/SCENARIO: 'esd-*/style'."),
    threads: int | None = typer.Option(None, help="Torch threads (default: torch's)."),
    as_json: bool = typer.Option(False, "--json", help="Print compare.json on stdout."),
) -> None:
    """Every method on every kind of concept of the embedded world, under every attack: one table.

    Writes OUT/compare.md, OUT/compare.json and OUT/report.html; a killed run resumes where it stopped.
    """
    import torch

    from erasekit import compare as comparison
    from erasekit.compare_report import summary_line

    specs = [s for text in methods_ for s in comparison.split_specs(text)] or comparison.default_methods()
    names = [s for text in scenarios for s in text.split(",") if s.strip()] or list(comparison.SCENARIOS)
    given = {"n_prompts": n_prompts, "budget": budget}
    settings = comparison.Settings(**{k: v for k, v in given.items() if v is not None})  # defaults: the dataclass's
    command = shlex.join(["erasekit", "compare", "--methods", ",".join(specs), "--scenarios", ",".join(names),
                          "--n-prompts", str(settings.n_prompts), "--budget", str(settings.budget),
                          *(["--threads", str(threads)] if threads else []), "-o", str(out)])  # fmt: skip
    if threads:
        torch.set_num_threads(threads)
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("compare", total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        def on_row(row: dict[str, Any]) -> None:
            bar.console.print(summary_line(row, settings.attacks))

        comparison.run(out=out, methods=specs, scenarios=names, settings=settings, only=only, command=command,
                       progress=progress, on_row=on_row)  # fmt: skip
    if as_json:
        _print_json(json.loads((out / "compare.json").read_text()))
    else:
        console.print(f"-> {out / 'compare.md'}, {out / 'report.html'}")


app.command("attack")(_errors_as_messages(_attack))
app.command("attacks")(_errors_as_messages(_list_attacks))
app.command("evaluate")(_errors_as_messages(_evaluate))
app.command("generate")(_errors_as_messages(_generate))


def _summary(edit: Edit, path: Path) -> dict[str, Any]:
    ranks = sorted({B.shape[1] for B, _ in edit.updates.values()})
    return {
        "file": str(path),
        "method": edit.method,
        "concepts": edit.concepts,
        "guides": edit.guides,
        "preserve": edit.preserve,
        "fingerprint": edit.fingerprint,
        "layers": len(edit.updates),
        "ranks": ranks,
        "parameters": edit.n_params,
        "gate": (
            {**edit.gate.scalars(), "rank": edit.gate.basis.shape[1], "note": edit.info.get("gate_note", "")}
            if edit.gate is not None
            else None
        ),
        "config": edit.config,
        "info": edit.info,
    }


if __name__ == "__main__":
    app()
