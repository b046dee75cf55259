"""``erasekit erase``: erase concepts and write the edit file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress, TimeElapsedColumn

from ..io import parse_assignments, read_csv
from ..kinds import check_kinds
from ._common import (
    DEVICE_HELP,
    DTYPE_HELP,
    MODEL_HELP,
    SET_HELP,
    check_output_file,
    console,
    print_json,
    renamed_option,
)


def erase(
    concepts: list[str] = typer.Argument(..., help='Concepts to erase, e.g. "van gogh" nudity.'),
    out: Path = typer.Option(..., "--out", "-o", help="Edit file to write (safetensors, a diffusers LoRA)."),
    method: str = typer.Option("uce", "--method", "-m", help="Method name; see `erasekit methods`."),
    preserve: list[str] = typer.Option([], "--preserve", "-p", help="A concept to keep unchanged (repeatable)."),
    preserve_prompts: Path | None = typer.Option(
        None,
        help="CSV with a 'prompt' column: prompts of the preserved concepts that name no erased one. ACE measures "
        "its gate on them and with --set gate_preserve_rate=0.02 calibrates it; the edit records them. Never the "
        "prompts you will score the edit on.",
    ),
    guide: list[str] = typer.Option([], "--guide", "-g", help="What the concept becomes: one for all, or one each."),
    kind: list[str] = typer.Option(
        [],
        "--kind",
        help='What an erased concept is: unsafe, style, object or color, e.g. --kind "van gogh=style" (repeatable). '
        "Only ACE reads it (styles on every token instead of through its gate, --set ungated_kinds=...); every "
        "edit records the kinds.",
    ),
    model: str = typer.Option("embedded", help=MODEL_HELP),
    settings: str | None = typer.Option(None, help="A named set of the method's hyper-parameters (see `methods`)."),
    preset: str | None = typer.Option(None, hidden=True, help="Deprecated: use --settings."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    dtype: str | None = typer.Option(None, help=DTYPE_HELP),
    overwrite: bool = typer.Option(False, help="Replace OUT if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Erase concepts from a model and write the edit as a LoRA file. The model on disk is never touched.

    Example, then `erasekit info vangogh.safetensors` and `erasekit attack ... --edit vangogh.safetensors`:

      erasekit erase "van gogh" --method rece --settings reference-style --preserve monet -o vangogh.safetensors
    """
    import erasekit

    settings = renamed_option(settings, preset, new="--settings", old="--preset")
    check_output_file(out, overwrite=overwrite)  # fail before loading the model and solving
    overrides = parse_assignments(set_)
    kinds = parse_assignments(kind, option="--kind", example='"van gogh=style"')
    check_kinds(kinds, concepts)  # before the model loads
    kept = [row["prompt"] for row in read_csv(preserve_prompts, required=["prompt"])] if preserve_prompts else []
    pipe = erasekit.load_pipeline(model, device=device, dtype=dtype)
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"{method}", total=None)
        edit = erasekit.erase(
            pipe,
            concepts,
            method,
            preserve=preserve,
            preserve_prompts=kept,
            guides=guide or None,
            kinds=kinds,
            settings=settings,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            **overrides,
        )
    edit.info["model"] = model
    edit.save(out, overwrite=overwrite)
    if as_json:
        print_json({"file": str(out), **edit.summary()})
    else:
        console.print(
            f"Erased {', '.join(map(repr, edit.concepts))} with [bold]{edit.method}[/] in "
            f"{edit.info['edit_s']:.3f} s: {len(edit.updates)} layers, {edit.n_params:,} parameters -> {out}"
        )
