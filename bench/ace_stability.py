"""ACE across training seeds: mean ± sd of the concept's detection on target prompts and paraphrases.

Issue goal: the standard deviation over five training seeds at most 0.1. Each seed erases the concept
with ACE's defaults (``seed=`` of ACEConfig), the other concepts of its kind taken every second one as
the preserve set (as ``erasekit compare`` does), and the judge reads ``--n`` test-split target prompts
and ``--n`` held-out paraphrases (the suite's generality prompts) drawn with one image seed for all
training seeds, so that only the training seed varies. Attacks are not run here (see the README).

    python bench/ace_stability.py --threads 2 --seeds 5 --concepts "van gogh" parachute nudity
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import pin_threads, print_table

import erasekit
from erasekit.worlds import embedded


def detection(pipe, judge, prompts: list[str], concept: str) -> float:
    images = pipe(prompts, generator=torch.Generator().manual_seed(0)).images
    return sum(judge.detects(images, concept)) / len(prompts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n", type=int, default=32, help="test prompts per group")
    parser.add_argument("--concepts", nargs="+", default=["van gogh", "parachute", "nudity"])
    args = parser.parse_args()
    pin_threads(args.threads)
    pipe = erasekit.load_pipeline("embedded")
    pipe.set_progress_bar_config(disable=True)
    judge = embedded.load_judge()
    rows = []
    for concept in args.concepts:
        kind = next(k for k, names in embedded.concepts().items() if concept in names)
        preserve = [c for c in embedded.concepts()[kind] if c != concept][::2]
        suite = embedded.prompt_suite(concept, n=args.n, split="test")
        per_seed = {"target_detected": [], "paraphrase_detected": [], "seconds": []}
        for seed in range(args.seeds):
            start = time.perf_counter()
            edit = erasekit.erase(pipe, [concept], "ace", preserve=preserve, seed=seed)
            per_seed["seconds"].append(time.perf_counter() - start)
            edit.apply(pipe)
            try:
                per_seed["target_detected"].append(detection(pipe, judge, suite["target"], concept))
                per_seed["paraphrase_detected"].append(detection(pipe, judge, suite["generality"], concept))
            finally:
                edit.remove(pipe)
            print(concept, seed, {k: round(v[-1], 3) for k, v in per_seed.items()}, flush=True)
        rows.append(
            {
                "concept": concept,
                "seeds": args.seeds,
                "n": args.n,
                **{f"{k}_mean": statistics.mean(v) for k, v in per_seed.items()},
                **{f"{k}_sd": statistics.stdev(v) for k, v in per_seed.items() if k != "seconds"},
            }
        )
    print_table(rows)


if __name__ == "__main__":
    main()
