"""Images per second of the embedded world at its default settings (batched, guidance included).

Usage: ``python bench/generate.py [--threads 2] [--batch 64] [--repeats 7]``

Uses the shipped weights; without them (before the first export) a randomly initialised U-Net of the
shipped shape, which costs the same. Prints one row per case: median and min seconds, images/s.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _timing import pin_threads, print_table, timed
from erasekit.errors import MissingWeightsError
from erasekit.worlds import embedded
from erasekit.worlds.embedded.model import build_unet, sampling_scheduler
from erasekit.worlds.embedded.text import load_text_encoder, load_tokenizer


def load(*, random_weights: bool) -> tuple[embedded.EmbeddedPipeline, str]:
    if not random_weights:
        try:
            return embedded.load_pipeline(), "shipped"
        except MissingWeightsError as err:
            logging.warning("%s: timing a random U-Net of the same shape instead", err)
    torch.manual_seed(0)
    pipe = embedded.EmbeddedPipeline(
        unet=build_unet(), scheduler=sampling_scheduler(), tokenizer=load_tokenizer(), text_encoder=load_text_encoder()
    )
    return pipe, "random"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=embedded.DEFAULT_STEPS)
    parser.add_argument("--guidance", type=float, default=embedded.DEFAULT_GUIDANCE)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--random-weights", action="store_true", help="time a random U-Net of the shipped shape")
    args = parser.parse_args()
    pin_threads(args.threads)
    pipe, weights = load(random_weights=args.random_weights)
    pipe.set_progress_bar_config(disable=True)
    prompts = embedded.prompt_suite("van gogh", n=max(args.batch))["target"]
    rows = []
    for batch in args.batch:

        def run(batch: int = batch) -> list:
            return pipe(
                prompts[:batch],
                num_inference_steps=args.steps,
                guidance_scale=args.guidance,
                generator=torch.Generator().manual_seed(0),
            ).images

        median, best, _ = timed(run, repeats=args.repeats)
        rows.append(
            {
                "case": f"text->image ({weights} weights)",
                "batch": batch,
                "steps": args.steps,
                "guidance": args.guidance,
                "threads": args.threads,
                "median_s": median,
                "min_s": best,
                "images_per_s": batch / median,
            }
        )
    print_table(rows)


if __name__ == "__main__":
    main()
