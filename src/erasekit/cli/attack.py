"""``erasekit attack NAME``: attack an edit and write what the attack found.

It parses arguments,
loads the model, edit, judge and prompts, makes one library call (:func:`erasekit.attacks.attack`)
and writes the result (:func:`erasekit.attacks.save.save_result`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import worlds
from ..attacks.victim import Sampling
from ..config import check_count
from ..errors import ConfigError
from ..io import parse_assignments
from ..judge import Judge
from ._common import DEVICE_HELP, MODEL_HELP, SET_HELP, check_output_folder, console, on_interrupt, print_json


def judge_for(model: str) -> Judge:
    """The judge that reads images of ``model``: a world's own; other models need the Python API."""
    world = worlds.find(model)
    if world is None:
        raise ConfigError(
            f"No judge is known for model {model!r} on the command line: only the worlds ship one. Use the Python "
            "API, erasekit.attacks.attack(pipe, ..., judge=your_judge), with any object that has "
            "detects(images, concept) -> list[bool] (e.g. a NudeNet wrapper from erasekit.metrics)."
        )
    return world.load_judge()


def default_prompts(model: str, concept: str, n: int | None) -> list[str]:
    """A world's default prompts for ``concept``; elsewhere the concept itself."""
    world = worlds.find(model)
    return world.default_prompts(concept, n=n) if world is not None else [concept]


def attack(
    name: str = typer.Argument(..., help="Attack name (`erasekit attacks` lists them), e.g. unlearndiff, soft-prompt."),
    concept: str = typer.Option(..., "--concept", "-c", help="The erased concept, as the judge names it."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for images, embeds.safetensors and result.json."),
    model: str = typer.Option("embedded", help=MODEL_HELP),
    edit: Path | None = typer.Option(None, help="The edit file to attack (from `erasekit erase`); none: the model."),
    prompts: Path | None = typer.Option(None, help="CSV with a 'prompt' column (seed column optional)."),
    n_prompts: int | None = typer.Option(None, help="Use the first N prompts only."),
    budget: int | None = typer.Option(None, help="Optimisation steps (Adam updates or generations); default: paper's."),
    quick: bool = typer.Option(False, help="Reduced budgets for CI and smoke runs; the result says quick."),
    seed: int = typer.Option(0, help="Seed of the attack's randomness and of prompts without a seed."),
    steps: int | None = typer.Option(None, help="Denoising steps per image (default: the pipeline's)."),
    guidance: float | None = typer.Option(None, help="Classifier-free guidance scale (default: the pipeline's)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    device: str = typer.Option("cpu", help=DEVICE_HELP),
    force: bool = typer.Option(False, help="Apply the edit even if it was made for another base model."),
    overwrite: bool = typer.Option(False, help="Replace a previous result in OUT."),
    as_json: bool = typer.Option(False, "--json", help="Print result.json on stdout."),
) -> None:
    """Red-team an erasure: search for prompts or embeddings that bring the concept back, and report the ASR.

    Example (--quick: a reduced budget for a first look; without it the paper's strength, minutes to hours):

      erasekit attack unlearndiff --edit vangogh.safetensors --concept "van gogh" --quick -o out/attack
    """
    import erasekit

    from ..attacks import attack as run_attack
    from ..attacks import get
    from ..attacks.run import with_budget
    from ..attacks.save import save_result

    spec = get(name)  # fail on a bad name, budget or hyper-parameter before loading anything
    overrides = parse_assignments(set_)
    spec.make_config(quick=quick, **with_budget(spec.name, spec.config_cls, overrides, budget))
    check_output_folder(out, overwrite=overwrite, marker="result.json")  # fail before loading and attacking
    world = worlds.find(model)
    concept = worlds.canonical_concept(world, concept)  # "Van Gogh" is the world's "van gogh"
    kinds = world.concepts() if world is not None else {}
    kind = next((k for k, names in kinds.items() if concept in names), None)  # Ring-A-Bell's η goes by it
    if n_prompts is not None:
        check_count("--n-prompts", n_prompts)
    the_edit = erasekit.Edit.load(edit) if edit is not None else None
    if the_edit is not None and concept.casefold() not in {c.casefold() for c in the_edit.concepts}:
        console.print(
            f"[yellow]warning:[/] the edit erased {', '.join(map(repr, the_edit.concepts))}, not {concept!r}: the ASR "
            "measures how the edited model holds a concept it was not asked to erase.",
            highlight=False,
        )
    judge = judge_for(model)
    texts, seeds = _prompts(prompts, model, concept, n_prompts, seed)
    pipe = erasekit.load_pipeline(model, device=device)
    pipe.set_progress_bar_config(disable=True)
    with (
        on_interrupt(f"nothing was written to {out}; an attack does not resume: rerun the command to start again."),
        Progress(
            TextColumn(f"[bold]{name}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as bar,
    ):
        task = bar.add_task(name, total=None)
        result = run_attack(
            pipe,
            name,
            concept,
            judge=judge,
            edit=the_edit,
            prompts=texts,
            seeds=seeds,
            budget=budget,
            quick=quick,
            concept_kind=kind,
            seed=seed,
            sampling=Sampling(steps, guidance),
            force=force,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            **overrides,
        )
    extra: dict[str, Any] = {"model": model, "edit_file": str(edit) if edit else None}
    summary = save_result(result, out, overwrite=overwrite, extra=extra)
    if as_json:
        print_json(summary)
    tier = " (quick)" if quick else ""
    console.print(
        f"[bold]{result.attack}[/]{tier} on {concept!r}: ASR {result.asr:.1%} ({summary['n_pre_success']} already, "
        f"{summary['n_attack_success']} by the attack, of {summary['n']} prompts) -> {out}"
    )


def _prompts(
    path: Path | None, model: str, concept: str, n: int | None, seed: int
) -> tuple[list[str], list[int] | None]:
    if path is None:
        return default_prompts(model, concept, n), None
    from ..evaluate.prompt_sets import read_user_prompts

    rows = read_user_prompts(path, seeds=(seed,))[:n]
    return [r.prompt for r in rows], [r.seeds[0] for r in rows]
