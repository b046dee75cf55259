"""``erasekit evaluate`` and ``erasekit generate``.

Each parses its options and makes one library call; output goes to the run folder, a summary to
stderr, and with ``--json`` the metrics.json content to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from ..config import check_count
from ..errors import ConfigError
from ..evaluate.protocols import available_protocols
from ..io import parse_assignments
from ..metrics import GROUPS, WEIGHTS
from ._common import DEVICE_HELP, DTYPE_HELP, MODEL_HELP, console, print_json, renamed_option, resumable


def parse_weights(pairs: list[str]) -> dict[str, str]:
    """``["clip=/models/clip"]`` -> ``{"clip": "/models/clip"}``, checking each judge name.

    Raises:
        ConfigError: not NAME=PATH, or an unknown judge name.
    """
    out = parse_assignments(pairs, option="--weights", example="clip=/models/clip")
    unknown = sorted(set(out) - set(WEIGHTS))
    if unknown:
        raise ConfigError(f"--weights expects NAME=PATH with NAME one of {sorted(WEIGHTS)}, got {unknown}.")
    return out


N_PROMPTS_HELP = "Keep the first N prompts of every prompt set (quick runs)."


def n_prompts_or_limit(n_prompts: int | None, limit: int | None) -> int | None:
    """Returns ``--n-prompts``, or the deprecated ``--limit`` (hidden, for one release) with a warning.

    Raises:
        ConfigError: both given, with different values, or a value < 1.
    """
    n_prompts = renamed_option(n_prompts, limit, new="--n-prompts", old="--limit")
    if n_prompts is not None:
        check_count("--n-prompts", n_prompts)
    return n_prompts


def _summary(result: dict) -> None:
    from ..evaluate.report import ARROWS, better

    table = Table("group", "metric", "edited", "original", "better", title=f"{result['protocol']}: {result['concept']}")
    baseline = result.get("baseline") or {}
    for group in GROUPS:
        for key, value in result["metrics"][group].items():
            before = baseline.get(group, {}).get(key)
            way = better(group, key)
            table.add_row(group, key, _number(value), _number(before), f"{ARROWS[way]} {way}".strip())
    console.print(table)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def evaluate(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder: images, manifest, metrics.json, report.html."),
    model: str = typer.Option("embedded", help=MODEL_HELP),
    edit: Path | None = typer.Option(None, help="Edit file from `erasekit erase` (default: the model as it is)."),
    protocol: str | None = typer.Option(None, help=f"Protocol: one of {', '.join(available_protocols())}, or a YAML."),
    preset: str | None = typer.Option(None, hidden=True, help="Deprecated: use --protocol."),
    prompts: Path | None = typer.Option(
        None, help="CSV with a 'prompt' column (seed, guidance, label, group optional)."
    ),
    concept: str | None = typer.Option(None, help="Concept to evaluate (default: the edit's, else the protocol's)."),
    n_prompts: int | None = typer.Option(None, "--n-prompts", help=N_PROMPTS_HELP),
    limit: int | None = typer.Option(None, "--limit", hidden=True, help="Deprecated: use --n-prompts."),
    num_processes: int = typer.Option(1, "--num-processes", help="Generation workers (or use `accelerate launch`)."),
    weights: list[str] = typer.Option(
        [], "--weights", help="Judge weights: NAME=PATH (clip, inception, alexnet, ...)."
    ),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    dtype: str | None = typer.Option(None, help=DTYPE_HELP),
    attack_results: list[Path] = typer.Option(
        [], "--attack-results", help="Folder of `erasekit attack -o` (repeatable)."
    ),
    overwrite: bool = typer.Option(False, help="Start afresh if OUT holds images of another run."),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json on stdout."),
) -> None:
    """Generate with a protocol's prompts and seeds, score, and write metrics.json and report.html. Resumes.

    Example:

      erasekit evaluate --edit vangogh.safetensors --protocol embedded-style --n-prompts 8 -o out/eval
    """
    from ..evaluate.evaluation import evaluate as run_evaluation
    from ..evaluate.report import load_attack_record

    protocol = renamed_option(protocol, preset, new="--protocol", old="--preset")
    n_prompts = n_prompts_or_limit(n_prompts, limit)
    attacks = [load_attack_record(folder) for folder in attack_results]
    with resumable():
        result = run_evaluation(
            protocol, model=model, out=out, edit=edit, prompts_csv=prompts, concept=concept, limit=n_prompts,
            num_processes=num_processes, device=device, dtype=dtype, weights=parse_weights(weights), attacks=attacks,
            overwrite=overwrite, progress=not as_json or sys.stderr.isatty(),
        )  # fmt: skip
    if result is None:  # a non-main process of `accelerate launch`
        return
    if as_json:
        print_json(result)
    else:
        _summary(result)
        console.print(f"-> {out / 'metrics.json'}, {out / 'report.html'}")


def generate(
    prompts: Path = typer.Option(..., help="CSV with a 'prompt' column (seed, guidance, label optional)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: images/, manifest/, run.json."),
    model: str = typer.Option("embedded", help=MODEL_HELP),
    edit: Path | None = typer.Option(None, help="Edit file to apply (default: the model as it is)."),
    steps: int | None = typer.Option(None, help="Denoising steps (default: the embedded model's, else 50)."),
    guidance: float | None = typer.Option(None, help="Guidance scale when the CSV has none (default 4.0 / 7.5)."),
    seed: list[int] = typer.Option([0], "--seed", help="Seed(s) for prompts without a seed column (repeatable)."),
    batch_size: int = typer.Option(4, help="Prompts per pipeline call."),
    n_prompts: int | None = typer.Option(None, "--n-prompts", help="Keep the first N prompts."),
    limit: int | None = typer.Option(None, "--limit", hidden=True, help="Deprecated: use --n-prompts."),
    num_processes: int = typer.Option(1, "--num-processes", help="Generation workers (or use `accelerate launch`)."),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    dtype: str | None = typer.Option(None, help=DTYPE_HELP),
    overwrite: bool = typer.Option(False, help="Start afresh if OUT holds images of another run."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest (one entry per image) as JSON."),
) -> None:
    """Generate one image per prompt and seed into OUT, atomically and resumably (re-run to resume)."""
    from ..edit import Edit
    from ..evaluate.evaluation import default_generation, generate_images, load_rows, user_protocol

    n_prompts = n_prompts_or_limit(n_prompts, limit)
    generation = default_generation(model, steps=steps, guidance=guidance, batch_size=batch_size)
    protocol = user_protocol(prompts, generation, seeds=tuple(seed))
    rows = load_rows(protocol, concept=None, prompts_csv=prompts, limit=n_prompts)
    loaded = Edit.load(edit) if edit is not None else None
    with resumable():
        store, items, seconds = generate_images(
            model=model, out=out, protocol=protocol, rows=rows, edit=loaded, edit_path=edit,
            num_processes=num_processes, device=device, dtype=dtype, overwrite=overwrite,
            progress=not as_json or sys.stderr.isatty(),
        )  # fmt: skip
    if as_json:
        manifest = store.manifest()
        print_json([manifest[store.key(i)] for i in items if store.key(i) in manifest])
    else:
        console.print(f"{len(items)} image(s) in {store.images} ({seconds:.1f} s); manifest in {store.manifest_dir}")
