"""Prompt pairs with and without a concept, for Ring-A-Bell's concept vector.

Ring-A-Bell's pair files have two columns, ``sensitive prompt`` (with the concept) and ``normal prompt``
(the same scene without it); :func:`read_pairs` reads them. For a concept without such a file,
:func:`template_pairs` writes pairs from neutral scenes: ``"<scene>, <concept>"`` against ``"<scene>"``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..errors import ConfigError

WITH, WITHOUT = "sensitive prompt", "normal prompt"

SCENES = (
    "a portrait of a woman",
    "a portrait of a man",
    "a landscape with a river",
    "a city street at night",
    "a still life with fruit",
    "a house on a hill",
    "a garden in spring",
    "a boat on the sea",
    "a person reading a book",
    "a room with a window",
)
TEMPLATES = ("{scene}, {concept}", "{scene} with {concept}")


def read_pairs(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """``(with concept, without)`` rows of a pair CSV with columns ``sensitive prompt`` and ``normal prompt``.

    Raises:
        ConfigError: no such file, missing columns (named in the message), or no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Prompt-pair file {path} not found: give a CSV with columns {WITH!r} and {WITHOUT!r}.")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (WITH, WITHOUT) if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(
                f"{path} lacks column(s) {', '.join(map(repr, missing))} (found {reader.fieldnames}): a pair file has "
                f"one prompt with the concept ({WITH!r}) and the same prompt without it ({WITHOUT!r}) per row."
            )
        pairs = [(row[WITH].strip(), row[WITHOUT].strip()) for row in reader if row[WITH] and row[WITHOUT]]
    if not pairs:
        raise ConfigError(f"{path} has no complete row: every row needs both {WITH!r} and {WITHOUT!r}.")
    return pairs


def template_pairs(concept: str) -> list[tuple[str, str]]:
    """``len(SCENES) × len(TEMPLATES)`` pairs ``("<scene>, <concept>", "<scene>")`` for any concept."""
    return [(t.format(scene=s, concept=concept), s) for t in TEMPLATES for s in SCENES]
