"""``erasekit tune``: a method's hyper-parameters chosen on a scenario's val prompts (never the test ones)."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import typer
from rich.table import Table

from ..errors import ConfigError
from ..io import atomic_write, check_writable, parse_assignments
from ._common import console, print_json, resumable


def tune(
    method: str = typer.Argument(..., help="A method or variant of `erasekit methods`: esd-x, ace, rece."),
    grid: list[str] = typer.Option(
        ..., "--grid", help="NAME=V1,V2,... values to try; repeat for more names (every combination is tried)."
    ),
    scenario: str = typer.Option("style", "--scenario", help="A scenario of the world, or one of its concepts."),
    world: str = typer.Option("embedded", "--model", "--world", help="The world whose val prompts score the edits."),
    settings: str | None = typer.Option(
        None,
        "--settings",
        help="Named settings the grid is laid over; default: those `erasekit compare` runs for the scenario (the "
        "method's settings for its kind of concept, e.g. RECE's reference-nudity on unsafe, else its default "
        "settings, e.g. ESD's lora); 'defaults': none, the config's own defaults.",
    ),
    n_prompts: int = typer.Option(16, "--n-prompts", help="Val prompts per group (target, paraphrase)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Also write the ranking to this JSON file."),
    edits: Path | None = typer.Option(
        None,
        "--edits",
        help="Keep each point's edit and val scores in this folder (made if missing): rerun the same command to "
        "resume, and attack the edits afterwards (`erasekit attack --edit DIR/POINT.safetensors`).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the ranking as JSON."),
) -> None:
    """Erase at every point of a grid and rank the points by H_o on the val split.

    Efficacy and paraphrase detection of the erased concepts on their val prompts, and how often concepts
    no method was given still show on theirs; the table's test prompts are never drawn. Example:
    `erasekit tune esd-x --scenario style --grid lr=3e-4,1e-3,3e-3 -o tune-esd.json`. Over training seeds, the
    edits kept: `erasekit tune ace --scenario unsafe --grid seed=0,1,2,3,4 --edits out/tune-ace`.
    """
    from ..config import check_count
    from ..evaluate import compare as comparison
    from ..evaluate.compare.rows import settings_for
    from ..evaluate.compare.run import load
    from ..evaluate.compare.scenarios import get_world
    from ..evaluate.compare.tuning import tune as run_tune
    from ..methods import get

    check_count("--n-prompts", n_prompts)
    spec = comparison.parse_method(method)
    values = parse_assignments(grid, option="--grid", example="lr=3e-4,1e-3")
    points = {name: [v for v in text.split(",") if v.strip()] for name, text in values.items()}
    for name, vals in points.items():
        if not vals:
            raise ConfigError(f"--grid {name}= has no values; give them comma-separated, e.g. --grid {name}=1,2.")
        joined = "," if ":" in method else ":"
        comparison.parse_method(f"{method}{joined}{name}={vals[0]}")  # an unknown name or bad value fails now
    sc = comparison.scenario(scenario, world)
    if edits is not None:
        check_writable(edits, "--edits")
    pipe, judge = load(get_world(world))
    m = get(spec.method)
    # what compare's row runs when no settings are named: tuning against other settings (AdvUnlearn's paper's
    # 1000 iterations of 50 DDIM steps; ACE's defaults where compare runs `unsafe`) ranks points no row runs
    settings = None if settings == "defaults" else settings or settings_for(spec, sc)
    if edits is not None:
        edits.mkdir(parents=True, exist_ok=True)
    with resumable("Finished points' edits and scores are kept in --edits") if edits else nullcontext():
        ranked = run_tune(pipe, judge, sc, spec.method, points, n=n_prompts, settings=settings,
                          fixed=spec.overrides, takes_preserve=m.takes_preserve, keep=edits)  # fmt: skip
    result = {"method": method, "scenario": sc.name, "settings": settings, "n_prompts": n_prompts, "ranked": ranked}
    if out is not None:
        atomic_write(out, json.dumps(result, indent=2))
    if as_json:
        print_json(result)
        return
    named = f"settings {settings}" if settings else "the config's defaults"
    title = f"{method} on {sc.name} ({named}; val split, {n_prompts} prompts per group)"
    points = [", ".join(f"{k}={x}" for k, x in r["overrides"].items()) for r in ranked]
    table = Table("overrides", "efficacy ↓", "generality ↓", "specificity ↑", "H_o ↑", title=title)
    for point, r in zip(points, ranked):
        table.add_row(point, *(f"{r['val'][k]:.2f}" for k in ("efficacy", "generality", "specificity", "H_o")))
    console.print(table)
    if "by_concept" in ranked[0]["val"]:  # several erased concepts: which of them each point leaves behind
        per = Table("concept", *points, title="each erased concept: efficacy ↓ / generality ↓ (val)")
        for concept in ranked[0]["val"]["by_concept"]:
            cells = [r["val"]["by_concept"][concept] for r in ranked]
            per.add_row(concept, *(f"{c['efficacy']:.2f} / {c['generality']:.2f}" for c in cells))
        console.print(per)
