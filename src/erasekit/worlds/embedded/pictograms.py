"""Pictograms of the embedded world's objects, drawn once as soft masks.

Each object is a few filled primitives in a unit square (x right, y down), drawn with PIL at a high
resolution into three layers that the renderer paints in order:

- ``fill``: the body, painted in the object's colour (or skin tone for an unclothed person);
- ``skin``: head and hands of a person, always skin tone;
- ``detail``: windows, wheels, eyes, lines, painted dark.

The shapes are deliberately distinctive in silhouette so that 32x32 images tell them apart.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw

from .vocabulary import OBJECTS

LAYERS = ("fill", "skin", "detail")

Box = tuple[float, float, float, float]
Point = tuple[float, float]


class _Canvas:
    """Three PIL layers in unit coordinates."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images = {name: Image.new("L", (size, size), 0) for name in LAYERS}
        self.draws = {name: ImageDraw.Draw(img) for name, img in self.images.items()}

    def _xy(self, points: list[Point]) -> list[tuple[float, float]]:
        return [(x * self.size, y * self.size) for x, y in points]

    def rect(self, layer: str, box: Box) -> None:
        x0, y0, x1, y1 = box
        self.draws[layer].rectangle(self._xy([(x0, y0), (x1, y1)]), fill=255)

    def ellipse(self, layer: str, box: Box) -> None:
        x0, y0, x1, y1 = box
        self.draws[layer].ellipse(self._xy([(x0, y0), (x1, y1)]), fill=255)

    def poly(self, layer: str, points: list[Point]) -> None:
        self.draws[layer].polygon(self._xy(points), fill=255)

    def line(self, layer: str, points: list[Point], width: float) -> None:
        self.draws[layer].line(self._xy(points), fill=255, width=max(1, round(width * self.size)))

    def arc(self, layer: str, box: Box, start: float, end: float, width: float) -> None:
        x0, y0, x1, y1 = box
        self.draws[layer].arc(
            self._xy([(x0, y0), (x1, y1)]), start, end, fill=255, width=max(1, round(width * self.size))
        )

    def erase(self, layer: str, box: Box) -> None:
        x0, y0, x1, y1 = box
        self.draws[layer].ellipse(self._xy([(x0, y0), (x1, y1)]), fill=0)

    def tensor(self) -> torch.Tensor:
        """Returns the layers as a float tensor [3, size, size] in [0, 1]; details win over fill."""
        arrays = [np.asarray(self.images[name], dtype=np.float32) / 255.0 for name in LAYERS]
        return torch.from_numpy(np.stack(arrays))


def _church(c: _Canvas) -> None:
    c.rect("fill", (0.22, 0.50, 0.78, 0.92))  # nave
    c.poly("fill", [(0.16, 0.52), (0.50, 0.28), (0.84, 0.52)])  # roof
    c.rect("fill", (0.42, 0.14, 0.58, 0.40))  # steeple
    c.poly("fill", [(0.40, 0.16), (0.50, 0.02), (0.60, 0.16)])
    c.rect("detail", (0.43, 0.70, 0.57, 0.92))  # door
    c.ellipse("detail", (0.44, 0.56, 0.56, 0.66))  # rose window
    c.line("detail", [(0.50, 0.19), (0.50, 0.35)], 0.04)  # cross on the tower
    c.line("detail", [(0.45, 0.24), (0.55, 0.24)], 0.04)


def _parachute(c: _Canvas) -> None:
    c.ellipse("fill", (0.10, 0.08, 0.90, 0.62))
    c.erase("fill", (0.10, 0.38, 0.90, 0.80))  # a dome, flat underneath
    c.rect("fill", (0.10, 0.34, 0.90, 0.36))
    for x in (0.22, 0.38, 0.62, 0.78):  # canopy seams
        c.line("detail", [(0.50, 0.10), (x, 0.36)], 0.02)
    for x in (0.12, 0.35, 0.65, 0.88):  # suspension lines
        c.line("detail", [(x, 0.36), (0.50, 0.78)], 0.02)
    c.rect("detail", (0.43, 0.76, 0.57, 0.94))  # payload


def _garbage_truck(c: _Canvas) -> None:
    c.rect("fill", (0.06, 0.24, 0.66, 0.74))  # tall container
    c.rect("fill", (0.66, 0.42, 0.94, 0.74))  # cab
    c.rect("detail", (0.72, 0.46, 0.88, 0.58))  # cab window
    for x in (0.10, 0.24, 0.38, 0.52):  # container ribs
        c.line("detail", [(x + 0.05, 0.30), (x + 0.05, 0.66)], 0.025)
    for x0 in (0.10, 0.42, 0.72):  # three wheels
        c.ellipse("detail", (x0, 0.66, x0 + 0.18, 0.84))


def _tench(c: _Canvas) -> None:
    c.ellipse("fill", (0.08, 0.32, 0.74, 0.70))  # body
    c.poly("fill", [(0.66, 0.51), (0.96, 0.28), (0.90, 0.51), (0.96, 0.74)])  # tail
    c.poly("fill", [(0.30, 0.36), (0.42, 0.20), (0.54, 0.36)])  # dorsal fin
    c.poly("fill", [(0.36, 0.66), (0.44, 0.80), (0.52, 0.66)])  # belly fin
    c.ellipse("detail", (0.17, 0.42, 0.25, 0.50))  # eye
    c.arc("detail", (0.22, 0.36, 0.40, 0.66), 300, 60, 0.025)  # gill


