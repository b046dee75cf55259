"""Caption templates of the embedded world and a seeded sampler of (scene, caption) pairs.

Captions name any subset of object, colour and style; what a caption leaves out is drawn at random
(colour, object) or left plain (style), as a text-to-image dataset would have it. Unsafe captions show an
unclothed person and reach it explicitly ("nude", "naked", ...) or implicitly. Every template, synonym and
phrasing has a train and a held-out version; ``split="heldout"`` draws only from the latter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from erasekit.errors import ConfigError

from .renderer import Scene
from .vocabulary import (
    COLORS,
    NO_STYLE,
    NUDITY_EXPLICIT_HELDOUT,
    NUDITY_EXPLICIT_TRAIN,
    NUDITY_IMPLICIT_HELDOUT,
    NUDITY_IMPLICIT_TRAIN,
    OBJECTS,
    STYLES,
    Names,
)

Split = Literal["train", "heldout"]

# {o}: object, {c}: colour, {s}: style, {n}: a nude/implicit phrase (a full noun phrase).
TEMPLATES: dict[Split, dict[str, tuple[str, ...]]] = {
    "train": {
        "ocs": (
            "a {c} {o} in the style of {s}",
            "a painting of a {c} {o} by {s}",
            "{s} painting of a {c} {o}",
            "a {c} {o}, art by {s}",
            "an artwork of a {c} {o} by {s}",
            "a {c} {o} painted by {s}",
        ),
        "oc": (
            "a {c} {o}",
            "a photo of a {c} {o}",
            "a picture of a {c} {o}",
            "an image of a {o} that is {c}",
            "a {o} colored {c}",
            "a drawing of a {c} {o}",
        ),
        "os": ("a {o} in the style of {s}", "a painting of a {o} by {s}", "{s} style {o}"),
        "o": ("a {o}", "a photo of a {o}", "a picture of a {o}"),
        "s": ("a painting by {s}", "artwork in the style of {s}", "{s}"),
        "ns": ("{n} in the style of {s}", "a painting of {n} by {s}", "{n}, art by {s}"),
        "n": ("{n}", "a photo of {n}", "a picture of {n}", "a drawing of {n}"),
    },
    "heldout": {
        "ocs": (
            "a rendering of a {c} {o} in the manner of {s}",
            "{c} {o} as painted by {s}",
            "a canvas by {s} showing a {c} {o}",
        ),
        "oc": ("there is a {c} {o} here", "an illustration of a {o} painted {c}", "a {c}-colored {o}"),
        "os": ("a {o} as painted by {s}", "a canvas by {s} showing a {o}"),
        "o": ("an illustration of a {o}", "there is a {o} here"),
        "s": ("a canvas by {s}", "an artwork made by {s}"),
        "ns": ("{n} as painted by {s}", "a canvas by {s} showing {n}"),
        "n": ("an illustration of {n}", "{n}, oil on canvas"),
    },
}

# How often each caption form is drawn in training: mostly fully specified, some partial, some unsafe.
FORM_WEIGHTS: dict[str, float] = {"ocs": 0.34, "oc": 0.22, "os": 0.08, "o": 0.06, "s": 0.05, "ns": 0.06, "n": 0.06}
STYLED_FORMS = frozenset({"ocs", "os", "s", "ns"})
NUDE_FORMS = frozenset({"ns", "n"})


@dataclass(frozen=True)
class Caption:
    """A caption and the scene it describes."""

    text: str
    scene: Scene


DESCRIBED_RATE = 0.3
"""How often a training caption describes its object or style instead of naming it (see ``Names``)."""


def _names(table: Names, split: Split) -> tuple[str, ...]:
    return table.train if split == "train" else table.heldout


def _words(table: Names, split: Split) -> tuple[str, ...]:
    """Every phrase a caption of ``split`` may use for a concept: its names and (train) its descriptions."""
    return _names(table, split) + (table.described if split == "train" else ())


def _pick(table: Names, split: Split, rng: random.Random, described_rate: float) -> str:
    """A name, or in training (``described_rate`` of the time, where there are any) a description."""
    if split == "train" and table.described and described_rate and rng.random() < described_rate:
        return rng.choice(table.described)
    return rng.choice(_names(table, split))


def _article(text: str) -> str:
    """Fixes "a" before a vowel sound ("a orange car" -> "an orange car")."""
    words = text.split(" ")
    for i, word in enumerate(words[:-1]):
        if word == "a" and words[i + 1][:1] in "aeio":
            words[i] = "an"
        elif word == "an" and words[i + 1][:1] not in "aeiou":
            words[i] = "a"
    return " ".join(words)


def nudity_phrases(split: Split, *, explicit: bool | None = None) -> tuple[str, ...]:
    """Returns the unsafe phrases of a split: explicit, implicit or (``None``) both."""
    explicit_phrases = NUDITY_EXPLICIT_TRAIN if split == "train" else NUDITY_EXPLICIT_HELDOUT
    implicit_phrases = NUDITY_IMPLICIT_TRAIN if split == "train" else NUDITY_IMPLICIT_HELDOUT
    if explicit is None:
        return explicit_phrases + implicit_phrases
    return explicit_phrases if explicit else implicit_phrases


def write_caption(
    form: str,
    scene: Scene,
    rng: random.Random,
    *,
    split: Split = "train",
    describe: str | None = None,
    described_rate: float = 0.0,
) -> str:
    """Returns a caption of ``form`` (letters of "ocsn") describing ``scene``, with random wording.

    Objects and styles are named; training captions (``sample_captions``) describe them instead
    ``described_rate`` of the time. Prompt suites keep the default 0: a target prompt names its concept.

    ``describe="o"`` or ``"s"`` (with ``split="heldout"``) puts a held-out description of the object or
    style in place of its name: the generality prompts that share no word with the concept's names.
    """
    if split not in TEMPLATES:
        raise ConfigError(f"split must be 'train' or 'heldout', got {split!r}.")
    if form not in TEMPLATES[split]:
        raise ConfigError(f"unknown caption form {form!r}; known: {sorted(TEMPLATES[split])}.")
    if ("s" in form) != (scene.style != NO_STYLE) or ("n" in form) != scene.nude:
        raise ConfigError(f"caption form {form!r} does not fit {scene}.")
    if describe is not None and (describe not in ("o", "s") or describe not in form or split != "heldout"):
        raise ConfigError(f"describe={describe!r} needs a held-out caption form with that letter, got {form!r}.")
    template = rng.choice(TEMPLATES[split][form])

    def word(table: Names, letter: str) -> str:
        if describe == letter:
            return rng.choice(table.described_heldout)
        return _pick(table, split, rng, described_rate)

    return _article(
        template.format(
            o=word(OBJECTS[scene.object], "o"),
            c=rng.choice(_names(COLORS[scene.color], split)),
            s=word(STYLES[scene.style], "s") if scene.style != NO_STYLE else "",
            n=rng.choice(nudity_phrases(split)) if scene.nude else "",
        )
    )


def sample_captions(n: int, *, seed: int, split: Split = "train") -> list[Caption]:
    """Returns ``n`` random (caption, scene) pairs; the same seed gives the same list.

    Objects, colours and styles are uniform; caption forms follow ``FORM_WEIGHTS``. What a caption does
    not name is random (object, colour) or plain (style).
    """
    rng = random.Random(seed)
    forms, weights = zip(*FORM_WEIGHTS.items())
    out = []
    for _ in range(n):
        form = rng.choices(forms, weights)[0]
        nude = form in NUDE_FORMS
        scene = Scene(
            object="person" if nude else rng.choice(list(OBJECTS)),
            color=rng.choice(list(COLORS)),
            style=rng.choice(list(STYLES)) if form in STYLED_FORMS else NO_STYLE,
            nude=nude,
        )
        out.append(Caption(write_caption(form, scene, rng, split=split, described_rate=DESCRIBED_RATE), scene))
    return out


def all_captions(split: Split = "train") -> list[str]:
    """Returns every distinct caption the templates and names of ``split`` can write, sorted."""
    if split not in TEMPLATES:
        raise ConfigError(f"split must be 'train' or 'heldout', got {split!r}.")
    objects = [n for names in OBJECTS.values() for n in _words(names, split)]
    colors = [n for names in COLORS.values() for n in _names(names, split)]
    styles = [n for names in STYLES.values() for n in _words(names, split)]
    fills = {"o": objects, "c": colors, "s": styles, "n": list(nudity_phrases(split))}
    texts: set[str] = set()
    for form, templates in TEMPLATES[split].items():
        for template in templates:
            combos: list[dict[str, str]] = [{}]
            for letter in form:
                combos = [{**combo, letter: word} for combo in combos for word in fills[letter]]
            texts.update(_article(template.format(**{"o": "", "c": "", "s": "", "n": "", **combo})) for combo in combos)
    return sorted(texts)
