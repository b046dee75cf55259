"""``load_pipeline``: the shipped embedded model as an ``EmbeddedPipeline``, offline."""

from __future__ import annotations

from pathlib import Path

import torch

from erasekit.pipeline import resolve_device, resolve_dtype

from .model import sampling_scheduler
from .pipeline import EmbeddedPipeline
from .text import load_text_encoder, load_tokenizer
from .weights import load_unet, training_info, unet_dir


def load_pipeline(
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    weights: str | Path | None = None,
) -> EmbeddedPipeline:
    """Returns the embedded world's text-to-image pipeline with the shipped weights.

    Args:
        device: where to run (default cpu).
        dtype: float32 (default), float16 or bfloat16; the text encoder follows.
        weights: a U-Net folder to use instead of the shipped one (config.json + safetensors).

    Raises:
        MissingWeightsError: the U-Net or text-encoder files are missing or corrupt (the message names
            the path and the command that retrains the model).
        ConfigError: an unknown dtype or an unavailable device.
    """
    torch_dtype = resolve_dtype(dtype) or torch.float32
    torch_device = resolve_device(device or "cpu")
    folder = Path(weights) if weights is not None else unet_dir()
    unet = load_unet(folder, dtype=torch_dtype)
    causal = bool(training_info(folder).get("config", {}).get("causal_text", False))  # what the U-Net was trained on
    pipe = EmbeddedPipeline(
        unet=unet,
        scheduler=sampling_scheduler(),
        tokenizer=load_tokenizer(),
        text_encoder=load_text_encoder(causal=causal).to(torch_dtype),
    )
    pipe.set_progress_bar_config(disable=True)  # as every pipeline erasekit loads: its commands show their own bars
    return pipe.to(torch_device)
