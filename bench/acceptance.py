"""Methods under attack on a world, one concept per row: ``erasekit compare`` with concepts as scenarios.

For each concept and method: erase it (keeping half of the other concepts of its kind; each method with
the settings it declares for the concept's kind, e.g. RECE the paper's), score the edit on the test split
of the concept's prompt suite (judge detection rate on target prompts = efficacy, on held-out
descriptions = generality, accuracy on the preserved concepts = specificity_kept and on concepts no
method was given = specificity_unseen, MACE's H_o), then run every attack on the test target prompts and
report its attack success rate (UnlearnDiff's definition), each rate with its 95% Wilson interval and n.
Lower detection and ASR are better; higher specificity is better. All of it is
:mod:`erasekit.evaluate.compare`; rows are kept in ``--out`` and a re-run resumes.

    python bench/acceptance.py --threads 2 --concepts "van gogh" nudity --quick
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import pin_threads

from erasekit.cli.compare import GOALS
from erasekit.evaluate import compare
from erasekit.io import atomic_write
from erasekit.worlds import DEFAULT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--world", default=DEFAULT, help="the world whose concepts, judge and pipeline are used")
    parser.add_argument("--concepts", nargs="+", default=["van gogh", "nudity"])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["uce", "rece", "nullspace"],
        help="NAME or NAME:key=value,... (e.g. rece:epochs=5, rece:settings=nudity, esd-x)",
    )
    parser.add_argument("--quick", action="store_true", help="each attack's quick tier, 8 prompts, 1 attack seed")
    parser.add_argument("--n-prompts", type=int, help="test prompts per set (default: 32, quick 8)")
    parser.add_argument("--budget", type=int, help="steps of the attacks with a budget (default: theirs)")
    parser.add_argument("--out", "-o", type=Path, default=Path("out/acceptance"), help="rows, edits and images")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    pin_threads(args.threads)
    settings = compare.Settings.tier(quick=args.quick, n_prompts=args.n_prompts, budget=args.budget)
    goals = [compare.Goal.parse(g) for g in GOALS]
    rows = compare.run(
        out=args.out,
        methods=args.methods,
        scenarios=args.concepts,
        settings=settings,
        world=args.world,
        goals=goals,
        on_row=lambda row: print(json.dumps({k: v for k, v in row.items() if k != "thumbs"}), flush=True),
    )
    print()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(compare.markdown(rows, settings, goals=goals))
    if args.json:
        atomic_write(args.json, json.dumps([{k: v for k, v in r.items() if k != "thumbs"} for r in rows], indent=2))


if __name__ == "__main__":
    main()
