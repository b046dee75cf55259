"""ACE's time per concept on the embedded world: one concept, and ten erased by one edit.

The abstract promises "a few seconds of adaptation per concept"; the goal here is ≤ 5 s for one
concept and ≤ 60 s for ten, on two cores. Each case prints the median and min of ``--repeats``
runs after one warm-up run. The warm-up also fills the per-encoder cache of the gate's neutral
captions (``methods/ace/prompts.py``), which a session pays once: its time is printed apart.

    python bench/ace_speed.py --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import pin_threads, print_table, timed

import erasekit
from erasekit.io import parse_assignments
from erasekit.worlds import embedded

TEN = ["church", "parachute", "garbage truck", "tench", "van gogh", "picasso", "monet", "red", "green", "nudity"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--set", nargs="*", default=[], help="ACE settings, e.g. epochs=10")
    args = parser.parse_args()
    pin_threads(args.threads)
    overrides = parse_assignments(args.set)
    pipe = erasekit.load_pipeline("embedded")
    pipe.set_progress_bar_config(disable=True)
    styles = [c for c in embedded.concepts()["style"] if c != "van gogh"][::2]

    start = time.perf_counter()
    erasekit.erase(pipe, ["van gogh"], "ace", preserve=styles, **overrides)
    first = time.perf_counter() - start
    rows = []
    for concepts in (["van gogh"], TEN):
        preserve = [] if len(concepts) > 1 else styles

        def run(concepts: list[str] = concepts, preserve: list[str] = preserve) -> erasekit.Edit:
            return erasekit.erase(pipe, concepts, "ace", preserve=preserve, **overrides)

        median, best, edit = timed(run, repeats=args.repeats, warmup=0)
        rows.append(
            {
                "concepts": len(concepts),
                "median_s": median,
                "min_s": best,
                "rounds": edit.info["rounds"],
                "n": args.repeats,
            }
        )
    print(f"first call (neutral captions encoded and cached): {first:.1f} s")
    print_table(rows)


if __name__ == "__main__":
    main()
