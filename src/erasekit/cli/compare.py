"""``erasekit compare``: every method on every kind of concept of a world, under every attack: one table."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress, TimeElapsedColumn

from ..errors import ConfigError
from ._common import console, print_json, resumable

# the goals, judged under the table when both methods are in it (METHOD<OTHER[@ATTACK], see compare.Goal)
GOALS = ("rece<uce", "ace<uce", "ace<rece@soft_prompt")


def compare(
    out: Path = typer.Option(Path("out/compare"), "--out", "-o", help="Folder of the comparison (resumable)."),
    world: str = typer.Option(
        "embedded", "--model", "--world", help="The world: its pipeline, judge, concepts and scenarios."
    ),
    methods_: list[str] = typer.Option(
        [], "--methods", help="Methods, comma-separated or repeated: uce,rece,esd-x,rece:epochs=5 (default: all)."
    ),
    scenarios: list[str] = typer.Option(
        [],
        "--scenarios",
        help="The world's scenarios (embedded: style, object, unsafe, multi10) or any of its concepts, "
        "comma-separated (default: the world's scenarios).",
    ),
    quick: bool = typer.Option(
        False, "--quick", help="Each attack's quick tier, 8 prompts per set, 1 attack seed; marked in every output."
    ),
    n_prompts: int | None = typer.Option(
        None, "--n-prompts", help="Test prompts per set and per attack (default: 32; with --quick 8)."
    ),
    attack_seeds: int | None = typer.Option(
        None, "--attack-seeds", help="Seeds per attack (default: 3; with --quick 1)."
    ),
    budget: int | None = typer.Option(
        None, help="Steps of the attacks that take a budget (default: each attack's full strength or quick tier)."
    ),
    attacks: list[str] = typer.Option([], "--attacks", help="Attacks, comma-separated (default: every attack)."),
    only: list[str] = typer.Option([], "--only", help="Compute only rows matching METHOD/SCENARIO: 'esd-*/style'."),
    goals: list[str] = typer.Option(
        list(GOALS),
        "--goal",
        help="A verdict under the table: METHOD<OTHER (every attack, no specificity lost) or "
        "METHOD<OTHER@ATTACK; met only where the 95% intervals do not overlap; repeatable.",
    ),
    protocol: str | None = typer.Option(
        None, "--protocol", help="A paper protocol on a real model (--model PATH): rece-paper runs RECE's Tables 1-4."
    ),
    device: str | None = typer.Option(None, help="With --protocol: cuda, cuda:1, cpu (default: cuda if present)."),
    dtype: str | None = typer.Option(
        None,
        help="With --protocol: float32, float16 (fp16) or bfloat16 (bf16); half precision on a GPU only.",
    ),
    num_processes: int = typer.Option(1, "--num-processes", help="With --protocol: GPUs to shard images over."),
    steps: int | None = typer.Option(None, help="With --protocol: sampling steps (default: the paper's, 100)."),
    resolution: int | None = typer.Option(None, help="With --protocol: image size (default: the paper's, 512)."),
    threads: int | None = typer.Option(None, help="Torch threads (default: torch's)."),
    as_json: bool = typer.Option(False, "--json", help="Print compare.json on stdout."),
) -> None:
    """Every method on every kind of concept of a world, under every attack: one table.

    Full strength by default (32 test prompts per set, every attack at its paper's budget, 3 seeds); --quick for a
    smoke run. Writes OUT/compare.md, OUT/compare.json and OUT/report.html, every rate with its 95% interval and
    sample size; a killed run resumes where it stopped. Full strength over every method is a GPU job (about 1900
    CPU hours on 2 cores); start with:

      erasekit compare --quick --methods uce,rece --scenarios style -o out/q
    """
    import torch

    from ..evaluate import compare as comparison
    from ..evaluate.compare.report import summary_line

    specs = [s for text in methods_ for s in comparison.split_specs(text)] or comparison.default_methods()
    if threads:
        torch.set_num_threads(threads)
    world_only = {"--scenarios": scenarios, "--quick": quick, "--attack-seeds": attack_seeds, "--attacks": attacks,
                  "--only": only}  # fmt: skip
    paper_only = {"--device": device, "--dtype": dtype, "--num-processes": num_processes != 1, "--steps": steps,
                  "--resolution": resolution}  # fmt: skip
    given = [flag for flag, v in (world_only if protocol else paper_only).items() if v]
    if given:
        raise ConfigError(
            f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} not taken "
            + ("with --protocol (a paper's tables fix their prompts and attacks): drop it." if protocol else
               "without --protocol (they set a paper run on a real model): add --protocol rece-paper --model PATH.")
        )  # fmt: skip
    if protocol is not None:
        paper = comparison.PaperSettings(n_prompts=n_prompts, steps=steps, resolution=resolution, budget=budget)
        _paper(protocol, world, out, specs, paper, device, dtype, num_processes, as_json)
        return
    names = [s.strip() for text in scenarios for s in text.split(",") if s.strip()]
    names = names or comparison.default_scenarios(world)
    wanted = [comparison.Goal.parse(g) for g in goals]
    chosen = [a.strip() for text in attacks for a in text.split(",") if a.strip()]
    given = {"n_prompts": n_prompts, "attack_seeds": attack_seeds, "budget": budget, "attacks": tuple(chosen) or None}
    settings = comparison.Settings.tier(quick=quick, **given)  # defaults: the tier's
    options = [("--n-prompts", n_prompts), ("--attack-seeds", attack_seeds), ("--budget", budget)]
    command = shlex.join(["erasekit", "compare", "--model", world, "--methods", ",".join(specs),
                          "--scenarios", ",".join(names), *(["--quick"] if quick else []),
                          *[x for flag, v in options if v is not None for x in (flag, str(v))],
                          *(["--attacks", ",".join(chosen)] if chosen else []),
                          *([x for g in goals for x in ("--goal", g)] if list(goals) != list(GOALS) else []),
                          *(["--threads", str(threads)] if threads else []), "-o", str(out)])  # fmt: skip
    columns = (*Progress.get_default_columns(), TimeElapsedColumn())
    with resumable("Finished rows are kept"), Progress(*columns, console=console) as bar:
        task = bar.add_task("compare", total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what)

        def on_row(row: dict[str, Any]) -> None:
            bar.console.print(summary_line(row, settings.attacks))

        comparison.run(out=out, methods=specs, scenarios=names, settings=settings, world=world, only=only,
                       command=command, goals=wanted, progress=progress, on_row=on_row)  # fmt: skip
    if as_json:
        print_json(json.loads((out / "compare.json").read_text()))
    else:
        console.print(f"-> {out / 'compare.md'}, {out / 'report.html'}")


def _paper(name: str, model: str, out: Path, specs: list[str], settings: Any, device: str | None, dtype: str | None,
           num_processes: int, as_json: bool) -> None:  # fmt: skip
    """``compare --protocol NAME --model PATH``: a paper's tables on a real model (``compare.run_paper``)."""
    import sys

    import torch

    from ..evaluate import compare as comparison
    from ..worlds import find

    paper = comparison.load_paper(name)
    comparison.check_real_model(model, find(model))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    comparison.check_device(device, num_processes, dtype, cuda=torch.cuda.is_available())
    with resumable("Finished rows are kept"):
        comparison.run_paper(paper, model=model, out=out, methods=specs, settings=settings, device=device,
                             dtype=dtype, num_processes=num_processes, command=shlex.join(["erasekit", *sys.argv[1:]]),
                             progress=lambda what: console.print(what))  # fmt: skip
    if as_json:
        print_json(json.loads((out / "compare.json").read_text()))
    else:
        console.print(f"-> {out / 'compare.md'}")
