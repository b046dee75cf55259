from __future__ import annotations

import pytest
import torch

from erasekit.errors import ConfigError
from erasekit.worlds.embedded.masks import _scenes, concept_regions, render_with_masks
from erasekit.worlds.embedded.model import from_model_space
from erasekit.worlds.embedded.pipeline import EmbeddedPipeline
from erasekit.worlds.embedded.renderer import OBJECT_LABELS, STYLE_LABELS, Renderer, SceneBatch


def plain_scenes(n: int) -> SceneBatch:
    """Objects on the plain ground (a flat grey per image), so the background is known exactly."""
    obj = torch.arange(n) % len(OBJECT_LABELS)
    return SceneBatch(
        obj, torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.bool)
    )


def test_the_mask_is_the_object_the_render_drew():
    assert STYLE_LABELS[0] == "none"
    images, alpha = render_with_masks(Renderer(), plain_scenes(11), generator=torch.Generator().manual_seed(0))
    assert alpha.shape == (11, 32, 32) and 0 <= alpha.min() and alpha.max() <= 1
    for image, a in zip(images, alpha):
        ground = image[:, a == 0]  # [3, pixels]: outside the object, one flat colour
        assert ground.shape[1] > 50 and (ground - ground[:, :1]).abs().max() < 1e-6
        inside = image[:, a > 0.99]  # inside: the object's paint, far from the ground
        assert inside.shape[1] > 10 and (inside - ground[:, :1]).abs().amax(0).min() > 0.05


def test_regions_by_kind_are_deterministic():
    x0, masks = concept_regions("parachute", 4, generator=torch.Generator().manual_seed(3))
    again, masks2 = concept_regions("parachute", 4, generator=torch.Generator().manual_seed(3))
    assert x0.shape == (4, 12, 16, 16) and masks.shape == (4, 32, 32)
    assert torch.equal(x0, again) and torch.equal(masks, masks2)
    assert 0.02 < masks.mean() < 0.9  # a region, not the whole image
    assert from_model_space(x0).shape == (4, 3, 32, 32)
    _, style = concept_regions("van gogh", 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(style, torch.ones(2, 32, 32))  # a style covers the image
    batch = _scenes("nudity", 6, torch.Generator().manual_seed(0))
    assert batch.nude.all() and (batch.object == OBJECT_LABELS.index("person")).all()
    assert (_scenes("red", 6, torch.Generator().manual_seed(0)).color == 0).all()


def test_unknown_concept_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown concept"):
        concept_regions("a unicorn", 2, generator=torch.Generator().manual_seed(0))


def test_the_pipeline_exposes_concept_regions():
    x0, masks = EmbeddedPipeline.concept_regions(None, "church", 2, generator=torch.Generator().manual_seed(0))  # type: ignore[arg-type]
    assert x0.shape == (2, 12, 16, 16) and masks.shape == (2, 32, 32)
