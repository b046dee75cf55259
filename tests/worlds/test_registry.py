from __future__ import annotations

import pytest

from erasekit import worlds
from erasekit.errors import ConfigError, MissingWeightsError, UnknownWorldError


def test_the_shipped_worlds():
    assert worlds.available() == ["embedded", "tiny-sd1", "tiny-sd2", "tiny-sdxl"]
    embedded = worlds.get("embedded")
    assert set(embedded.concepts()) == {"object", "color", "style", "unsafe"}
    assert embedded.concept_kind("van gogh") == "style" and embedded.default_prompts("church", n=2)
    assert worlds.sampling("embedded") == (embedded.steps, embedded.guidance) and worlds.sampling("x/y") == (50, 7.5)


def test_a_tiny_world_has_a_pipeline_and_nothing_to_judge_with():
    tiny = worlds.get("tiny-sd1")
    assert type(tiny.load_pipeline()).__name__ == "StableDiffusionPipeline"
    assert tiny.concepts() == {} and tiny.default_prompts("a cat") == ["a cat"]
    with pytest.raises(ConfigError, match="no judge"):
        tiny.load_judge()


def test_names_paths_and_typos(tmp_path):
    with pytest.raises(UnknownWorldError, match="Did you mean 'embedded'"):
        worlds.load_pipeline("embeded")
    with pytest.raises(MissingWeightsError, match="never downloads"):
        worlds.load_pipeline(str(tmp_path / "sd-v1-4"))  # a path: looked for locally, not a world
    assert worlds.find("org/model") is None
