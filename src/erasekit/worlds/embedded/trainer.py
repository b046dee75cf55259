"""Training of the embedded world's U-Net: the objective, the data of a step, and the resumable run.

Every step draws captions (train split), renders their scenes afresh, and fits the v-prediction
objective, with caption dropout for classifier-free guidance. Text states come from a precomputed table
(``text_cache``), since the encoder is frozen.

All randomness of step ``k`` is derived from ``(seed, k)``, so a resumed run sees exactly the batches an
uninterrupted one would. A full checkpoint (weights, EMA, optimizer, step, history; the RNG state is the
pair (seed, step)) is written atomically to the cache folder; a killed run resumes from it. Without a
checkpoint, training warm-starts from the exported fp16 EMA weights when they fit the spec, so a fresh
machine continues where the last export left off.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel

from erasekit.errors import ConfigError

from .captions import all_captions, sample_captions
from .checkpoint import load_checkpoint, save_checkpoint
from .ema import EMA
from .judge import default_judge_path, load_judge
from .model import UNetSpec, build_unet, sampling_scheduler, spec_dict, to_model_space, training_scheduler
from .model_card import write_model_card
from .pipeline import EmbeddedPipeline
from .quality import measure_quality, quality_prompts
from .renderer import Renderer, SceneBatch
from .text import load_text_encoder, load_tokenizer
from .text_cache import UNCONDITIONAL, CaptionStates
from .weights import export_unet, load_unet, training_info

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run (all of them go into checkpoints and ``training.json``)."""

    steps: int = 30_000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 200
    ema_decay: float = 0.999
    cfg_drop: float = 0.1  # fraction of captions replaced by the empty prompt
    min_snr_gamma: float | None = None  # None: plain v-loss (weight 1 at every t); measured better for objects
    grad_clip: float = 1.0
    seed: int = 0
    causal_text: bool = False  # read captions with the causal text encoder (text.CausalBertModel), as SD reads CLIP
    spec: UNetSpec = field(default_factory=UNetSpec)

    def __post_init__(self) -> None:
        checks = {
            "steps >= 1": self.steps >= 1,
            "batch_size >= 1": self.batch_size >= 1,
            "lr > 0": self.lr > 0,
            "warmup >= 1": self.warmup >= 1,
            "0 <= ema_decay < 1": 0 <= self.ema_decay < 1,
            "0 <= cfg_drop < 1": 0 <= self.cfg_drop < 1,
            "min_snr_gamma is None or > 0": self.min_snr_gamma is None or self.min_snr_gamma > 0,
        }
        failed = [rule for rule, ok in checks.items() if not ok]
        if failed:
            raise ConfigError(f"TrainConfig needs {', '.join(failed)}; got {self}.")


def step_generator(seed: int, step: int) -> torch.Generator:
    """Returns the generator of everything random in ``step`` (data, noise, timesteps, dropout)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def make_batch(
    cfg: TrainConfig, step: int, renderer: Renderer, table: CaptionStates
) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
    """Returns clean samples x0 [B, 12, 16, 16], caption states [B, L, 384] and the step's generator."""
    g = step_generator(cfg.seed, step)
    captions = sample_captions(cfg.batch_size, seed=int(torch.randint(2**62, (1,), generator=g)))
    drop = (torch.rand(cfg.batch_size, generator=g) < cfg.cfg_drop).tolist()
    texts = [UNCONDITIONAL if d else c.text for c, d in zip(captions, drop)]
    images = renderer.render_batch(SceneBatch.from_scenes([c.scene for c in captions]), generator=g)
    return to_model_space(images), table.lookup(texts), g


