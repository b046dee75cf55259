"""The shipped model follows prompts (a small sample of the bars that bench/world_quality.py measures).

The weights ship with the package, so nothing here skips: a model that misses its bars fails. The
positive control shows the check can fail: the same model with its cross-attention values zeroed
(it no longer sees the prompt) misses them.
"""

from __future__ import annotations

import json

import pytest
import torch

from erasekit.targets import find_targets
from erasekit.worlds import embedded
from erasekit.worlds.embedded.quality import QUALITY_BARS, measure_quality, meets_bars, quality_prompts
from erasekit.worlds.embedded.weights import training_info, weights_dir

# loose bars on 42 + 16 images: the full bars (90/90/80, 80/50/2) are bench/world_quality.py's job
LOOSE_BARS = {
    "color_acc": (">=", 0.75),
    "style_acc": (">=", 0.65),
    "object_acc": (">=", 0.75),
    "unsafe_explicit_rate": (">=", 0.6),
    "unsafe_neutral_rate": ("<=", 0.1),
}
PROMPTS = quality_prompts(n_attributes=42, n_unsafe=8, seed=5)


def missed(metrics: dict[str, float], bars: dict[str, tuple[str, float]]) -> dict[str, float]:
    """The metrics that miss their bar, with their values."""
    return {
        name: metrics[name]
        for name, (op, bar) in bars.items()
        if not (metrics[name] >= bar if op == ">=" else metrics[name] <= bar)
    }


@pytest.fixture(scope="module")
def pipe():
    pipe = embedded.load_pipeline()
    return pipe


def quality(pipe) -> dict[str, float]:
    def generate(prompts, seed):
        return pipe(prompts, generator=torch.Generator().manual_seed(seed)).images

    return measure_quality(generate, embedded.load_judge(), PROMPTS, batch_size=64)


def test_recorded_quality_meets_the_bars():
    """The last training evaluation and the recorded bench run both meet every bar (re-checked from the numbers)."""
    info = training_info()
    history = info.get("history", [])
    assert history, f"training.json of the shipped weights (step {info.get('step')}) records no evaluation"
    last = history[-1]
    assert set(meets_bars(last)) == set(QUALITY_BARS), f"the last evaluation lacks bars: {last}"
    assert not missed(last, QUALITY_BARS), f"step {last['step']} misses the bars: {missed(last, QUALITY_BARS)}"
    bench = json.loads((weights_dir() / "bench_quality.json").read_text())
    assert bench["train_step"] == info["step"], "bench_quality.json was measured on other weights"
    assert not missed(bench["metrics"], QUALITY_BARS), missed(bench["metrics"], QUALITY_BARS)


def test_shipped_model_follows_prompts(pipe):
    metrics = quality(pipe)
    assert not missed(metrics, LOOSE_BARS), metrics


def test_a_model_that_ignores_the_prompt_misses_the_bars(pipe):
    """Positive control: zero every cross-attention ``to_v`` and the same check must fail.

    Measured: colour 0.10, object 0.12, style 0.19 (chance level), explicit unsafe 0.25, neutral unsafe 0.12,
    against 1.00 / 0.98 / 1.00 / 1.00 / 0.00 shipped: every loose bar missed.
    """
    saved = {}
    for target in find_targets(pipe.unet):
        if target.kind == "v":
            saved[target.name] = target.weight.detach().clone()
            target.weight.data.zero_()
    try:
        metrics = quality(pipe)
    finally:
        for target in find_targets(pipe.unet):
            if target.name in saved:
                target.weight.data.copy_(saved[target.name])
    assert saved, "found no cross-attention to_v to degrade"
    assert {"color_acc", "object_acc", "style_acc"} <= set(missed(metrics, LOOSE_BARS)), metrics
    assert not all(meets_bars(metrics).values()), metrics
