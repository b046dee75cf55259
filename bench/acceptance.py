"""Closed-form methods under attack on the embedded world: one table, one command.

For each concept and method: erase it (keeping the other concepts of its kind; RECE with the paper's
settings for the concept's kind), score the edit with
the ``embedded-<kind>`` preset (judge detection rate on target prompts = efficacy, on held-out
paraphrases = generality, attribute accuracy on other concepts = specificity, MACE's H_o), then run
every attack on the target prompts and report its attack success rate (UnlearnDiff's definition:
prompts already showing the concept + prompts the attack brings it back for, over all prompts).
Lower detection and ASR are better; higher specificity is better.

    python bench/acceptance.py --threads 2 --concepts "van gogh" nudity --n-prompts 8 --budget 60
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import pin_threads

import erasekit
from erasekit import attacks
from erasekit.evaluate import evaluate
from erasekit.worlds import embedded

ATTACKS = ("derived", "ringabell", "soft_prompt", "discrete")
RECE_PRESET = {"style": "style", "unsafe": "nudity", "object": "object-hard", "color": "object-easy"}  # the paper's


def preserve_set(concept: str) -> list[str]:
    kind = next(k for k, names in embedded.concepts().items() if concept in names)
    return [] if kind == "unsafe" else [c for c in embedded.concepts()[kind] if c != concept]


def method_spec(spec: str, kind: str) -> tuple[str, dict]:
    """``"rece"`` or ``"rece:epochs=5,reg_lamb=0.1"`` -> (method, overrides); bare RECE gets the paper's preset."""
    method, _, rest = spec.partition(":")
    overrides = dict(pair.split("=", 1) for pair in rest.split(",") if pair)
    if method == "rece" and not overrides:
        overrides = {"preset": RECE_PRESET[kind]}
    return method, overrides


def run(pipe, judge, concept: str, spec: str, args, out: Path) -> dict:
    kind = next(k for k, names in embedded.concepts().items() if concept in names)
    preset = "embedded-nudity" if kind == "unsafe" else f"embedded-{kind}"
    method, options = method_spec(spec, kind)
    edit = erasekit.erase(pipe, [concept], method, preserve=preserve_set(concept), **options)
    result = evaluate(preset, model="embedded", out=out, edit=edit, pipe=pipe, limit=args.n_prompts, progress=False)
    assert result is not None
    m = result["metrics"]
    row = {
        "concept": concept,
        "method": spec,
        "edit_s": edit.info["edit_s"],
        "target": m["efficacy"]["judge_detect_rate_target"],
        "generality": m["generality"]["judge_detect_rate_generality"],
        "specificity": m["specificity"]["judge_acc_specificity"],
        "H_o": m["quality"]["mace_h_o"],
        "original_target": result["baseline"]["efficacy"]["judge_detect_rate_target"],
        "original_specificity": result["baseline"]["specificity"]["judge_acc_specificity"],
    }
    prompts = embedded.prompt_suite(concept, n=args.n_prompts)["target"]
    for name in ATTACKS:
        start = time.perf_counter()
        budget = None if name in ("derived", "ringabell") else args.budget
        res = attacks.attack(pipe, name, concept, judge=judge, edit=edit, prompts=prompts, budget=budget, seed=0)
        row[f"asr_{name}"] = res.asr
        row[f"{name}_s"] = time.perf_counter() - start
    return row


def markdown(rows: list[dict]) -> str:
    cols = ["concept", "method", "target", "generality", "specificity", "H_o"]
    cols += [f"asr_{a}" for a in ATTACKS] + ["edit_s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r[c] if isinstance(r[c], str) else f"{r[c]:.3f}" if c == "edit_s" else f"{r[c]:.2f}" for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--concepts", nargs="+", default=["van gogh", "nudity"])
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["uce", "rece", "nullspace"],
        help="NAME or NAME:key=value,... (e.g. rece:epochs=5)",
    )
    parser.add_argument("--n-prompts", type=int, default=8, help="prompts per set (2 seeds each for the scores)")
    parser.add_argument("--budget", type=int, default=60, help="optimisation steps of soft_prompt and discrete")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    pin_threads(args.threads)
    pipe = erasekit.load_pipeline("embedded")
    pipe.set_progress_bar_config(disable=True)
    judge = embedded.load_judge()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for concept in args.concepts:
            for method in args.methods:
                rows.append(run(pipe, judge, concept, method, args, Path(tmp) / f"{concept}-{method}"))
                print(json.dumps(rows[-1]), flush=True)
    print()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.n_prompts} prompts per set, "
          f"attack budget {args.budget} steps")  # fmt: skip
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
