"""ACE's time per concept on the embedded world: one concept, and ten erased by one edit.

The abstract promises "a few seconds of adaptation per concept"; the goal here is ≤ 5 s for one
concept and ≤ 60 s for ten, on two cores. Each case prints the median and min of ``--repeats``
runs after one warm-up run. The warm-up also fills the per-encoder cache of the gate's neutral
captions (``methods/ace/prompts.py``), which a process pays once: its time is printed apart, and so is a second
first call as a new process makes it, the captions read back from the disk cache (``erasekit.state_cache``).
``--parts`` also times one more one-concept run part by part (each part wrapped; a part that calls
another, or a backward pass inside a part, is counted in both). ``--variant contexts=64,gate_steps=120``
(repeatable) times one concept under other settings, each repeat running the yardstick, the defaults and
every variant back to back; a variant's ``x_default`` is the median of its per-repeat ratios to the
defaults' run of the same repeat: cuts of a tenth are within the machine's drift between repeats, not
within one.

The machine's speed drifts by a quarter within a session, so the seconds of two sessions do not compare.
Each ACE run follows a run of a **yardstick**, a fixed workload of what ACE's time is made of (the text
encoder on 256 captions, 15 forward and backward passes of the U-Net on 4 latents; no ACE code), and the
table gives ACE's time as a multiple of it (``x_yardstick``, the median of the pairs' ratios): that ratio
moves with the code, not with the machine.

The one-concept row is van gogh's, the cheapest concept at the defaults: it mines no word against its preserve set,
and the stopping rule ends early. ``--each`` times other concepts alone, each with the preserve set ``erasekit
compare`` gives it and ACE's defaults (what ``erasekit erase C --method ace`` runs), one row each: mined words add
target rows and gate captions, and the rounds run until the held-out criterion stops rising. With ``--settings kind``
each runs under what compare runs for its kind (objects and styles alone ungated, nudity under ``unsafe``). With
``--each multi10`` (a scenario of several concepts) times its one edit as compare's full tier makes it: the
concepts together, their kinds and the preserved concepts' fit prompts. With
``--cli`` each run is a new ``erasekit erase`` process, as a user's commands are: the table gives the process's seconds
and the method's (``edit_s``, what the command prints), the neutral captions read back from the disk cache. ACE
encodes the concept's prompts in bf16 where the CPU multiplies it (``encode_dtype="auto"``): ``--set
encode_dtype=float32`` times a CPU without bf16 on this one (the yardstick's encoder stays float32 either way).

    python bench/ace_speed.py --threads 2 --repeats 3 [--parts]
    python bench/ace_speed.py --threads 2 --repeats 3 --each church parachute "van gogh" picasso nudity red
    python bench/ace_speed.py --threads 2 --repeats 3 --settings kind --each church parachute "van gogh" picasso nudity
    python bench/ace_speed.py --threads 2 --repeats 3 --settings kind --each multi10
    python bench/ace_speed.py --threads 2 --repeats 7 --variant patience=2 --variant contexts=64,gate_steps=120
    python bench/ace_speed.py --threads 2 --repeats 3 --settings defaults --each church --cli
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest.mock import patch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from bench._timing import ace_settings, pin_threads, print_table, timed

import erasekit
from erasekit.diffusion import predict
from erasekit.evaluate import compare
from erasekit.io import parse_assignments
from erasekit.methods.ace import adversaries, prompts, stopping, train
from erasekit.methods.ace.neutral import neutral_captions
from erasekit.methods.frozen import frozen
from erasekit.text import TextEncoder
from erasekit.worlds import embedded

TEN = ["church", "parachute", "garbage truck", "tench", "van gogh", "picasso", "monet", "red", "green", "nudity"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], help="ACE settings, e.g. epochs=10")
    parser.add_argument("--parts", action="store_true", help="also time one one-concept run part by part")
    parser.add_argument("--variant", action="append", default=[], help="other settings for one concept, k=v,k=v")
    parser.add_argument("--each", nargs="+", default=[], help="time these concepts alone, compare's preserve sets")
    parser.add_argument("--cli", action="store_true", help="with --each: each run a new `erasekit erase` process")
    parser.add_argument(
        "--settings",
        default="defaults",
        help="with --each: ACE's named settings, 'kind' (what compare runs for each concept's kind) or 'defaults'",
    )
    args = parser.parse_args()
    pin_threads(args.threads)
    overrides = parse_assignments(args.set)
    pipe = erasekit.load_pipeline("embedded")
    styles = [c for c in embedded.concepts()["style"] if c != "van gogh"][::2]
    if args.variant:
        compare_variants(pipe, styles, args, overrides)
        return
    if args.each and args.cli:
        each_process(pipe, args, overrides)
        return
    if args.each:
        each_concept(pipe, args, overrides)
        return

    first = first_calls(pipe, styles, overrides)
    rows = []
    for concepts in (["van gogh"], TEN):
        preserve = [] if len(concepts) > 1 else styles

        def run(concepts: list[str] = concepts, preserve: list[str] = preserve) -> erasekit.Edit:
            return erasekit.erase(pipe, concepts, "ace", preserve=preserve, **overrides)

        # each ACE run right after a yardstick run, so that the pair sees the machine in the same state
        seconds, sticks = [], []
        for _ in range(args.repeats):
            sticks.append(timed(lambda: yardstick(pipe), repeats=1, warmup=0)[0])
            took, _, edit = timed(run, repeats=1, warmup=0)
            seconds.append(took)
        rows.append(
            {
                "concepts": len(concepts),
                "median_s": statistics.median(seconds),
                "min_s": min(seconds),
                "yardstick_s": statistics.median(sticks),
                "x_yardstick": statistics.median(a / b for a, b in zip(seconds, sticks)),
                "rounds": edit.info["rounds"],
                "n": args.repeats,
            }
        )
    print(
        f"first call: {first[0]:.1f} s, the neutral captions encoded and stored; a new process's (the disk cache "
        f"warm): {first[1]:.1f} s"
    )
    print_table(rows)
    if args.parts:
        with _parts() as seconds:
            start = time.perf_counter()
            erasekit.erase(pipe, ["van gogh"], "ace", preserve=styles, **overrides)
            seconds["total"] = time.perf_counter() - start
        print_table([{"part": name, "s": t} for name, t in sorted(seconds.items(), key=lambda kv: -kv[1])])


def first_calls(pipe: Any, styles: list[str], overrides: dict[str, str]) -> tuple[float, float]:
    """Seconds of the one-concept row's first call with nothing cached, then as a new process makes it: the
    neutral captions read back from disk (``erasekit.state_cache``). A fresh cache folder, removed after."""
    seconds = []
    with tempfile.TemporaryDirectory() as folder, patch.dict(os.environ, {"ERASEKIT_CACHE": folder}):
        for _ in range(2):
            prompts._NEUTRAL_STATES.clear()  # what a new process starts without
            start = time.perf_counter()
            erasekit.erase(pipe, ["van gogh"], "ace", preserve=styles, **overrides)
            seconds.append(time.perf_counter() - start)
    return seconds[0], seconds[1]


def compare_variants(pipe: Any, styles: list[str], args: argparse.Namespace, overrides: dict[str, str]) -> None:
    """One concept under the defaults (with ``--set``) and each ``--variant``, interleaved (module docstring)."""
    settings = {"defaults": overrides} | {v: overrides | parse_assignments(v.split(",")) for v in args.variant}

    def run(setting: dict[str, str]) -> erasekit.Edit:
        return erasekit.erase(pipe, ["van gogh"], "ace", preserve=styles, **setting)

    for setting in settings.values():  # warm-up: the neutral captions' cache, and each setting's first call
        run(setting)
    seconds: dict[str, list[float]] = defaultdict(list)
    rounds: dict[str, int] = {}
    for _ in range(args.repeats):
        seconds["yardstick"].append(timed(lambda: yardstick(pipe), repeats=1, warmup=0)[0])
        for name, setting in settings.items():
            took, _, edit = timed(lambda setting=setting: run(setting), repeats=1, warmup=0)
            seconds[name].append(took)
            rounds[name] = edit.info["rounds"]
    rows = [
        {
            "setting": name,
            "median_s": statistics.median(seconds[name]),
            "x_yardstick": statistics.median(a / b for a, b in zip(seconds[name], seconds["yardstick"])),
            "x_default": statistics.median(a / b for a, b in zip(seconds[name], seconds["defaults"])),
            "rounds": rounds[name],
            "n": args.repeats,
        }
        for name in settings
    ]
    print_table(rows)


def each_concept(pipe: Any, args: argparse.Namespace, overrides: dict[str, str]) -> None:
    """Each of ``--each`` alone, with compare's preserve set, each run after a yardstick run (module docstring)."""
    erasekit.erase(pipe, ["van gogh"], "ace", **overrides)  # warm-up: the neutral captions' cache
    rows = []
    for concept in args.each:
        scenario = compare.scenario(concept)
        settings = ace_settings(args.settings, scenario.kind)
        concepts = list(scenario.concepts)
        # one concept as `erasekit erase C --preserve ...` erases it, with compare's preserve set alone; a scenario of
        # several (multi10) as compare's full tier does
        if len(concepts) == 1:
            given = {"preserve": compare.preserve_set(scenario)}
        else:
            given = compare.erase_inputs(scenario, compare.Settings.tier(quick=False).tuning_prompts)
        named = {**given, **({"settings": settings} if settings else {})}
        seconds, sticks = [], []
        for _ in range(args.repeats):
            sticks.append(timed(lambda: yardstick(pipe), repeats=1, warmup=0)[0])
            took, _, edit = timed(
                lambda c=concepts, n=named: erasekit.erase(pipe, c, "ace", **n, **overrides), repeats=1, warmup=0
            )
            seconds.append(took)
        rows.append(
            {
                "concept": concept,
                "concepts": len(concepts),
                "settings": settings or "defaults",
                "preserve": len(given["preserve"]),
                "mined": len(edit.info.get("mined_words") or []),
                "rounds": edit.info["rounds"],
                "median_s": statistics.median(seconds),
                "x_yardstick": statistics.median(a / b for a, b in zip(seconds, sticks)),
                "n": args.repeats,
            }
        )
    print_table(rows)
    medians = sorted(r["median_s"] for r in rows if r["concepts"] == 1)
    if medians:
        print(f"one concept alone: {medians[0]:.1f}-{medians[-1]:.1f} s, median {statistics.median(medians):.1f} s")