def _car(c: _Canvas) -> None:
    c.rect("fill", (0.04, 0.50, 0.96, 0.72))  # low body
    c.poly("fill", [(0.24, 0.50), (0.34, 0.30), (0.68, 0.30), (0.80, 0.50)])  # cabin
    c.poly("detail", [(0.30, 0.49), (0.37, 0.35), (0.49, 0.35), (0.49, 0.49)])  # windows
    c.poly("detail", [(0.53, 0.49), (0.53, 0.35), (0.65, 0.35), (0.73, 0.49)])
    c.ellipse("detail", (0.14, 0.62, 0.34, 0.82))  # wheels
    c.ellipse("detail", (0.66, 0.62, 0.86, 0.82))


def _dog(c: _Canvas) -> None:
    c.ellipse("fill", (0.20, 0.40, 0.76, 0.66))  # body
    c.ellipse("fill", (0.62, 0.20, 0.90, 0.46))  # head
    c.poly("fill", [(0.84, 0.30), (0.98, 0.36), (0.86, 0.42)])  # snout
    c.poly("fill", [(0.64, 0.24), (0.66, 0.06), (0.74, 0.22)])  # ear
    for x in (0.24, 0.36, 0.56, 0.66):  # legs
        c.rect("fill", (x, 0.56, x + 0.07, 0.88))
    c.line("fill", [(0.22, 0.48), (0.06, 0.26)], 0.05)  # tail up
    c.ellipse("detail", (0.74, 0.27, 0.80, 0.33))  # eye
    c.ellipse("detail", (0.94, 0.33, 0.99, 0.38))  # nose


def _golf_ball(c: _Canvas) -> None:
    c.ellipse("fill", (0.20, 0.08, 0.80, 0.68))  # ball
    for i in range(3):  # dimples on a grid
        for j in range(3):
            x, y = 0.34 + 0.13 * i, 0.22 + 0.13 * j
            c.ellipse("detail", (x - 0.03, y - 0.03, x + 0.03, y + 0.03))
    c.poly("detail", [(0.38, 0.70), (0.62, 0.70), (0.53, 0.78), (0.53, 0.94), (0.47, 0.94), (0.47, 0.78)])


def _french_horn(c: _Canvas) -> None:
    c.ellipse("fill", (0.10, 0.14, 0.70, 0.74))  # coiled tubing: a thick ring
    c.erase("fill", (0.24, 0.28, 0.56, 0.60))
    c.poly("fill", [(0.56, 0.52), (0.96, 0.70), (0.96, 0.96), (0.62, 0.66)])  # flared bell
    c.line("fill", [(0.20, 0.28), (0.04, 0.06)], 0.05)  # lead pipe
    c.ellipse("detail", (0.80, 0.74, 0.94, 0.92))  # inside of the bell
    c.ellipse("detail", (0.33, 0.37, 0.47, 0.51))  # valve cluster


def _cassette_player(c: _Canvas) -> None:
    c.rect("fill", (0.06, 0.22, 0.94, 0.80))  # box
    c.rect("detail", (0.18, 0.32, 0.82, 0.56))  # cassette window
    c.ellipse("fill", (0.24, 0.36, 0.40, 0.52))  # two reels inside it
    c.ellipse("fill", (0.60, 0.36, 0.76, 0.52))
    for i in range(5):  # buttons
        c.rect("detail", (0.14 + 0.15 * i, 0.64, 0.24 + 0.15 * i, 0.74))
    c.rect("fill", (0.70, 0.10, 0.76, 0.22))  # antenna stub


def _gas_pump(c: _Canvas) -> None:
    c.rect("fill", (0.22, 0.14, 0.62, 0.90))  # tall column
    c.rect("fill", (0.16, 0.86, 0.68, 0.96))  # base
    c.rect("detail", (0.28, 0.22, 0.56, 0.40))  # display
    c.arc("detail", (0.50, 0.40, 0.90, 0.84), 270, 90, 0.04)  # hose
    c.rect("detail", (0.64, 0.30, 0.80, 0.40))  # nozzle
    c.rect("detail", (0.30, 0.50, 0.54, 0.56))


def _person(c: _Canvas) -> None:
    c.ellipse("skin", (0.40, 0.04, 0.60, 0.24))  # head
    c.rect("fill", (0.36, 0.26, 0.64, 0.58))  # torso
    c.line("fill", [(0.37, 0.29), (0.18, 0.56)], 0.08)  # arms
    c.line("fill", [(0.63, 0.29), (0.82, 0.56)], 0.08)
    c.ellipse("skin", (0.14, 0.52, 0.23, 0.61))  # hands
    c.ellipse("skin", (0.77, 0.52, 0.86, 0.61))
    c.rect("fill", (0.37, 0.56, 0.48, 0.96))  # legs
    c.rect("fill", (0.52, 0.56, 0.63, 0.96))
    c.ellipse("detail", (0.44, 0.11, 0.48, 0.15))  # eyes
    c.ellipse("detail", (0.52, 0.11, 0.56, 0.15))


_DRAW: dict[str, Callable[[_Canvas], None]] = {
    "church": _church,
    "parachute": _parachute,
    "garbage truck": _garbage_truck,
    "tench": _tench,
    "car": _car,
    "dog": _dog,
    "golf ball": _golf_ball,
    "french horn": _french_horn,
    "cassette player": _cassette_player,
    "gas pump": _gas_pump,
    "person": _person,
}
assert list(_DRAW) == list(OBJECTS), "every object of the vocabulary needs exactly one pictogram, in order"


def draw_pictograms(size: int = 64) -> torch.Tensor:
    """Returns the masks of every object, in ``OBJECTS`` order.

    Args:
        size: side of the square canvas in pixels.

    Returns:
        [n_objects, 3, size, size] float masks in [0, 1], layers in ``LAYERS`` order.
    """
    masks = []
    for name in OBJECTS:
        canvas = _Canvas(size)
        _DRAW[name](canvas)
        masks.append(canvas.tensor())
    return torch.stack(masks)
