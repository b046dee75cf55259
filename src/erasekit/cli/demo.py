"""``make demo``: erase "van gogh" from the embedded world with RECE and UCE, and show what changed.

For each method: erase the style (keeping the other artists), generate the ``embedded-style``
preset's prompts with the original and the edited model (target prompts, held-out paraphrases,
other styles), score them with the world's judge, print a table, and write ``report.html`` with
the before/after grids. ``erasekit demo --out out/demo`` (``make demo``).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

import erasekit
from erasekit import worlds
from erasekit.errors import MissingWeightsError
from erasekit.evaluate import evaluate
from erasekit.evaluate.folder import make_folder

CONCEPT = "van gogh"
# RECE with the reference code's style settings (λ 1e-3, 1 epoch)
METHODS = {"rece": {"settings": "reference-style"}, "uce": {}}
console = Console()


def main(out: Path, *, n_prompts: int) -> None:
    try:
        pipe = erasekit.load_pipeline("embedded")
    except MissingWeightsError as e:
        console.print(f"[yellow]The embedded world's weights are missing ({e}).[/] Showing a tiny random model.")
        tiny(out)
        return
    preserve = [s for s in worlds.get("embedded").concepts()["style"] if s != CONCEPT]
    rows = []
    for method, options in METHODS.items():
        edit = erasekit.erase(pipe, [CONCEPT], method, preserve=preserve, **options)
        edit.save(out / f"{method}-vangogh.safetensors", overwrite=True)
        folder = out if method == "rece" else out / method
        result = evaluate("embedded-style", model="embedded", out=folder, edit=edit, pipe=pipe, limit=n_prompts)
        assert result is not None, "single process: the result comes back"
        rows.append((method, edit.info["edit_s"], result, folder / "report.html"))
    show(rows)


def show(rows: list) -> None:
    table = Table(
        title=f"Erasing {CONCEPT!r} from the embedded world: how often the judge sees it (original -> edited)"
    )
    heads = ("method", "edit time", "target prompts ↓", "paraphrases ↓", "other styles correct ↑", "H_o ↑")
    for col in heads:
        table.add_column(col)
    for method, edit_s, result, _ in rows:
        m, b = result["metrics"], result["baseline"]

        def pair(group: str, key: str, m=m, b=b) -> str:
            return f"{b[group][key]:.0%} -> {m[group][key]:.0%}"

        table.add_row(
            method,
            f"{edit_s:.3f} s",
            pair("efficacy", "judge_detect_rate_target"),
            pair("generality", "judge_detect_rate_generality"),
            pair("specificity", "judge_acc_specificity"),
            f"{m['quality']['mace_h_o']:.3f}",
        )
    console.print(table)
    console.print("↓ lower is better (the judge still sees the erased style), ↑ higher is better.")
    for method, _, _, report in rows:
        console.print(f"{method}: before/after grids in {report}")


def tiny(out: Path) -> None:
    pipe = erasekit.load_pipeline("tiny-sd1")
    for method in METHODS:
        edit = erasekit.erase(pipe, [CONCEPT], method)
        path = edit.save(out / f"{method}-tiny.safetensors", overwrite=True)
        console.print(f"{method}: {len(edit.updates)} layers, {edit.n_params:,} parameters, "
                      f"{edit.info['edit_s']:.3f} s -> {path}")  # fmt: skip


def demo(
    out: Path = typer.Option(Path("out/demo"), "--out", "-o", help="Folder for the edits, images and report.html."),
    n_prompts: int | None = typer.Option(None, "--n-prompts", help="Prompts per set, 2 seeds each (default 10)."),
    limit: int | None = typer.Option(None, "--limit", hidden=True, help="Deprecated: use --n-prompts."),
) -> None:
    """Erase "van gogh" from the embedded world with RECE and UCE, and show what changed (report.html)."""
    from ._common import resumable
    from .evaluate import n_prompts_or_limit

    n_prompts = n_prompts_or_limit(n_prompts, limit) or 10
    make_folder(out)  # an unwritable -o is refused before any work
    with resumable("Finished images are kept"):
        main(out, n_prompts=n_prompts)
