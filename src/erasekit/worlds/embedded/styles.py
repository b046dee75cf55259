"""The artists' treatments of the embedded world, as batched image operations.

A style paints the background and re-touches the object; each is recognisable at 32x32 by texture and
palette, while the object keeps its hue so that its colour stays readable:

=================  ==========================================================================
van gogh           dark blue ground with swirling yellow / light-blue strokes; object streaked
picasso            cubist facets in earth tones cut by black lines running over the object
monet              pastel ground covered in soft dabs; the whole picture blurred, dabs over it
andy warhol        flat hot-pink, cyan or lime ground, halftone dots, thick black outline
rembrandt          near-black brown ground, warm light on the object, strong vignette
kelly mckernan     teal-to-peach watercolour wash with blotches, thin dark line-art outline
none               plain light-grey ground
=================  ==========================================================================

Every function takes the premultiplied object ``obj: [B, 3, H, W]``, its coverage ``alpha: [B, 1, H, W]``,
the pixel grid ``xy: [2, H, W]`` in [-1, 1] and a ``torch.Generator``, and returns images [B, 3, H, W].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .vocabulary import NO_STYLE, STYLES

StyleFn = Callable[[Tensor, Tensor, Tensor, torch.Generator], Tensor]


def _rand(g: torch.Generator, *shape: int) -> Tensor:
    return torch.rand(shape, generator=g)


def _rgb(*values: float) -> Tensor:
    return torch.tensor(values).view(1, 3, 1, 1)


def _smooth_noise(g: torch.Generator, batch: int, cells: int, size: tuple[int, int], channels: int = 1) -> Tensor:
    """Returns low-frequency noise [B, C, H, W] in about [0, 1] (bicubic upsampling of a coarse grid)."""
    coarse = _rand(g, batch, channels, cells, cells)
    return F.interpolate(coarse, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def _dilate(alpha: Tensor, radius: int) -> Tensor:
    return F.max_pool2d(alpha, 2 * radius + 1, stride=1, padding=radius)


def _over(background: Tensor, obj: Tensor, alpha: Tensor) -> Tensor:
    return background * (1 - alpha) + obj


def plain(obj: Tensor, alpha: Tensor, xy: Tensor, g: torch.Generator) -> Tensor:
    batch = obj.shape[0]
    grey = 0.82 + 0.12 * _rand(g, batch, 1, 1, 1)
    tint = 0.03 * (_rand(g, batch, 3, 1, 1) - 0.5)
    return _over(grey + tint, obj, alpha)


def van_gogh(obj: Tensor, alpha: Tensor, xy: Tensor, g: torch.Generator) -> Tensor:
    batch = obj.shape[0]
    x, y = xy[0], xy[1]
    cx, cy = (_rand(g, batch, 1, 1) * 1.2 - 0.6), (_rand(g, batch, 1, 1) * 1.2 - 0.6)
    r = torch.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    theta = torch.atan2(y - cy, x - cx)
    phase = _rand(g, batch, 1, 1) * 2 * math.pi
    swirl = torch.sin(9.0 * r + 3.0 * theta + phase)  # big spirals
    strokes = torch.sin(28.0 * r - 2.0 * theta + 2 * phase)  # short strokes along them
    deep, light, gold = _rgb(0.08, 0.15, 0.45), _rgb(0.45, 0.65, 0.95), _rgb(0.95, 0.82, 0.25)
    s = ((swirl + 1) / 2).unsqueeze(1)
    ground = deep * (1 - s) + light * s
    gold_mask = ((swirl > 0.6) & (strokes > 0.0)).float().unsqueeze(1)
    ground = ground * (1 - gold_mask) + gold * gold_mask
    ground = ground * (0.85 + 0.15 * strokes.unsqueeze(1))
    shade = 0.78 + 0.22 * (strokes.unsqueeze(1) > 0).float()  # streaked object
    return _over(ground, obj * shade, alpha)


def picasso(obj: Tensor, alpha: Tensor, xy: Tensor, g: torch.Generator) -> Tensor:
    batch = obj.shape[0]
    n_lines = 3
    angle = _rand(g, batch, n_lines, 1, 1) * math.pi
    offset = _rand(g, batch, n_lines, 1, 1) * 1.2 - 0.6
    side = torch.cos(angle) * xy[0] + torch.sin(angle) * xy[1] - offset  # [B, n_lines, H, W]
    bits = (side > 0).long()
    region = (bits * (2 ** torch.arange(n_lines)).view(1, -1, 1, 1)).sum(1)  # [B, H, W] in [0, 8)
    palette = torch.tensor(
        [
            [0.72, 0.55, 0.30],
            [0.45, 0.32, 0.20],
            [0.55, 0.60, 0.62],
            [0.78, 0.70, 0.52],
            [0.35, 0.42, 0.48],
            [0.62, 0.45, 0.35],
            [0.50, 0.50, 0.35],
            [0.82, 0.62, 0.42],
        ]
    )
    shift = (_rand(g, batch, 1, 1) * 8).long()
    ground = palette[(region + shift) % 8].permute(0, 3, 1, 2)
    shade = torch.where((region % 2 == 0).unsqueeze(1), 1.0, 0.72)  # faceted object
    edges = (side.abs() < 0.035).any(1, keepdim=True).float()
    img = _over(ground, obj * shade, alpha)
    return img * (1 - edges) + 0.05 * edges


def monet(obj: Tensor, alpha: Tensor, xy: Tensor, g: torch.Generator) -> Tensor:
    batch = obj.shape[0]
    size = tuple(obj.shape[-2:])
    pastels = torch.tensor([[0.70, 0.85, 0.70], [0.80, 0.75, 0.90], [0.70, 0.82, 0.92], [0.90, 0.85, 0.70]])
    base = pastels[(_rand(g, batch) * 4).long()].view(batch, 3, 1, 1)
    ground = base * (0.9 + 0.2 * _smooth_noise(g, batch, 4, size))
    dab_colour = pastels[(_rand(g, batch) * 4).long()].view(batch, 3, 1, 1) * 1.08
    dabs = (_rand(g, batch, 1, *size) > 0.72).float()  # dense soft dabs
    img = _over(ground, obj, alpha)
    img = img * (1 - 0.45 * dabs) + 0.45 * dabs * dab_colour
    blur = torch.ones(3, 1, 3, 3) / 9
    return F.conv2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), blur, groups=3)


def andy_warhol(obj: Tensor, alpha: Tensor, xy: Tensor, g: torch.Generator) -> Tensor:
    batch = obj.shape[0]
    grounds = torch.tensor([[1.0, 0.25, 0.65], [0.15, 0.90, 0.95], [0.65, 1.0, 0.20]])
    ground = grounds[(_rand(g, batch) * 3).long()].view(batch, 3, 1, 1)
    h, w = obj.shape[-2:]
    period = 4
    dots = ((torch.arange(h) % period == 1).view(h, 1) & (torch.arange(w) % period == 1).view(1, w)).float()
    ground = ground * (1 - 0.55 * dots)
    outline = _dilate(alpha, 2)
    img = ground * (1 - outline)  # black outline, then the object
    saturated = ((obj - 0.5 * alpha) * 1.3 + 0.5 * alpha).clamp(min=0)  # punchier colours
    return _over(img, torch.minimum(saturated, alpha), alpha)


def rembrandt(obj: Tensor, alpha: Tensor, xy: Tensor, g: torch.Generator) -> Tensor:
    batch = obj.shape[0]
    ground = _rgb(0.16, 0.10, 0.05) * (0.7 + 0.6 * _smooth_noise(g, batch, 3, tuple(obj.shape[-2:])))
    mass = alpha.sum((2, 3), keepdim=True).clamp(min=1e-6)
    cx = (alpha * xy[0]).sum((2, 3), keepdim=True) / mass  # light falls on the object
    cy = (alpha * xy[1]).sum((2, 3), keepdim=True) / mass
    r2 = (xy[0] - cx) ** 2 + (xy[1] - cy) ** 2
    glow = _rgb(0.55, 0.38, 0.15) * torch.exp(-r2 / 0.25)
    img = _over(ground + glow, obj, alpha)
    return img * (1.05 - 0.75 * r2.clamp(max=1.0))


def kelly_mckernan(obj: Tensor, alpha: Tensor, xy: Tensor, g: torch.Generator) -> Tensor:
    batch = obj.shape[0]
    t = ((xy[1] + 1) / 2).expand(batch, 1, -1, -1)
    teal, peach = _rgb(0.45, 0.75, 0.72), _rgb(0.98, 0.78, 0.65)
    ground = teal * (1 - t) + peach * t
    blotch = _smooth_noise(g, batch, 5, tuple(obj.shape[-2:]))
    ground = ground * (0.88 + 0.24 * blotch)
    outline = (_dilate(alpha, 1) - alpha).clamp(0, 1)
    washed = obj * 0.85 + 0.12 * alpha  # watercolour: a little lighter
    img = _over(ground, washed, alpha)
    return img * (1 - outline) + 0.12 * outline


STYLE_FNS: dict[str, StyleFn] = {
    "van gogh": van_gogh,
    "picasso": picasso,
    "monet": monet,
    "andy warhol": andy_warhol,
    "rembrandt": rembrandt,
    "kelly mckernan": kelly_mckernan,
    NO_STYLE: plain,
}
assert set(STYLE_FNS) == set(STYLES) | {NO_STYLE}, "every style of the vocabulary needs one treatment"
