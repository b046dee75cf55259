"""Prompt suites per concept, split into disjoint fit / val / test prompts: target, generality, specificity.

- ``target``: prompts that name the concept with training words and templates;
- ``generality``: the same concept in words never seen in training and sharing none with its names:
  held-out descriptions of an object or a style ("the post-impressionist who painted starry skies"),
  held-out implicit phrasings of nudity, held-out names of a colour ("crimson");
- ``specificity``: prompts about other concepts of the same kind (and, for nudity, clothed persons),
  which erasure must leave alone.

Every prompt string belongs to one split, :func:`split_of`: a concept's bare name is ``fit`` (what a
method is given), any other prompt goes by a hash of its text, so ``fit`` (what methods may see),
``val`` (tuning) and ``test`` (what is reported) never share a prompt, whichever suite, concept or
``n`` they come from. Within a group a suite never repeats a prompt.
"""

from __future__ import annotations

import csv
import functools
import random
import zlib
from collections.abc import Callable
from pathlib import Path

from transformers import BertTokenizerFast

from erasekit.errors import ConfigError, OutputExistsError

from .. import SPLITS, PromptSplit
from .captions import write_caption
from .renderer import Scene
from .text import CONTEXT_LENGTH, load_tokenizer, quiet_transformers
from .vocabulary import COLORS, NO_STYLE, NUDITY_IMPLICIT_HELDOUT, OBJECTS, STYLES, UNSAFE, concept_kind

GROUPS = ("target", "generality", "specificity")
# hash buckets of a prompt's text: 1 in 5 fit, 1 in 5 val, 3 in 5 test (the reported split is the largest)
_BUCKETS: tuple[PromptSplit, ...] = ("fit", "val", "test", "test", "test")
_BARE_NAMES = frozenset(n for table in (OBJECTS, COLORS, STYLES) for names in table.values() for n in names.train)
MAX_DRAWS = 400  # draws per prompt before a suite gives up: the wording of a concept ran out of new prompts


def concepts() -> dict[str, list[str]]:
    """Returns the canonical concept names by kind: object, color, style, unsafe."""
    return {"object": list(OBJECTS), "color": list(COLORS), "style": list(STYLES), "unsafe": [UNSAFE]}


def split_of(prompt: str) -> PromptSplit:
    """Returns the one split ``prompt`` belongs to: ``fit`` for a concept's bare name, else by its text's hash."""
    if prompt in _BARE_NAMES or prompt == UNSAFE:
        return "fit"
    return _BUCKETS[zlib.crc32(prompt.encode()) % len(_BUCKETS)]


def _scene(rng: random.Random, kind: str, value: str) -> tuple[Scene, str]:
    """Returns a random scene showing ``value`` of ``kind`` and the caption form that names it."""
    obj, color = rng.choice(list(OBJECTS)), rng.choice(list(COLORS))
    style = rng.choice([NO_STYLE, *STYLES])
    if kind == "object":
        scene = Scene(value, color, style)
        form = rng.choice(("ocs", "os")) if style != NO_STYLE else rng.choice(("oc", "o"))
    elif kind == "color":
        scene = Scene(obj, value, style)
        form = "ocs" if style != NO_STYLE else "oc"
    elif kind == "style":
        scene = Scene(obj, color, value)
        form = rng.choice(("ocs", "os", "s"))
    elif kind == "unsafe":
        scene = Scene("person", color, style, nude=True)
        form = "ns" if style != NO_STYLE else "n"
    else:  # a clothed person, the specificity set of nudity
        scene = Scene("person", color, style)
        form = "ocs" if style != NO_STYLE else "oc"
    return scene, form


def _fits(prompt: str) -> bool:
    """Whether the text encoder reads all of ``prompt``: a longer one is cut, and the cut may drop the very
    words that carry the concept (some held-out object descriptions ran past the 24 tokens)."""
    with quiet_transformers():  # no "longer than the maximum" warning: that is what is being asked
        return len(_tokenizer()(prompt).input_ids) <= CONTEXT_LENGTH


@functools.cache
def _tokenizer() -> BertTokenizerFast:
    return load_tokenizer()


def _writer(group: str, kind: str) -> Callable[[str, Scene, random.Random], str | None]:
    """Returns ``write(form, scene, rng)`` for a group's prompts about a concept of ``kind`` (None: draw again)."""
    if group != "generality":
        return lambda form, scene, rng: write_caption(form, scene, rng, split="train")
    if kind in ("object", "style"):
        letter = kind[0]  # the held-out description takes the place of the object's ("o") or style's ("s") name
        return lambda form, scene, rng: write_caption(form, scene, rng, split="heldout", describe=letter)
    if kind == "unsafe":  # implicit held-out phrasings only: the explicit ones say "nude" or "naked"

        def implicit(form: str, scene: Scene, rng: random.Random) -> str | None:
            text = write_caption(form, scene, rng, split="heldout")
            return text if any(phrase in text for phrase in NUDITY_IMPLICIT_HELDOUT) else None

        return implicit
    return lambda form, scene, rng: write_caption(form, scene, rng, split="heldout")  # colours: held-out names


def suite_rows(concept: str, *, n: int = 24, seed: int = 0, split: PromptSplit = "test") -> list[tuple[str, str, str]]:
    """Returns ``(group, prompt, concept shown)`` rows of the ``split`` suite of ``concept``, ``n`` per group.

    The same (concept, n, seed, split) always gives the same rows; a larger ``n`` extends each group of a
    smaller one.

    Raises:
        ConfigError: unknown concept or split, ``n < 1``, or fewer than ``n`` distinct prompts of the split.
    """
    kind = concept_kind(concept)
    if n < 1:
        raise ConfigError(f"a prompt suite needs n >= 1 prompts per group, got {n}.")
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}.")
    others = [c for c in concepts()[kind] if c != concept] if kind != "unsafe" else ["person"]
    rows = []
    for group in GROUPS:
        rng = random.Random(zlib.crc32(f"{concept}/{group}".encode()) + seed)  # a group of n starts one of n + 1
        seen: set[str] = set()
        for i in range(n):
            shown = concept if group != "specificity" else others[i % len(others)]
            shown_kind = kind if shown != "person" or kind != "unsafe" else "clothed"
            write = _writer(group, shown_kind)
            for _ in range(MAX_DRAWS):
                scene, form = _scene(rng, shown_kind, shown)
                prompt = write(form, scene, rng)
                if prompt is not None and prompt not in seen and split_of(prompt) == split and _fits(prompt):
                    break
            else:
                raise ConfigError(
                    f"the {split} {group} prompts of {concept!r} ran out after {len(seen)} distinct ones; "
                    f"ask for fewer than {n} per group."
                )
            seen.add(prompt)
            rows.append((group, prompt, shown))
    return rows


def prompt_suite(concept: str, *, n: int = 24, seed: int = 0, split: PromptSplit = "test") -> dict[str, list[str]]:
    """Returns ``{"target": [...], "generality": [...], "specificity": [...]}`` prompts for ``concept``."""
    suite: dict[str, list[str]] = {group: [] for group in GROUPS}
    for group, prompt, _ in suite_rows(concept, n=n, seed=seed, split=split):
        suite[group].append(prompt)
    return suite


def write_prompt_suite_csv(
    concept: str, path: str | Path, *, n: int = 24, seed: int = 0, split: PromptSplit = "test", overwrite: bool = False
) -> Path:
    """Writes the suite of ``concept`` as CSV (columns ``group,prompt,concept``) and returns the path.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; pass overwrite=True to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "prompt", "concept"])
        writer.writerows(suite_rows(concept, n=n, seed=seed, split=split))
    return path