def each_process(pipe: Any, args: argparse.Namespace, overrides: dict[str, str]) -> None:
    """Each of ``--each`` as a user's command erases it: a new ``erasekit erase`` process a run (the neutral captions
    read back from the disk cache, which a first untimed run fills), each after a yardstick run in this process. The
    process's wall time and the method's own (``edit_s``, what the command prints)."""
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as folder:
        for concept in args.each:
            scenario = compare.scenario(concept)
            if len(scenario.concepts) > 1:
                raise SystemExit(f"--cli erases one concept a process; time {concept} without --cli.")
            settings = ace_settings(args.settings, scenario.kind)
            out = Path(folder) / "edit.safetensors"
            command = [
                str(Path(sys.executable).with_name("erasekit")),
                "erase",
                concept,
                "--method",
                "ace",
                "-o",
                str(out),
            ]
            command += [x for c in compare.preserve_set(scenario) for x in ("--preserve", c)]
            command += ["--settings", settings] if settings else []
            command += [x for k, v in overrides.items() for x in ("--set", f"{k}={v}")]
            walls, methods, sticks = [], [], []
            for run in range(args.repeats + 1):  # the first fills the disk cache, untimed
                if run:
                    sticks.append(timed(lambda: yardstick(pipe), repeats=1, warmup=0)[0])
                start = time.perf_counter()
                subprocess.run([*command, "--overwrite"], check=True, env=env, capture_output=True)
                if run:
                    walls.append(time.perf_counter() - start)
                    methods.append(erasekit.Edit.load(out).info["edit_s"])
            rows.append(
                {
                    "concept": concept,
                    "settings": settings or "defaults",
                    "process_s": statistics.median(walls),
                    "erase_s": statistics.median(methods),
                    "x_yardstick": statistics.median(a / b for a, b in zip(methods, sticks)),
                    "n": args.repeats,
                }
            )
    print_table(rows)


