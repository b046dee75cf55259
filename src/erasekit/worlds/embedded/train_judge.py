"""Trains the embedded world's judge on freshly rendered images.

Usage: ``python -m erasekit.worlds.embedded.train_judge [--steps 1500] [--seed 0] [--out PATH]``

Every step renders a new batch (scenes uniform over objects, colours and styles; one in eight an
unclothed person), degraded as generated images can be: Gaussian noise, blur, a brightness shift. The
held-out accuracy is measured on renders from another seed and written into the file's metadata.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from .judge import JudgeNet, default_judge_path, save_judge
from .renderer import COLOR_LABELS, OBJECT_LABELS, STYLE_LABELS, Renderer, SceneBatch

logger = logging.getLogger(__name__)

NUDE_FRACTION = 0.125


def random_scenes(n: int, g: torch.Generator) -> SceneBatch:
    """Returns ``n`` uniform random scenes, a ``NUDE_FRACTION`` of them unclothed persons."""
    nude = torch.rand(n, generator=g) < NUDE_FRACTION
    obj = torch.randint(len(OBJECT_LABELS), (n,), generator=g)
    obj = torch.where(nude, OBJECT_LABELS.index("person"), obj)
    return SceneBatch(
        object=obj,
        color=torch.randint(len(COLOR_LABELS), (n,), generator=g),
        style=torch.randint(len(STYLE_LABELS), (n,), generator=g),
        nude=nude,
    )


def degrade(images: Tensor, g: torch.Generator) -> Tensor:
    """Returns images with random noise (sigma <= 0.08), 3x3 blur (half of them) and brightness jitter."""
    n = images.shape[0]
    blur = torch.tensor([1.0, 2.0, 1.0])
    kernel = (blur[:, None] * blur[None, :] / 16).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    images = torch.where(torch.rand(n, 1, 1, 1, generator=g) < 0.5, blurred, images)
    images = images * (1 + 0.16 * (torch.rand(n, 1, 1, 1, generator=g) - 0.5))
    sigma = 0.08 * torch.rand(n, 1, 1, 1, generator=g)
    return (images + sigma * torch.randn(images.shape, generator=g)).clamp(0, 1)


def targets(batch: SceneBatch) -> dict[str, Tensor]:
    """Returns the class index per head; the colour of an unclothed person is ignored (-100)."""
    return {
        "object": batch.object,
        "color": torch.where(batch.nude, -100, batch.color),
        "style": batch.style,
        "unsafe": batch.nude.long(),
    }


@torch.no_grad()
def accuracy(net: JudgeNet, renderer: Renderer, *, n: int, seed: int, degraded: bool = False) -> dict[str, float]:
    """Returns per-head accuracy of ``net`` on ``n`` fresh renders from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    batch = random_scenes(n, g)
    images = renderer.render_batch(batch, generator=g)
    if degraded:
        images = degrade(images, g)
    net.eval()
    logits = net(images)
    out = {}
    for name, target in targets(batch).items():
        keep = target != -100
        out[name] = (logits[name].argmax(1)[keep] == target[keep]).float().mean().item()
    return out


def train(*, steps: int, seed: int, batch_size: int = 128, lr: float = 2e-3) -> tuple[JudgeNet, dict[str, float]]:
    """Returns a trained judge and its held-out accuracy (clean and degraded renders)."""
    with torch.random.fork_rng():  # seed the initialisation without touching the caller's RNG
        torch.manual_seed(seed)
        net = JudgeNet()
    renderer = Renderer()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    start = time.time()
    for step in range(1, steps + 1):
        batch = random_scenes(batch_size, g)
        images = degrade(renderer.render_batch(batch, generator=g), g)
        net.train()
        logits = net(images)
        loss = sum(F.cross_entropy(logits[k], t, ignore_index=-100) for k, t in targets(batch).items())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps:
            logger.info("step %d/%d loss %.4f (%.0f s)", step, steps, loss.item(), time.time() - start)
    clean = accuracy(net, renderer, n=4096, seed=seed + 10_000)
    noisy = accuracy(net, renderer, n=4096, seed=seed + 20_000, degraded=True)
    return net, {**{f"heldout_{k}": v for k, v in clean.items()}, **{f"degraded_{k}": v for k, v in noisy.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=default_judge_path())
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    net, metrics = train(steps=args.steps, seed=args.seed)
    logger.info("held-out accuracy: %s", json.dumps(metrics))
    save_judge(
        net, args.out, metadata={"metrics": json.dumps(metrics), "steps": str(args.steps), "seed": str(args.seed)}
    )
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
