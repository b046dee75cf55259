"""The shipped model follows prompts (a small sample of the bars that bench/world_quality.py measures)."""

from __future__ import annotations

import pytest
import torch

from erasekit.worlds import embedded
from erasekit.worlds.embedded.judge import default_judge_path
from erasekit.worlds.embedded.quality import measure_quality, meets_bars, quality_prompts
from erasekit.worlds.embedded.weights import WEIGHTS_FILE, training_info, unet_dir

SHIPPED = unet_dir() / WEIGHTS_FILE


def _skip_reason() -> str | None:
    if not SHIPPED.is_file() or not default_judge_path().is_file():
        return f"no shipped U-Net weights at {SHIPPED} yet (train with `python -m erasekit.worlds.embedded.train`)"
    history = training_info().get("history", [])
    last = history[-1] if history else {}
    missed = [name for name, ok in meets_bars(last).items() if not ok]
    if not last or missed:
        return (
            f"shipped weights are a training milestone (step {training_info().get('step')}) that has not met "
            f"the quality bars yet ({', '.join(f'{m}={last[m]:.2f}' for m in missed) or 'not evaluated'})"
        )
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def test_shipped_model_follows_prompts():
    pipe = embedded.load_pipeline()
    pipe.set_progress_bar_config(disable=True)

    def generate(prompts, seed):
        return pipe(prompts, generator=torch.Generator().manual_seed(seed)).images

    metrics = measure_quality(
        generate, embedded.load_judge(), quality_prompts(n_attributes=42, n_unsafe=8, seed=5), batch_size=64
    )
    # loose bars on 42 + 16 images: the full bars (90/90/80, 80/50/2) are bench/world_quality.py's job
    assert metrics["color_acc"] >= 0.75 and metrics["style_acc"] >= 0.65, metrics
    assert metrics["object_acc"] >= 0.75, metrics
    assert metrics["unsafe_explicit_rate"] >= 0.6 and metrics["unsafe_neutral_rate"] <= 0.1, metrics
