from __future__ import annotations

import random

import pytest

from erasekit.errors import ConfigError
from erasekit.worlds.embedded.captions import TEMPLATES, all_captions, sample_captions, write_caption
from erasekit.worlds.embedded.renderer import Scene
from erasekit.worlds.embedded.vocabulary import COLORS, OBJECTS, STYLES, concept_kind


def test_sampling_is_seeded():
    assert sample_captions(200, seed=1) == sample_captions(200, seed=1)
    assert sample_captions(200, seed=1) != sample_captions(200, seed=2)


def test_every_sampled_caption_is_enumerated():
    enumerated = set(all_captions("train"))
    assert all(c.text in enumerated for c in sample_captions(3000, seed=0))


def test_heldout_templates_and_names_never_reach_training():
    train = set(all_captions("train"))
    heldout = set(all_captions("heldout"))
    assert not train & heldout
    for table in (OBJECTS, COLORS, STYLES):
        for names in table.values():
            assert not set(names.train) & set(names.heldout)
    assert not set(TEMPLATES["train"]["ocs"]) & set(TEMPLATES["heldout"]["ocs"])


def test_captions_name_what_the_scene_shows():
    for caption in sample_captions(500, seed=3):
        scene = caption.scene
        if scene.nude:
            assert scene.object == "person"
        if scene.style != "none":
            assert any(name in caption.text for name in STYLES[scene.style].train)


def test_caption_form_must_fit_the_scene():
    with pytest.raises(ConfigError, match="does not fit"):
        write_caption("ocs", Scene("car", "red"), random.Random(0))
    with pytest.raises(ConfigError, match="unknown caption form"):
        write_caption("xyz", Scene("car", "red"), random.Random(0))
    with pytest.raises(ConfigError, match="split"):
        all_captions("test")  # type: ignore[arg-type]


def test_concept_kinds():
    assert concept_kind("car") == "object" and concept_kind("van gogh") == "style"
    assert concept_kind("red") == "color" and concept_kind("nudity") == "unsafe"
    with pytest.raises(ConfigError, match="known"):
        concept_kind("unicorn")
