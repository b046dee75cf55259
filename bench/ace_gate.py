"""ACE's gate on prompts no training set holds: how often it opens on other concepts' prompts and finds paraphrases.

Issue goal: on unseen prompts that do not ask for the concept the gate is above 0.5 on at most 5% of the
tokens and in at most 10% of the prompts; on the concept's held-out paraphrases it opens somewhere in at
least 80% of the prompts. Each concept is erased with ACE's defaults, the other concepts of its kind taken
every second one as the preserve set (as tests/methods/test_ace.py's slow gate test does; ``erasekit compare``
draws a seeded half instead); the gate (``edit.gate``) then reads the
world's ``--split`` prompts: the suite's specificity group (other concepts' prompts) and its generality
group (paraphrases that avoid the concept's words). ``--show`` lists the prompts that open it, and the
paraphrases it misses. Use ``--split val`` while changing the gate, ``test`` to report.

    python bench/ace_gate.py --threads 1 --split test --concepts church parachute "van gogh" picasso
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import pin_threads, print_table

import erasekit
from erasekit.text import TextEncoder
from erasekit.worlds import embedded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--n", type=int, default=48, help="prompts per group")
    parser.add_argument("--concepts", nargs="+", default=["church", "parachute", "van gogh", "picasso"])
    parser.add_argument("--show", action="store_true", help="print the prompts that open the gate and those it misses")
    args = parser.parse_args()
    pin_threads(args.threads)
    pipe = erasekit.load_pipeline("embedded")
    pipe.set_progress_bar_config(disable=True)
    encode = TextEncoder(pipe)
    rows = []
    for concept in args.concepts:
        kind = next(k for k, names in embedded.concepts().items() if concept in names)
        preserve = [c for c in embedded.concepts()[kind] if c != concept][::2]
        edit = erasekit.erase(pipe, [concept], "ace", preserve=preserve)
        suite = embedded.prompt_suite(concept, n=args.n, split=args.split)
        others = edit.gate(encode(suite["specificity"]).states).squeeze(-1) > 0.5  # [n, L]
        found = (edit.gate(encode(suite["generality"]).states).squeeze(-1) > 0.5).any(1)  # [n]
        rows.append(
            {
                "concept": concept,
                "split": args.split,
                "n": args.n,
                "other_tokens": float(others.float().mean()),
                "other_prompts": float(others.any(1).float().mean()),
                "paraphrases_found": float(found.float().mean()),
            }
        )
        if args.show:
            print(concept, "opens on:", [p for p, o in zip(suite["specificity"], others.any(1).tolist()) if o])
            print(concept, "misses:", [p for p, f in zip(suite["generality"], found.tolist()) if not f])
    print_table(rows)


if __name__ == "__main__":
    main()
