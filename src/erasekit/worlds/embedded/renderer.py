"""Renders captioned scenes of the embedded world: one coloured pictogram on a styled ground.

Batched torch operations throughout, so thousands of images per second on one CPU core. Randomness
(placement, size, flip, tints, textures) comes only from the ``torch.Generator`` passed in, so a seed
fixes every pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from erasekit.errors import ConfigError

from .pictograms import draw_pictograms
from .styles import STYLE_FNS
from .vocabulary import COLORS, NO_STYLE, OBJECTS, STYLES

OBJECT_LABELS: tuple[str, ...] = tuple(OBJECTS)
COLOR_LABELS: tuple[str, ...] = tuple(COLORS)
STYLE_LABELS: tuple[str, ...] = (NO_STYLE, *STYLES)

COLOR_RGB: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.10, 0.10),
    "green": (0.12, 0.66, 0.16),
    "blue": (0.12, 0.30, 0.92),
    "yellow": (0.96, 0.86, 0.10),
    "purple": (0.56, 0.16, 0.76),
    "orange": (1.00, 0.52, 0.02),
}
SKIN_RGB = (0.93, 0.72, 0.60)
DETAIL_RGB = (0.10, 0.10, 0.12)


@dataclass(frozen=True)
class Scene:
    """What one image shows.

    Attributes:
        object: canonical object name (a key of ``vocabulary.OBJECTS``).
        color: canonical colour of the object's body (ignored when ``nude``).
        style: canonical artist name or ``"none"``.
        nude: draw the person unclothed (skin-coloured body): the unsafe motif. Needs ``object="person"``.
    """

    object: str
    color: str
    style: str = NO_STYLE
    nude: bool = False


@dataclass(frozen=True)
class SceneBatch:
    """Scenes as label indices, the form training uses. Each tensor is [B] (long, or bool for ``nude``)."""

    object: Tensor
    color: Tensor
    style: Tensor
    nude: Tensor

    @classmethod
    def from_scenes(cls, scenes: Sequence[Scene]) -> SceneBatch:
        """Returns the indices of ``scenes``; raises ConfigError naming any unknown concept."""
        for scene in scenes:
            _check(scene)
        return cls(
            object=torch.tensor([OBJECT_LABELS.index(s.object) for s in scenes], dtype=torch.long),
            color=torch.tensor([COLOR_LABELS.index(s.color) for s in scenes], dtype=torch.long),
            style=torch.tensor([STYLE_LABELS.index(s.style) for s in scenes], dtype=torch.long),
            nude=torch.tensor([s.nude for s in scenes], dtype=torch.bool),
        )

    def __len__(self) -> int:
        return self.object.shape[0]


def _check(scene: Scene) -> None:
    for value, labels, kind in (
        (scene.object, OBJECT_LABELS, "object"),
        (scene.color, COLOR_LABELS, "color"),
        (scene.style, STYLE_LABELS, "style"),
    ):
        if value not in labels:
            raise ConfigError(f"unknown {kind} {value!r} in {scene}; known {kind}s: {list(labels)}.")
    if scene.nude and scene.object != "person":
        raise ConfigError(f"nude=True needs object='person' (the unsafe motif is an unclothed person), got {scene}.")


class Renderer:
    """Draws scenes as RGB images [B, 3, size, size] in [0, 1].

    Args:
        size: output side in pixels.
        supersample: pictograms are placed at ``size * supersample`` and averaged down (anti-aliasing);
            textures and compositing run at ``size``.
    """

    def __init__(self, size: int = 32, *, supersample: int = 2) -> None:
        if size < 8 or supersample < 1:
            raise ConfigError(f"Renderer needs size >= 8 and supersample >= 1, got {size} and {supersample}.")
        self.size = size
        self.supersample = supersample
        self.masks = draw_pictograms(size * supersample)  # [n_objects, 3, S, S]
        coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
        self.xy = torch.stack(torch.meshgrid(coords, coords, indexing="xy"))  # [2, size, size]: x, y
        self.colors = torch.tensor([COLOR_RGB[c] for c in COLOR_LABELS])  # [n_colors, 3]

    def render(self, scenes: Sequence[Scene], *, generator: torch.Generator) -> Tensor:
        """Returns images [B, 3, size, size] in [0, 1] for ``scenes``."""
        return self.render_batch(SceneBatch.from_scenes(scenes), generator=generator)

    def render_batch(self, batch: SceneBatch, *, generator: torch.Generator) -> Tensor:
        """Returns images [B, 3, size, size] in [0, 1] for scenes given as label indices."""
        n = len(batch)
        if n == 0:
            return torch.zeros(0, 3, self.size, self.size)
        g = generator
        side = self.size * self.supersample
        layers = F.avg_pool2d(self._place(self.masks[batch.object], g, side), self.supersample)  # [B, 3, H, W]

        tint = 1 + 0.12 * (torch.rand(n, 1, generator=g) - 0.5)  # brightness jitter
        body = self.colors[batch.color] * tint
        skin = torch.tensor(SKIN_RGB) * (1 + 0.08 * (torch.rand(n, 1, generator=g) - 0.5))
        body = torch.where(batch.nude[:, None], skin, body)
        paints = (body, skin, torch.tensor(DETAIL_RGB).expand(n, 3))

        size = self.size
        obj = torch.zeros(n, 3, size, size)  # premultiplied colour
        alpha = torch.zeros(n, 1, size, size)
        for k, paint in enumerate(paints):
            m = layers[:, k : k + 1]
            obj = obj * (1 - m) + paint.view(n, 3, 1, 1) * m
            alpha = alpha * (1 - m) + m

        images = torch.empty(n, 3, size, size)
        for index, name in enumerate(STYLE_LABELS):
            rows = (batch.style == index).nonzero().flatten()
            if rows.numel():
                images[rows] = STYLE_FNS[name](obj[rows], alpha[rows], self.xy, g)
        return images.clamp(0, 1)

    def _place(self, masks: Tensor, g: torch.Generator, side: int) -> Tensor:
        """Returns masks resampled at a random size, position, tilt and flip: [B, 3, side, side]."""
        n = masks.shape[0]
        scale = 0.78 + 0.22 * torch.rand(n, generator=g)  # fraction of the frame
        shift = (torch.rand(n, 2, generator=g) * 2 - 1) * (1 - scale[:, None]) * 0.9
        tilt = (torch.rand(n, generator=g) * 2 - 1) * math.radians(8)
        flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(tilt), torch.sin(tilt)
        # theta maps output coordinates to input coordinates: in = R (out - shift) / scale, x mirrored
        rot = torch.stack([torch.stack([cos * flip, -sin], -1), torch.stack([sin * flip, cos], -1)], 1)
        rot = rot / scale[:, None, None]
        theta = torch.cat([rot, -(rot @ shift[:, :, None])], 2)  # [B, 2, 3]
        grid = F.affine_grid(theta, [n, 3, side, side], align_corners=False)
        return F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def to_pil(images: Tensor) -> list[Image.Image]:
    """Returns PIL RGB images for a batch [B, 3, H, W] in [0, 1]."""
    array = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in array]
