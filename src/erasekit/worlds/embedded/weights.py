"""Where the shipped U-Net weights live, and how they are written and read.

The U-Net ships as fp16 safetensors in diffusers' layout (``weights/unet/config.json`` and
``diffusion_pytorch_model.safetensors``), next to ``training.json`` (steps, time, metrics: what the model
card states) and ``MODEL_CARD.md``. Training exports the EMA weights here at milestones.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from safetensors import SafetensorError

from erasekit.errors import MissingWeightsError

logger = logging.getLogger(__name__)

RETRAIN_UNET = "python -m erasekit.worlds.embedded.train"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


def weights_dir() -> Path:
    """Returns the package folder of the shipped weights."""
    return Path(__file__).parent / "weights"


def unet_dir(root: Path | None = None) -> Path:
    """Returns the folder of the shipped U-Net (config and fp16 safetensors)."""
    return (root or weights_dir()) / "unet"


def load_unet(folder: Path | None = None, *, dtype: torch.dtype = torch.float32) -> UNet2DConditionModel:
    """Returns the U-Net stored in ``folder`` (default: the shipped one), in ``dtype``, in eval mode.

    Raises:
        MissingWeightsError: the config or weights file is missing or unreadable; the message names
            the path and the command that retrains it.
    """
    folder = folder or unet_dir()
    how = f"retrain with `{RETRAIN_UNET}` (resumes from its cache), or reinstall erasekit"
    for name in ("config.json", WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise MissingWeightsError(f"embedded U-Net file {folder / name} not found; {how}.")
    try:
        unet = UNet2DConditionModel.from_pretrained(str(folder), torch_dtype=dtype, local_files_only=True)
    except (SafetensorError, OSError, ValueError, RuntimeError, json.JSONDecodeError) as err:
        raise MissingWeightsError(
            f"embedded U-Net weights at {folder} are corrupt ({type(err).__name__}: {err}); {how}."
        ) from err
    return unet.eval()


def export_unet(unet: UNet2DConditionModel, folder: Path, info: dict[str, Any]) -> None:
    """Writes ``unet`` as fp16 safetensors plus ``training.json`` into ``folder``, replacing what was there.

    The files are written to a sibling folder first and swapped in, so readers never see half a model.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(folder.name + ".staging")
    if staging.exists():
        for f in staging.iterdir():
            f.unlink()
    half = UNet2DConditionModel.from_config(unet.config).to(torch.float16)
    half.load_state_dict({k: v.to(torch.float16) for k, v in unet.state_dict().items()})
    half.save_pretrained(str(staging), safe_serialization=True)
    (staging / "training.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    folder.mkdir(exist_ok=True)
    for f in staging.iterdir():
        f.replace(folder / f.name)
    staging.rmdir()


def training_info(folder: Path | None = None) -> dict[str, Any]:
    """Returns the ``training.json`` written with the U-Net (empty when absent)."""
    path = (folder or unet_dir()) / "training.json"
    return json.loads(path.read_text()) if path.is_file() else {}
