"""``erasekit.erase``: what it accepts and how it refuses the rest."""

from __future__ import annotations

import logging

import pytest

import erasekit
from erasekit.errors import ConfigError, UnknownMethodError


def test_one_string_is_one_name(tiny_pipe):
    edit = erasekit.erase(tiny_pipe, "van gogh", preserve="monet")
    assert edit.concepts == ["van gogh"] and edit.preserve == ["monet"]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (dict(concepts=None), ConfigError, "concepts must be a string or a list"),
        (dict(concepts=[]), ConfigError, "No concepts given"),
        (dict(concepts=["dog", 3]), ConfigError, "must be strings"),
        (dict(method=None), ConfigError, "method must be a method name"),
        (dict(method="rcee"), UnknownMethodError, "Did you mean 'rece'"),
        (dict(preserve=["dog"]), ConfigError, r"\['dog'\] is both erased and preserved"),
        (dict(settings="nope", method="rece"), ConfigError, "has no settings 'nope'"),
        (
            dict(preserve_prompts=["a cat", "a Dog on grass"]),
            ConfigError,
            "entry 'a Dog on grass' names the erased concept",
        ),
        (dict(preserve_prompts=[3]), ConfigError, "preserve_prompts must be strings"),
        (dict(kinds={"cat": "object"}), ConfigError, r"kind is given for 'cat', which is not erased"),
        (dict(kinds={"dog": ""}), ConfigError, "Unknown kind '' for 'dog'"),
        (dict(kinds={"dog": "stile"}), ConfigError, "Unknown kind 'stile' for 'dog'.*Did you mean 'style'"),
    ],
)
def test_bad_arguments(tiny_pipe, kwargs, error, words):
    args = {"concepts": ["dog"], **kwargs}
    with pytest.raises(error, match=words):
        erasekit.erase(tiny_pipe, args.pop("concepts"), **args)


def test_preserve_prompts_go_with_the_edit_and_a_word_inside_another_is_no_clash(tiny_pipe):
    kept = ["a hotdog stand", "a cat"]  # "dog" only inside "hotdog"
    edit = erasekit.erase(tiny_pipe, "dog", "uce", preserve="cat", preserve_prompts=kept)
    assert edit.info["preserve_prompts"] == kept  # recorded with the edit, whichever method got them
    assert "preserve_prompts" not in erasekit.erase(tiny_pipe, "dog", "uce").info
    assert erasekit.erase(tiny_pipe, "dog", "uce", kinds={"dog": "object"}).info["kinds"] == {"dog": "object"}


def test_preset_is_the_deprecated_name_of_settings(tiny_pipe):
    with pytest.warns(DeprecationWarning, match="settings="):
        edit = erasekit.erase(tiny_pipe, ["dog"], method="rece", preset="reference-style")
    assert edit.info["settings"] == "reference-style" and edit.config["reg_lamb"] == 1e-3


def test_a_concept_with_characters_the_tokenizer_cannot_read_warns(caplog):
    from types import SimpleNamespace

    from torch import nn

    from erasekit.text import TextEncoder
    from erasekit.worlds.embedded.text import load_tokenizer

    text = TextEncoder(SimpleNamespace(tokenizer=load_tokenizer(), text_encoder=nn.Identity()))  # BERT's vocabulary
    with caplog.at_level(logging.WARNING, logger="erasekit.text"):
        for fine in ("van gogh", "café", "Van Gogh", "e\u0301lan"):  # accents are normalised, not lost
            text.check_concept(fine)
        assert caplog.text == ""
        text.check_concept("van gogh 🎨")
        assert "'🎨' (unknown: [UNK])" in caplog.text and "spell the concept in words" in caplog.text
        caplog.clear()
        text.check_concept("dog\u200d")
        assert "(dropped)" in caplog.text


def test_erase_warns_about_an_emoji_concept(caplog):
    pipe = erasekit.load_pipeline("embedded")  # MiniLM's vocabulary has no emoji (CLIP's reads them as bytes)
    with caplog.at_level(logging.WARNING, logger="erasekit.text"):
        erasekit.erase(pipe, ["dog"])
        assert caplog.text == ""
        erasekit.erase(pipe, ["🐶"])
    assert "'🐶' (unknown: [UNK])" in caplog.text
