"""Images per second of the embedded world's procedural renderer (the issue's bar: ≥ 1000 on one thread).

python bench/render.py --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _timing import pin_threads, print_table, timed
from erasekit.worlds.embedded.renderer import COLOR_LABELS, OBJECT_LABELS, STYLE_LABELS, Renderer, SceneBatch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    pin_threads(args.threads)
    renderer, rows = Renderer(), []
    for n in args.batch:
        g = torch.Generator().manual_seed(0)
        batch = SceneBatch(
            torch.randint(len(OBJECT_LABELS), (n,), generator=g),
            torch.randint(len(COLOR_LABELS), (n,), generator=g),
            torch.randint(len(STYLE_LABELS), (n,), generator=g),
            torch.rand(n, generator=g) < 0.1,
        )
        med, best, _ = timed(lambda batch=batch, g=g: renderer.render_batch(batch, generator=g), repeats=args.repeats)
        rows.append({"batch": n, "median_s": med, "min_s": best, "images_per_s": n / med})
    print(f"{torch.get_num_threads()} thread(s)")
    print_table(rows)


if __name__ == "__main__":
    main()
