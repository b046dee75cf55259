"""Loading a local diffusers pipeline, and the device and dtype names every loader accepts.

erasekit never downloads: a hub id is looked up in the local Hugging Face cache only
(``local_files_only=True``) and weights load from safetensors only. Named worlds (the embedded
model, the tiny random ones) are loaded by :func:`erasekit.worlds.load_pipeline`, which falls back
to :func:`load_local` for anything else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError, MissingWeightsError

DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}  # fmt: skip


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"fp16"``, ``"torch.bfloat16"`` etc. to a torch dtype; None stays None (the checkpoint's own dtype).

    Raises:
        ConfigError: not a floating dtype a pipeline can run in.
    """
    if dtype is None:
        return None
    if isinstance(dtype, str):
        dtype = DTYPES.get(dtype.removeprefix("torch."), dtype)  # type: ignore[arg-type]
    if dtype not in set(DTYPES.values()):
        raise ConfigError(f"Unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}.")
    return dtype  # type: ignore[return-value]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None) picks CUDA when present; an unavailable or malformed device is an error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"Invalid device {device!r}: use 'cpu', 'cuda', 'cuda:1', 'mps' or 'auto'.") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"Device {device!r} requested but CUDA is not available here: use --device cpu.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"Device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"Device {device!r} requested but MPS is not available here: use --device cpu.")
    return dev


def load_local(
    name_or_path: str, *, device: str | torch.device | None = "cpu", dtype: str | torch.dtype | None = None
) -> Any:
    """A diffusers pipeline from a local folder or the local Hugging Face cache, never downloaded.

    Args:
        name_or_path: a folder holding ``model_index.json``, or a hub id already in the cache.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``, ...
        dtype: ``"float32"``, ``"fp16"``, ``"bf16"`` or None for float32.

    Raises:
        MissingWeightsError: the model is not available locally (the message says how to provide it).
        ConfigError: bad device or dtype.
    """
    dev, torch_dtype = resolve_device(device), resolve_dtype(dtype)
    folder = _check_folder(name_or_path)
    from diffusers import DiffusionPipeline

    try:
        pipe = DiffusionPipeline.from_pretrained(
            str(folder) if folder is not None else name_or_path,
            local_files_only=True,
            use_safetensors=True,
            dtype=torch_dtype or torch.float32,
        )
    except (OSError, ValueError) as e:
        why = f"{type(e).__name__}: {_clip(str(e))}"
        if folder is not None:
            raise MissingWeightsError(
                f"Cannot load the diffusers pipeline in {folder} ({why}). Check that every component "
                "model_index.json names is there, with its weights as safetensors."
            ) from e
        raise MissingWeightsError(
            f"No diffusers pipeline found at {name_or_path!r} locally ({why}). "
            "erasekit never downloads weights: pass a local folder holding model_index.json, or fetch the "
            f"model on a connected machine (`hf download {name_or_path}`) so that it sits in "
            "the Hugging Face cache."
        ) from e
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(dev)


def _looks_like_path(name: str) -> bool:
    """A name no hub id (``org/name`` or ``name``) can be: absolute, ``./``, ``~``, backslashes, several ``/``."""
    return name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1 or name.endswith("/")


def _check_folder(name: str) -> Path | None:
    """The local folder ``name`` names (None for a hub id), checked before diffusers reads it.

    Raises:
        MissingWeightsError: a path that does not exist, a file, a folder without ``model_index.json``,
            or a ``model_index.json`` that is not JSON.
    """
    path = Path(name).expanduser()
    if not path.exists():
        if _looks_like_path(name):
            raise MissingWeightsError(
                f"Model folder {name} does not exist ({path.absolute()}). Pass a local diffusers folder holding "
                "model_index.json, or a hub id (org/name) already in the Hugging Face cache: erasekit never "
                "downloads weights."
            )
        return None
    if not path.is_dir():
        raise MissingWeightsError(f"{name} is a file: a model is a diffusers folder holding model_index.json.")
    index = path / "model_index.json"
    if not index.is_file():
        raise MissingWeightsError(
            f"{path} has no model_index.json, so it is not a diffusers pipeline folder: pass the folder that holds "
            "it (pipe.save_pretrained(folder) writes one)."
        )
    try:
        json.loads(index.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MissingWeightsError(f"{index} is not valid JSON ({e}): repair it, or copy the model again.") from e
    return path


def _clip(text: str, n: int = 300) -> str:
    """``text`` on one line, cut at the last word boundary before ``n`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n].rsplit(" ", 1)[0] + " ..."