def yardstick(pipe: Any) -> None:
    """The fixed workload ACE's time is measured against (module docstring), on a fresh encoder (no cache)."""
    encoder = TextEncoder(pipe)
    encoder(neutral_captions(256, seed=0))
    unet, gen = pipe.unet, torch.Generator().manual_seed(0)
    size = unet.config.sample_size
    x = torch.randn(4, unet.config.in_channels, size, size, generator=gen)
    t = torch.randint(1000, (4,), generator=gen)
    states = encoder(["a photo"] * 4).states
    with frozen(unet):
        for _ in range(15):  # ACE's rounds at the defaults: 15 on van gogh
            states.requires_grad_()
            predict(unet, x, t, states).square().mean().backward()
            states = states.detach()


PARTS = {  # (owner, attribute) -> label: train_ace's steps, the rounds' U-Net passes, the stopping rule
    **{(train, name): name for name in ("mine_words", "token_rows", "gate_tokens", "concept_subspace", "fit_gate")},
    (train, "reduced_rank_ridge"): "reduced_rank_ridge",
    (adversaries._Denoiser, "__init__"): "original's latents",
    (adversaries._Denoiser, "goal"): "original's goals",
    (adversaries._Denoiser, "loss"): "rounds' U-Net forward",
    (stopping.HeldOutStop, "done"): "stopping rule",
    (torch.Tensor, "backward"): "backward passes (outer steps, gate fit)",
    (torch.autograd, "grad"): "backward passes (adversaries, stopping rule)",
}


@contextmanager
def _parts() -> Iterator[dict[str, float]]:
    """Seconds spent in each of PARTS while the block runs (the originals are put back after)."""
    seconds: dict[str, float] = defaultdict(float)
    originals = {key: getattr(*key) for key in PARTS}

    def wrapped(fn: Any, label: str) -> Any:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[label] += time.perf_counter() - start

        return run

    for (owner, name), label in PARTS.items():
        setattr(owner, name, wrapped(originals[owner, name], label))
    try:
        yield seconds
    finally:
        for (owner, name), fn in originals.items():
            setattr(owner, name, fn)


if __name__ == "__main__":
    main()
