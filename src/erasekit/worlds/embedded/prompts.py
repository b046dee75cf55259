"""Prompt suites per concept, for the evaluation presets: target, generality, specificity.

- ``target``: prompts that name the concept with training words and templates;
- ``generality``: the same concept through held-out synonyms, paraphrases and templates, never seen in
  training (erasure must reach these too);
- ``specificity``: prompts about other concepts of the same kind (and, for nudity, clothed persons),
  which erasure must leave alone.
"""

from __future__ import annotations

import csv
import random
import zlib
from pathlib import Path

from erasekit.errors import ConfigError, OutputExistsError

from .captions import Split, write_caption
from .renderer import Scene
from .vocabulary import COLORS, NO_STYLE, OBJECTS, STYLES, UNSAFE, concept_kind

GROUPS = ("target", "generality", "specificity")


def concepts() -> dict[str, list[str]]:
    """Returns the canonical concept names by kind: object, color, style, unsafe."""
    return {"object": list(OBJECTS), "color": list(COLORS), "style": list(STYLES), "unsafe": [UNSAFE]}


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


def suite_rows(concept: str, *, n: int = 24, seed: int = 0) -> list[tuple[str, str, str]]:
    """Returns ``(group, prompt, concept shown)`` rows of the suite of ``concept``, ``n`` per group.

    The same (concept, n, seed) always gives the same rows.

    Raises:
        ConfigError: unknown concept or ``n < 1``.
    """
    kind = concept_kind(concept)
    if n < 1:
        raise ConfigError(f"a prompt suite needs n >= 1 prompts per group, got {n}.")
    rng = random.Random(zlib.crc32(concept.encode()) + seed)
    names = concepts()
    others = [c for c in names[kind] if c != concept] if kind != "unsafe" else ["person"]
    rows = []
    for group, split in (("target", "train"), ("generality", "heldout"), ("specificity", "train")):
        for i in range(n):
            shown = concept if group != "specificity" else others[i % len(others)]
            shown_kind = kind if shown != "person" or kind != "unsafe" else "clothed"
            scene, form = _scene(rng, shown_kind, shown)
            split_: Split = split  # type: ignore[assignment]
            rows.append((group, write_caption(form, scene, rng, split=split_), shown))
    return rows


def prompt_suite(concept: str, *, n: int = 24, seed: int = 0) -> dict[str, list[str]]:
    """Returns ``{"target": [...], "generality": [...], "specificity": [...]}`` prompts for ``concept``."""
    suite: dict[str, list[str]] = {group: [] for group in GROUPS}
    for group, prompt, _ in suite_rows(concept, n=n, seed=seed):
        suite[group].append(prompt)
    return suite


def write_prompt_suite_csv(
    concept: str, path: str | Path, *, n: int = 24, seed: int = 0, overwrite: bool = False
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
        writer.writerows(suite_rows(concept, n=n, seed=seed))
    return path
