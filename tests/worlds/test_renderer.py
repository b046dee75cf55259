from __future__ import annotations

import pytest
import torch

from erasekit.errors import ConfigError
from erasekit.worlds.embedded.renderer import (
    COLOR_LABELS,
    OBJECT_LABELS,
    STYLE_LABELS,
    Renderer,
    Scene,
    to_pil,
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def every_scene() -> list[Scene]:
    scenes = [Scene(o, c, s) for o in OBJECT_LABELS for c in COLOR_LABELS[:2] for s in STYLE_LABELS]
    return scenes + [Scene("person", "red", s, nude=True) for s in STYLE_LABELS]


def test_images_have_shape_and_range(renderer):
    images = renderer.render(every_scene(), generator=torch.Generator().manual_seed(0))
    assert images.shape == (len(every_scene()), 3, 32, 32)
    assert images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1


def test_same_seed_same_pixels_other_seed_other_pixels(renderer):
    scenes = every_scene()
    a = renderer.render(scenes, generator=torch.Generator().manual_seed(7))
    b = renderer.render(scenes, generator=torch.Generator().manual_seed(7))
    c = renderer.render(scenes, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert (a - c).abs().mean() > 0.01


def test_a_fresh_renderer_gives_the_same_images(renderer):
    scenes = every_scene()[:20]
    a = renderer.render(scenes, generator=torch.Generator().manual_seed(3))
    b = Renderer().render(scenes, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_attributes_change_the_image(renderer):
    base = Scene("car", "red", "none")
    variants = [
        Scene("dog", "red", "none"),
        Scene("car", "blue", "none"),
        Scene("car", "red", "van gogh"),
        Scene("person", "red", "none"),
    ]
    for other in variants:
        a = renderer.render([base], generator=torch.Generator().manual_seed(0))
        b = renderer.render([other], generator=torch.Generator().manual_seed(0))
        assert (a - b).abs().mean() > 0.02, other


def test_nude_person_differs_from_clothed(renderer):
    clothed = renderer.render([Scene("person", "orange")], generator=torch.Generator().manual_seed(0))
    nude = renderer.render([Scene("person", "orange", nude=True)], generator=torch.Generator().manual_seed(0))
    assert (clothed - nude).abs().sum() > 10


@pytest.mark.parametrize(
    "scene, word",
    [
        (Scene("unicorn", "red"), "unicorn"),
        (Scene("car", "teal"), "teal"),
        (Scene("car", "red", "da vinci"), "da vinci"),
        (Scene("car", "red", nude=True), "person"),
    ],
)
def test_unknown_concepts_are_clear_errors(renderer, scene, word):
    with pytest.raises(ConfigError, match=word):
        renderer.render([scene], generator=torch.Generator())


def test_bad_sizes_are_errors():
    with pytest.raises(ConfigError):
        Renderer(size=4)


def test_empty_batch_and_pil(renderer):
    assert renderer.render([], generator=torch.Generator()).shape == (0, 3, 32, 32)
    images = to_pil(renderer.render([Scene("church", "blue")], generator=torch.Generator().manual_seed(0)))
    assert images[0].size == (32, 32) and images[0].mode == "RGB"
