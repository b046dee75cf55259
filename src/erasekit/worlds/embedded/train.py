"""Trains the embedded world's U-Net: ``python -m erasekit.worlds.embedded.train [options]``.

Resumes from ``--cache-dir`` (default ``~/.cache/erasekit/embedded-train/``) after a kill; evaluates
prompt-following with the judge every ``--eval-every`` steps and exports fp16 EMA weights into the
package every ``--export-every`` steps. See ``trainer`` for the objective and the resume guarantees.
For a background run that leaves a core free::

    nohup nice -n 10 python -m erasekit.worlds.embedded.train --threads 1 > /tmp/embedded_train.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from .model import UNetSpec, build_unet
from .pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS
from .trainer import TrainConfig, Trainer
from .weights import unet_dir

logger = logging.getLogger(__name__)

DEFAULT_CACHE = Path.home() / ".cache" / "erasekit" / "embedded-train"


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d, s = TrainConfig(), UNetSpec()
    p = argparse.ArgumentParser(prog="python -m erasekit.worlds.embedded.train", description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=d.steps, help="train until this global step")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--ema-decay", type=float, default=d.ema_decay)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--min-snr-gamma", type=float, default=d.min_snr_gamma, help="0: plain v-prediction loss")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 leaves a core free)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="checkpoints, caption states, metrics")
    p.add_argument("--export-dir", type=Path, default=unet_dir(), help="where fp16 EMA weights are exported")
    p.add_argument(
        "--warm-start", type=Path, default=None, help="exported weights to start from (default: --export-dir)"
    )
    p.add_argument("--causal-text", action="store_true", help="read captions causally, as SD reads CLIP's states")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=1000, help="0: never")
    p.add_argument("--export-every", type=int, default=1000, help="0: never")
    p.add_argument("--eval-attributes", type=int, default=128)
    p.add_argument("--eval-unsafe", type=int, default=32)
    p.add_argument("--eval-steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--channels", type=_ints, default=s.channels)
    p.add_argument(
        "--cross-attention",
        type=lambda t: tuple(bool(int(x)) for x in t.split(",")),
        default=s.cross_attention,
        help="e.g. 0,1,1",
    )
    p.add_argument("--heads", type=_ints, default=s.heads)
    p.add_argument("--layers-per-block", type=int, default=s.layers_per_block)
    p.add_argument("--transformer-layers", type=int, default=s.transformer_layers)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = UNetSpec(
        channels=args.channels,
        cross_attention=args.cross_attention,
        heads=args.heads,
        layers_per_block=args.layers_per_block,
        transformer_layers=args.transformer_layers,
    )
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        ema_decay=args.ema_decay,
        seed=args.seed,
        min_snr_gamma=args.min_snr_gamma or None,
        causal_text=args.causal_text,
        spec=spec,
    )
    n_params = sum(p.numel() for p in build_unet(spec).parameters())
    logger.info("config %s; U-Net %.2f M parameters", json.dumps(asdict(cfg)), n_params / 1e6)
    trainer = Trainer(cfg, args.cache_dir, args.export_dir, warm_start=args.warm_start)
    bar = tqdm(total=cfg.steps, initial=trainer.step, mininterval=30, file=sys.stderr, desc="train")

    def progress(step: int, loss: float) -> None:
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    trainer.run(
        checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every,
        export_every=args.export_every,
        eval_kwargs=dict(
            n_attributes=args.eval_attributes, n_unsafe=args.eval_unsafe, steps=args.eval_steps, guidance=args.guidance
        ),
        progress=progress,
    )
    bar.close()


if __name__ == "__main__":
    main()
