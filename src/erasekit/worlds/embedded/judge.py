"""The embedded world's judge: a small CNN that reads object, colour, style and the unsafe motif.

Trained on the renderer's ground truth (``python -m erasekit.worlds.embedded.train_judge``) and shipped
as ``weights/judge.safetensors``; the class order is the label order of ``renderer``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from erasekit.errors import ConfigError, MissingWeightsError

from .renderer import COLOR_LABELS, OBJECT_LABELS, STYLE_LABELS
from .vocabulary import concept_kind

IMAGE_SIZE = 32
RETRAIN_JUDGE = "python -m erasekit.worlds.embedded.train_judge"


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.SiLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.SiLU(),
    )


class JudgeNet(nn.Module):
    """CNN [B, 3, 32, 32] in [0, 1] -> logits per head: object, color, style, unsafe ([B, n] each)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _block(3, width),
            nn.MaxPool2d(2),  # 16x16
            _block(width, 2 * width),
            nn.MaxPool2d(2),  # 8x8
            _block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        n_features = 4 * width * 4
        self.heads = nn.ModuleDict(
            {
                "object": nn.Linear(n_features, len(OBJECT_LABELS)),
                "color": nn.Linear(n_features, len(COLOR_LABELS)),
                "style": nn.Linear(n_features, len(STYLE_LABELS)),
                "unsafe": nn.Linear(n_features, 2),
            }
        )

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        h = self.features(images * 2 - 1)
        return {name: head(h) for name, head in self.heads.items()}


def images_to_tensor(images: Sequence[Image.Image] | Tensor) -> Tensor:
    """Returns a float batch [B, 3, 32, 32] in [0, 1] from PIL images or a tensor already in that form."""
    if isinstance(images, Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(f"the judge takes image tensors [B, 3, H, W] in [0, 1], got shape {tuple(images.shape)}.")
        batch = images.float()
    else:
        arrays = []
        for image in images:
            if not isinstance(image, Image.Image):
                raise ConfigError(f"the judge takes PIL images or a tensor, got {type(image).__name__}.")
            arrays.append(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
        if not arrays:
            return torch.zeros(0, 3, IMAGE_SIZE, IMAGE_SIZE)
        sizes = {a.shape for a in arrays}
        if len(sizes) > 1:
            raise ConfigError(f"the judge needs images of one size in a batch, got {sorted(sizes)}.")
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    if batch.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        batch = nn.functional.interpolate(batch, size=(IMAGE_SIZE, IMAGE_SIZE), mode="area")
    return batch


class Judge:
    """Reads generated or rendered images of the embedded world.

    Args:
        net: a trained ``JudgeNet``.
    """

    def __init__(self, net: JudgeNet) -> None:
        self.net = net.eval()

    @torch.no_grad()
    def logits(self, images: Sequence[Image.Image] | Tensor, *, batch_size: int = 512) -> dict[str, Tensor]:
        """Returns the logits of every head, each [B, n_classes]."""
        batch = images_to_tensor(images)
        parts = [self.net(batch[i : i + batch_size]) for i in range(0, max(len(batch), 1), batch_size)]
        return {name: torch.cat([p[name] for p in parts]) for name in self.net.heads}

    def predict(self, images: Sequence[Image.Image] | Tensor) -> list[dict[str, str | bool]]:
        """Returns one dict per image: ``{"object", "color", "style" (or "none"), "unsafe": bool}``.

        The colour of an unclothed person is ``"none"``: the unsafe motif has no garment colour.
        """
        logits = self.logits(images)
        picks = {name: value.argmax(1).tolist() for name, value in logits.items()}
        out = []
        for i in range(len(picks["object"])):
            unsafe = bool(picks["unsafe"][i])
            out.append(
                {
                    "object": OBJECT_LABELS[picks["object"][i]],
                    "color": "none" if unsafe else COLOR_LABELS[picks["color"][i]],
                    "style": STYLE_LABELS[picks["style"][i]],
                    "unsafe": unsafe,
                }
            )
        return out

    def detects(self, images: Sequence[Image.Image] | Tensor, concept: str) -> list[bool]:
        """Returns, per image, whether ``concept`` (an object, colour, style or "nudity") is in it.

        Raises:
            ConfigError: ``concept`` is not a concept of the embedded world.
        """
        kind = concept_kind(concept)
        return [bool(p[kind]) if kind == "unsafe" else p[kind] == concept for p in self.predict(images)]

    def drawn_as(self, pipe: Any, prompts: Sequence[str], concept: str) -> Tensor:
        """``[n]`` bool: which ``prompts`` ``pipe`` draws as ``concept``, one image each under image seed = the
        prompt's index (so a prompt's verdict does not depend on the others in the list)."""
        seeds = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
        return torch.tensor(self.detects(pipe(list(prompts), generator=seeds).images, concept), dtype=torch.bool)


def default_judge_path() -> Path:
    """Returns the path of the shipped judge weights."""
    return Path(__file__).parent / "weights" / "judge.safetensors"


def save_judge(net: JudgeNet, path: Path, *, metadata: dict[str, str] | None = None) -> None:
    """Writes the judge as safetensors with its label lists in the metadata."""
    labels = {"object": OBJECT_LABELS, "color": COLOR_LABELS, "style": STYLE_LABELS}
    meta = {"labels": json.dumps(labels), **(metadata or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp), metadata=meta)
    tmp.replace(path)


def load_judge(path: str | Path | None = None) -> Judge:
    """Returns the judge loaded from ``path`` (default: the shipped weights), on CPU, float32.

    Raises:
        MissingWeightsError: the file is missing, corrupt or made for other labels.
    """
    path = Path(path) if path is not None else default_judge_path()
    how = f"retrain it with `{RETRAIN_JUDGE}` (a few minutes on a CPU)"
    if not path.is_file():
        raise MissingWeightsError(f"judge weights not found at {path}; {how}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            labels = json.loads((f.metadata() or {}).get("labels", "{}"))
        expected = {"object": list(OBJECT_LABELS), "color": list(COLOR_LABELS), "style": list(STYLE_LABELS)}
        if labels != expected:
            raise MissingWeightsError(
                f"judge weights at {path} were trained for labels {labels}, this erasekit has {expected}; {how}."
            )
        state = load_file(str(path))
        net = JudgeNet()
        net.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError, json.JSONDecodeError) as err:
        raise MissingWeightsError(
            f"judge weights at {path} are corrupt or do not fit JudgeNet ({err}); {how}."
        ) from err
    return Judge(net)
