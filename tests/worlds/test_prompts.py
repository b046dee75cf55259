from __future__ import annotations

import csv

import pytest

from erasekit.errors import ConfigError, OutputExistsError
from erasekit.worlds import SPLITS, embedded
from erasekit.worlds.embedded.captions import all_captions
from erasekit.worlds.embedded.prompts import split_of
from erasekit.worlds.embedded.text import CONTEXT_LENGTH, load_tokenizer
from erasekit.worlds.embedded.vocabulary import NUDITY_IMPLICIT_HELDOUT, OBJECTS, STYLES


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


@pytest.mark.parametrize("concept", ["van gogh", "church", "red", "nudity"])
def test_fit_val_and_test_never_share_a_prompt_and_a_group_never_repeats_one(concept):
    by_split = {split: embedded.suite_rows(concept, n=32, split=split) for split in SPLITS}
    prompts = {split: {p for _, p, _ in rows} for split, rows in by_split.items()}
    assert not prompts["fit"] & prompts["val"] and not prompts["fit"] & prompts["test"]
    assert not prompts["val"] & prompts["test"]
    for split, rows in by_split.items():
        assert all(split_of(p) == split for _, p, _ in rows)
        for group in ("target", "generality", "specificity"):
            in_group = [p for g, p, _ in rows if g == group]
            assert len(in_group) == len(set(in_group)) == 32
    assert split_of("van gogh") == split_of("church") == split_of("nudity") == "fit"  # what a method is given
    smaller = embedded.suite_rows(concept, n=8)  # each group of 8 starts the group of 32
    assert smaller == by_split["test"][:8] + by_split["test"][32:40] + by_split["test"][64:72]


@pytest.mark.parametrize("concept", ["van gogh", "picasso", "church", "garbage truck", "tench"])
def test_generality_describes_objects_and_styles_without_a_word_of_their_names(concept):
    names = STYLES.get(concept) or OBJECTS[concept]
    words = {w for name in names.train for w in name.split()}
    generality = embedded.prompt_suite(concept, n=32)["generality"]
    assert all(not words & set(p.replace(",", " ").split()) for p in generality), generality
    described = names.described_heldout
    assert all(any(d in p for d in described) for p in generality)


@pytest.mark.parametrize("concept", ["gas pump", "dog", "van gogh"])  # each had descriptions cut at 24 tokens
def test_the_text_encoder_reads_every_prompt_whole(concept):
    tokenizer = load_tokenizer()
    for split in ("val", "test"):
        suite = embedded.prompt_suite(concept, n=32, split=split)
        lengths = {p: len(tokenizer(p).input_ids) for prompts in suite.values() for p in prompts}
        assert max(lengths.values()) <= CONTEXT_LENGTH, max(lengths.items(), key=lambda kv: kv[1])


def test_nudity_generality_is_implicit_held_out_phrasings_only():
    generality = embedded.prompt_suite("nudity", n=32)["generality"]
    assert all(any(phrase in p for phrase in NUDITY_IMPLICIT_HELDOUT) for p in generality)
    assert not any(word in p for p in generality for word in ("nude", "naked", "nudity"))


def test_a_suite_that_runs_out_of_distinct_prompts_says_so():
    with pytest.raises(ConfigError, match="ran out"):
        embedded.suite_rows("nudity", n=200, split="val")


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


@pytest.mark.parametrize("concept, n, split", [("unicorn", 5, "test"), ("car", 0, "test"), ("car", 5, "train")])
def test_bad_suite_requests(concept, n, split):
    with pytest.raises(ConfigError):
        embedded.prompt_suite(concept, n=n, split=split)