def diffusion_loss(
    unet: UNet2DConditionModel,
    scheduler: DDPMScheduler,
    x0: torch.Tensor,
    states: torch.Tensor,
    g: torch.Generator,
    *,
    min_snr_gamma: float | None,
) -> torch.Tensor:
    """Returns the v-prediction loss mean_i w(t_i) |v_theta(x_t, t, c) - v|^2.

    With ``min_snr_gamma`` the min-SNR weight for v-prediction, w(t) = min(SNR(t), gamma) / (SNR(t) + 1);
    without it w = 1, which weighs high-noise steps (where layout and colour are decided) more.
    """
    n = x0.shape[0]
    t = torch.randint(scheduler.config.num_train_timesteps, (n,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    x_t = scheduler.add_noise(x0, noise, t)
    v = scheduler.get_velocity(x0, noise, t)
    pred = unet(x_t, t, encoder_hidden_states=states).sample
    if min_snr_gamma is None:
        return F.mse_loss(pred, v)
    alpha_bar = scheduler.alphas_cumprod[t]
    snr = alpha_bar / (1 - alpha_bar)
    weight = snr.clamp(max=min_snr_gamma) / (snr + 1)
    return (weight * F.mse_loss(pred, v, reduction="none").mean((1, 2, 3))).mean()


class Trainer:
    """Holds the state of a run: model, EMA, optimizer, step, elapsed time, metrics history."""

    def __init__(self, cfg: TrainConfig, cache_dir: Path, export_dir: Path, *, warm_start: Path | None = None) -> None:
        self.cfg, self.cache_dir, self.export_dir = cfg, cache_dir, export_dir
        self.warm_start = warm_start or export_dir
        self.ckpt_path = cache_dir / "checkpoint.pt"
        with torch.random.fork_rng():  # seed the initialisation without touching the caller's RNG
            torch.manual_seed(cfg.seed)
            self.unet = build_unet(cfg.spec).train()
        self.opt = torch.optim.AdamW(self.unet.parameters(), lr=cfg.lr, weight_decay=0.0)
        self.ema = EMA(self.unet, cfg.ema_decay)
        self.step, self.elapsed, self.history = 0, 0.0, []
        self._resume()
        self.renderer = Renderer()
        self.scheduler = training_scheduler()

    def _resume(self) -> None:
        state = load_checkpoint(self.ckpt_path)
        if state is not None:
            if state["spec"] != spec_dict(self.cfg.spec):
                raise ConfigError(
                    f"checkpoint {self.ckpt_path} is for spec {state['spec']}, not "
                    f"{spec_dict(self.cfg.spec)}; use another --cache-dir or the same spec."
                )
            self.unet.load_state_dict(state["unet"])
            self.ema.load_state_dict(state["ema"])
            self.opt.load_state_dict(state["optimizer"])
            self.step, self.elapsed, self.history = state["step"], state["elapsed"], state["history"]
            logger.info("resumed from %s at step %d (%.1f h trained)", self.ckpt_path, self.step, self.elapsed / 3600)
            return
        info = training_info(self.warm_start)
        if info.get("spec") == spec_dict(self.cfg.spec):
            shipped = load_unet(self.warm_start)
            self.unet.load_state_dict(shipped.float().state_dict())
            self.ema = EMA(self.unet, self.cfg.ema_decay)
            self.ema.updates = info["step"]
            self.step, self.elapsed, self.history = info["step"], info["train_seconds"], info.get("history", [])
            logger.info("warm start from the exported EMA weights in %s at step %d", self.warm_start, self.step)
        else:
            logger.info("starting from scratch (no checkpoint in %s, no matching export)", self.cache_dir)

    def checkpoint(self) -> None:
        save_checkpoint(
            {
                "unet": self.unet.state_dict(),
                "ema": self.ema.state_dict(),
                "optimizer": self.opt.state_dict(),
                "step": self.step,
                "elapsed": self.elapsed,
                "history": self.history,
                "spec": spec_dict(self.cfg.spec),
                "config": {k: v for k, v in asdict(self.cfg).items() if k != "spec"},
                # the RNG state: every random draw of step k comes from step_generator(seed, k)
                "rng": {"seed": self.cfg.seed, "next_step": self.step},
            },
            self.ckpt_path,
        )

    def ema_unet(self) -> UNet2DConditionModel:
        unet = UNet2DConditionModel.from_config(self.unet.config)
        self.ema.copy_to(unet)
        return unet.eval()

    def export(self) -> None:
        info = {
            "step": self.step,
            "train_seconds": round(self.elapsed),
            "spec": spec_dict(self.cfg.spec),
            "config": {k: v for k, v in asdict(self.cfg).items() if k != "spec"},
            "history": self.history,
        }
        export_unet(self.ema_unet(), self.export_dir, info)
        write_model_card(self.export_dir.parent, self.export_dir, default_judge_path())
        logger.info("exported fp16 EMA weights at step %d to %s", self.step, self.export_dir)

    def evaluate(self, *, n_attributes: int, n_unsafe: int, steps: int, guidance: float) -> dict[str, float]:
        pipe = EmbeddedPipeline(
            unet=self.ema_unet(),
            scheduler=sampling_scheduler(),
            tokenizer=load_tokenizer(),
            text_encoder=load_text_encoder(causal=self.cfg.causal_text),
        )
        pipe.set_progress_bar_config(disable=True)

        def generate(prompts: list[str], seed: int) -> list:
            return pipe(
                prompts,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=torch.Generator().manual_seed(seed),
            ).images

        start = time.time()
        metrics = measure_quality(
            generate, load_judge(), quality_prompts(n_attributes=n_attributes, n_unsafe=n_unsafe, seed=1234)
        )
        record = {
            "step": self.step,
            "hours": round(self.elapsed / 3600, 3),
            **{k: round(v, 4) for k, v in metrics.items()},
            "steps": steps,
            "guidance": guidance,
            "eval_s": round(time.time() - start, 1),
        }
        self.history.append(record)
        with open(self.cache_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        logger.info("eval %s", json.dumps(record))
        return metrics

    def run(
        self,
        *,
        checkpoint_every: int,
        eval_every: int = 0,
        export_every: int = 0,
        eval_kwargs: dict | None = None,
        table: CaptionStates | None = None,
        progress: Callable[[int, float], None] | None = None,
    ) -> None:
        """Trains until ``cfg.steps``, checkpointing, evaluating and exporting on the way.

        Args:
            checkpoint_every: steps between resume checkpoints.
            eval_every: steps between judged evaluations (0: never).
            export_every: steps between fp16 EMA exports (0: never).
            eval_kwargs: arguments of ``evaluate``.
            table: caption states; default: built (or loaded) in the cache folder.
            progress: called after every step as ``progress(step, smoothed_loss)``.
        """
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        table = table or CaptionStates.build(all_captions("train"), self.cache_dir, causal=self.cfg.causal_text)
        running = None
        while self.step < self.cfg.steps:
            start = time.time()
            x0, states, g = make_batch(self.cfg, self.step, self.renderer, table)
            for group in self.opt.param_groups:
                group["lr"] = self.cfg.lr * min(1.0, (self.step + 1) / self.cfg.warmup)
            loss = diffusion_loss(self.unet, self.scheduler, x0, states, g, min_snr_gamma=self.cfg.min_snr_gamma)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.unet.parameters(), self.cfg.grad_clip)
            self.opt.step()
            self.ema.update(self.unet)
            self.step += 1
            self.elapsed += time.time() - start
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if progress is not None:
                progress(self.step, running)
            if self.step % checkpoint_every == 0 or self.step == self.cfg.steps:
                self.checkpoint()
            if eval_every and (self.step % eval_every == 0 or self.step == self.cfg.steps):
                self.evaluate(**(eval_kwargs or {}))
                self.checkpoint()
            if export_every and (self.step % export_every == 0 or self.step == self.cfg.steps):
                self.export()
