from __future__ import annotations

import csv

import pytest

from erasekit.errors import ConfigError, OutputExistsError
from erasekit.worlds import embedded
from erasekit.worlds.embedded.captions import all_captions
from erasekit.worlds.embedded.vocabulary import STYLES


def test_concepts_by_kind():
    kinds = embedded.concepts()
    assert set(kinds) == {"object", "color", "style", "unsafe"}
    assert kinds["unsafe"] == ["nudity"]
    assert len(kinds["object"]) >= 10 and len(kinds["color"]) >= 6 and len(kinds["style"]) >= 6
    assert {"church", "parachute", "garbage truck", "tench", "car", "dog"} <= set(kinds["object"])
    assert {"van gogh", "picasso", "monet", "andy warhol", "rembrandt", "kelly mckernan"} <= set(kinds["style"])


@pytest.mark.parametrize("concept", ["van gogh", "car", "red", "nudity"])
def test_suites_are_deterministic_and_held_out(concept):
    suite = embedded.prompt_suite(concept, n=12)
    assert suite == embedded.prompt_suite(concept, n=12)
    assert set(suite) == {"target", "generality", "specificity"}
    assert all(len(prompts) == 12 for prompts in suite.values())
    train = set(all_captions("train"))
    assert all(p in train for p in suite["target"] + suite["specificity"])
    assert not any(p in train for p in suite["generality"])


def test_style_specificity_names_other_artists_only():
    suite = embedded.prompt_suite("van gogh", n=24)
    assert not any("gogh" in p for p in suite["specificity"])
    assert sum(any(n in p for n in STYLES["picasso"].train) for p in suite["specificity"]) > 0


def test_csv(tmp_path):
    path = embedded.write_prompt_suite_csv("monet", tmp_path / "monet.csv", n=5)
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 15 and set(rows[0]) == {"group", "prompt", "concept"}
    with pytest.raises(OutputExistsError):
        embedded.write_prompt_suite_csv("monet", path)
    embedded.write_prompt_suite_csv("monet", path, n=2, overwrite=True)


@pytest.mark.parametrize("concept, n", [("unicorn", 5), ("car", 0)])
def test_bad_suite_requests(concept, n):
    with pytest.raises(ConfigError):
        embedded.prompt_suite(concept, n=n)
