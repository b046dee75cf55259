"""``load_pipeline``: the shipped embedded model as an ``EmbeddedPipeline``, offline."""

from __future__ import annotations

from pathlib import Path

import torch

from erasekit.errors import ConfigError

from .model import sampling_scheduler
from .pipeline import EmbeddedPipeline
from .text import load_text_encoder, load_tokenizer
from .weights import load_unet, unet_dir

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """Returns the torch dtype for ``dtype`` (None: float32).

    Raises:
        ConfigError: not one of float32, float16, bfloat16.
    """
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        dtype = DTYPES.get(dtype.removeprefix("torch."), dtype)  # type: ignore[arg-type]
    if dtype not in DTYPES.values():
        raise ConfigError(f"dtype must be one of {sorted(DTYPES)} (or the torch dtypes), got {dtype!r}.")
    return dtype  # type: ignore[return-value]


def resolve_device(device: torch.device | str | None) -> torch.device:
    """Returns the torch device for ``device`` (None: cpu).

    Raises:
        ConfigError: not a device name, or a device this machine does not have.
    """
    try:
        resolved = torch.device(device if device is not None else "cpu")
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}.") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available here; use device='cpu'.")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist.")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} requested but MPS is not available here; use device='cpu'.")
    return resolved


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
    torch_dtype, torch_device = resolve_dtype(dtype), resolve_device(device)
    unet = load_unet(Path(weights) if weights is not None else unet_dir(), dtype=torch_dtype)
    pipe = EmbeddedPipeline(
        unet=unet,
        scheduler=sampling_scheduler(),
        tokenizer=load_tokenizer(),
        text_encoder=load_text_encoder().to(torch_dtype),
    )
    return pipe.to(torch_device)
