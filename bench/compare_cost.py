"""Where the time of a full-strength ``erasekit compare`` goes on this machine, and what it adds up to.

Measured on the embedded world against a RECE edit of van gogh (no target prompt shows the style before
the attack, so every case is attacked), at small budgets, then scaled to the full ones:

- each attack's seconds per case at its full budget (prefix searches: per update, all ``--cases`` cases
  searched at once; the same cases attacked one at a time, in the same run, give the ratio that batching
  buys); soft_prompt and Ring-A-Bell's genetic search from two budgets, so their fixed costs drop out;
- the seconds per image of the evaluation.

The projection assumes the worst case a robust method meets: every case runs its whole budget (an early
success stops a prefix search). It multiplies by what ``compare``'s defaults run: every registered method
and variant x the world's scenarios, 32 test prompts per set, 3 attack seeds, every attacked concept.

    python bench/compare_cost.py --threads 2 [--cases 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import torch

import erasekit
from _timing import pin_threads, print_table
from erasekit import attacks
from erasekit.evaluate.compare.rows import ATTACK_SEEDS, PROMPTS
from erasekit.evaluate.compare.run import default_methods
from erasekit.evaluate.compare.scenarios import named_scenarios, scored_sets
from erasekit.worlds import embedded
from erasekit.worlds.embedded.world import EmbeddedWorld

CONCEPT = "van gogh"


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cases", type=int, default=8, help="target prompts attacked at once")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    pin_threads(args.threads)

    pipe = erasekit.load_pipeline("embedded")
    judge = embedded.load_judge()
    world = EmbeddedWorld()
    kind = world.concept_kind(CONCEPT)
    prompts = [p for g, p, _ in world.suite_rows(CONCEPT, n=args.cases, split="test") if g == "target"]
    preserve = [c for c in embedded.concepts()[kind] if c != CONCEPT]
    edit = erasekit.erase(pipe, [CONCEPT], "rece", preserve=preserve, settings="reference-style")

    def run(name: str, cases: list[str], **overrides) -> None:
        attacks.attack(pipe, name, CONCEPT, judge=judge, edit=edit, prompts=cases, concept_kind=kind, **overrides)

    n = len(prompts)
    per_case: dict[str, float] = {}
    rows = []
    # prefix searches: 2 timesteps x 40 updates, all cases at once vs one at a time
    full = attacks.get("unlearndiff").make_config().steps
    small = 2 * attacks.get("unlearndiff").make_config().iterations
    together = seconds(lambda: run("unlearndiff", prompts, budget=small))
    alone = sum(seconds(lambda p=p: run("unlearndiff", [p], budget=small)) for p in prompts)
    for name in ("unlearndiff", "p4d"):
        per_case[name] = together / n / small * full
    rows.append({"part": f"prefix search, {small} updates x {n} cases", "together_s": together, "alone_s": alone,
                 "speedup": alone / together})  # fmt: skip
    # soft_prompt and the genetic search: the cost of one more step, from two budgets
    for name, lo, hi in (("soft_prompt", 5, 15), ("ringabell", 2, 6)):
        cases = prompts if name == "soft_prompt" else prompts[:2]
        t_lo, t_hi = (seconds(lambda b=b, a=name, c=cases: run(a, c, budget=b)) for b in (lo, hi))
        step = (t_hi - t_lo) / (hi - lo)
        fixed = t_lo - lo * step
        steps_full = attacks.get(name).make_config().steps
        # soft_prompt learns one prompt for a whole set of PROMPTS[0] test prompts: its cost is per set
        per_case[name] = (fixed + step * steps_full) / (PROMPTS[0] if name == "soft_prompt" else len(cases))
        rows.append({"part": f"{name}, per step", "together_s": step, "alone_s": fixed, "speedup": 0.0})
    for name in ("ringabell_embed", "derived", "derived_bounded"):
        per_case[name] = seconds(lambda name=name: run(name, prompts)) / n
    print_table(rows)

    # evaluation: images per row of each scenario (edited model; the original's images once per row today)
    t_img = seconds(lambda: pipe(prompts, generator=torch.Generator().manual_seed(0))) / n
    scenarios = named_scenarios(world.name)
    n_methods = len(default_methods())
    attacked = sum(len(sc.attacked) for sc in scenarios.values())
    attack_cases = n_methods * attacked * ATTACK_SEEDS[0] * PROMPTS[0]
    n_sets = sum(len(scored_sets(sc, PROMPTS[0])) for sc in scenarios.values())
    images = n_methods * n_sets * PROMPTS[0] * 2 * 2  # 2 image seeds, original + edited
    table = [{"attack": a, "s_per_case": s, "hours": s * attack_cases / 3600} for a, s in per_case.items()]
    # Ring-A-Bell's searches read the text encoder only: a comparison runs each once for all its rows
    table.append({"attack": "ringabell, searches shared by the rows", "s_per_case": per_case["ringabell"],
                  "hours": per_case["ringabell"] * attack_cases / n_methods / 3600})  # fmt: skip
    table.append({"attack": "evaluation images", "s_per_case": t_img, "hours": t_img * images / 3600})
    print()
    print(f"{n_methods} methods x {len(scenarios)} scenarios: {attack_cases} cases per attack, {images} images")
    print_table(table)
    total = sum(r["hours"] for r in table if r["attack"] != "ringabell")
    print(f"projected full comparison: {total:.0f} h on {args.threads} threads (every case at its whole budget)")
    if args.json:
        args.json.write_text(json.dumps({"batching": rows, "projection": table, "total_h": total,
                                         "methods": n_methods, "threads": args.threads}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
