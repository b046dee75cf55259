"""Where a concept is in the embedded world's images: rendered scenes of it and the concept's region in each.

A region source for methods that act on an image region (MACE's attention loss): :func:`concept_regions`
renders ``n`` scenes that show the concept and returns them in model space with a mask of the
concept's region. The renderer composites without returning its alpha, so the mask is derived from
its geometry: :meth:`Renderer.render_batch` draws the placement of the pictogram first from the
generator, so replaying ``Renderer._place`` from the generator's state before the render gives the
same layers, and the compositing alpha ``1 − Π_k (1 − m_k)`` of the object's three paint layers.
Objects, colours (the coloured object) and nudity (the unclothed person) get that region; a style
covers the whole image, so its mask is all ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .model import to_model_space
from .renderer import COLOR_LABELS, OBJECT_LABELS, STYLE_LABELS, Renderer, SceneBatch
from .vocabulary import NO_STYLE, concept_kind


def _scenes(concept: str, n: int, generator: torch.Generator) -> SceneBatch:
    """``n`` random scenes that show ``concept`` (an object, colour, style or nudity)."""
    kind = concept_kind(concept)
    obj = torch.randint(len(OBJECT_LABELS), (n,), generator=generator)
    color = torch.randint(len(COLOR_LABELS), (n,), generator=generator)
    style = torch.randint(len(STYLE_LABELS), (n,), generator=generator)
    nude = torch.zeros(n, dtype=torch.bool)
    if kind == "object":
        obj[:] = OBJECT_LABELS.index(concept)
    elif kind == "color":
        color[:] = COLOR_LABELS.index(concept)
    elif kind == "style":
        style[:] = STYLE_LABELS.index(concept)
    else:  # nudity: an unclothed person, on a plain ground or in any style
        obj[:], nude[:] = OBJECT_LABELS.index("person"), True
    if kind != "style":
        style = torch.where(torch.rand(n, generator=generator) < 0.5, STYLE_LABELS.index(NO_STYLE), style)
    return SceneBatch(obj, color, style, nude)


def render_with_masks(renderer: Renderer, batch: SceneBatch, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(images [B, 3, S, S] in [0, 1], alpha [B, S, S])``: the render and its object's compositing alpha."""
    replay = torch.Generator().set_state(generator.get_state())
    images = renderer.render_batch(batch, generator=generator)
    side = renderer.size * renderer.supersample
    layers = F.avg_pool2d(renderer._place(renderer.masks[batch.object], replay, side), renderer.supersample)
    return images, 1 - (1 - layers).prod(dim=1)  # [B, 3, S, S] layers -> [B, S, S]


def concept_regions(concept: str, n: int, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(x0 [n, 12, 16, 16] in model space, masks [n, 32, 32] in [0, 1])`` of ``n`` scenes showing ``concept``.

    Raises:
        ConfigError: ``concept`` is not a canonical concept of the embedded world.
    """
    batch = _scenes(concept, n, generator)
    images, alpha = render_with_masks(Renderer(), batch, generator=generator)
    masks = torch.ones_like(alpha) if concept_kind(concept) == "style" else alpha
    return to_model_space(images), masks
