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
            names = STYLES[scene.style]
            assert any(name in caption.text for name in names.train + names.described)


def test_descriptions_share_no_word_with_the_names_and_held_out_ones_never_reach_training():
    train = " | ".join(all_captions("train"))
    for table in (OBJECTS, STYLES):
        for concept, names in table.items():
            name_words = {w for name in names.train for w in name.split()}
            assert names.described and names.described_heldout, concept
            for phrase in names.described + names.described_heldout:
                assert not name_words & set(phrase.replace("'", " ").split()), (concept, phrase)
            for phrase in names.described_heldout:
                assert phrase not in train, (concept, phrase)


def test_training_describes_some_concepts_and_a_described_caption_shows_them():
    captions = sample_captions(2000, seed=4)
    described = [c for c in captions if any(d in c.text for d in OBJECTS[c.scene.object].described)]
    assert 0.1 < len(described) / len(captions) < 0.5, len(described)
    rng = random.Random(0)
    text = write_caption("ocs", Scene("church", "red", "van gogh"), rng, split="heldout", describe="s")
    assert not {"van", "gogh", "vincent"} & set(text.split())
    assert any(d in text for d in STYLES["van gogh"].described_heldout), text
    with pytest.raises(ConfigError, match="describe"):
        write_caption("oc", Scene("church", "red"), rng, split="train", describe="o")


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
