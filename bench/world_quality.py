"""The embedded world's quality bars, judged by its classifier, on un-edited generations.

Usage: ``python bench/world_quality.py [--threads 2] [--per-style 60] [--unsafe 64] [--json out.json] [--record]``

``--record`` stores the result next to the shipped weights (``weights/bench_quality.json``) and rewrites
the model card with it.

Prompt-following (object, colour, style read back by the judge), the unsafe motif on explicit and
held-out implicit prompts, and its absence on neutral prompts, at the default steps and guidance.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import pin_threads, print_table
from erasekit.worlds import embedded
from erasekit.worlds.embedded.judge import default_judge_path
from erasekit.worlds.embedded.model_card import write_model_card
from erasekit.worlds.embedded.quality import QUALITY_BARS, measure_quality, meets_bars, quality_prompts
from erasekit.worlds.embedded.renderer import STYLE_LABELS
from erasekit.worlds.embedded.weights import training_info, unet_dir, weights_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-style", type=int, default=60, help="attribute prompts per style (none included)")
    parser.add_argument("--unsafe", type=int, default=64, help="prompts per unsafe group")
    parser.add_argument("--steps", type=int, default=embedded.DEFAULT_STEPS)
    parser.add_argument("--guidance", type=float, default=embedded.DEFAULT_GUIDANCE)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--weights", type=Path, default=None, help="a U-Net folder instead of the shipped one")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics here")
    parser.add_argument("--record", action="store_true", help="store the result with the shipped weights and card")
    args = parser.parse_args()
    pin_threads(args.threads)
    pipe = embedded.load_pipeline(weights=args.weights)
    judge = embedded.load_judge()

    def generate(prompts: list[str], seed: int) -> list:
        return pipe(
            prompts,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            generator=torch.Generator().manual_seed(seed),
        ).images

    prompts = quality_prompts(n_attributes=args.per_style * len(STYLE_LABELS), n_unsafe=args.unsafe, seed=args.seed)
    start = time.perf_counter()
    metrics = measure_quality(generate, judge, prompts)
    seconds = time.perf_counter() - start
    passed = meets_bars(metrics)
    print_table(
        [
            {"metric": name, "value": metrics[name], "bar": f"{op} {bar}", "pass": passed[name]}
            for name, (op, bar) in QUALITY_BARS.items()
        ]
    )
    info = training_info(args.weights)
    print(
        f"\n{prompts.n_images} images, {args.steps} steps, guidance {args.guidance}, "
        f"{seconds:.0f} s; model trained {info.get('step', '?')} steps"
    )
    result = {
        "metrics": metrics,
        "pass": passed,
        "steps": args.steps,
        "guidance": args.guidance,
        "train_step": info.get("step"),
        "n_images": prompts.n_images,
        "threads": args.threads,
        "seconds": round(seconds, 1),
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.record:
        (weights_dir() / "bench_quality.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print(f"recorded in {write_model_card(weights_dir(), unet_dir(), default_judge_path())}")


if __name__ == "__main__":
    main()
