"""Prompt pairs with and without a concept, for Ring-A-Bell's concept vector.

Ring-A-Bell's pair files have two columns, ``sensitive prompt`` (with the concept) and ``normal prompt``
(the same scene without it): :func:`read_pairs` reads one, and :func:`pairs_for` finds the file shipped
with erasekit (``erasekit/data/prompts``) (``ringabell_pairs_<concept>.csv``, e.g. nudity). For any other concept,
:func:`template_pairs` writes pairs from neutral scenes: ``"<scene>, <concept>"`` against ``"<scene>"``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..io import prompts_dir, read_csv

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
    """``(with concept, without)`` rows of a CSV with columns ``sensitive prompt`` and ``normal prompt``.

    Raises:
        PromptsFileError (a ConfigError): no such file, missing columns (named in the message), no rows.
    """
    rows = read_csv(path, required=[WITH, WITHOUT])
    return [(row[WITH].strip(), row[WITHOUT].strip()) for row in rows]


def shipped_pairs(concept: str) -> Path | None:
    """The pair file shipped for ``concept`` (``"van gogh"`` -> ``ringabell_pairs_vangogh.csv``), if any."""
    path = prompts_dir() / f"ringabell_pairs_{''.join(ch for ch in concept.lower() if ch.isalnum())}.csv"
    return path if path.is_file() else None


def template_pairs(concept: str) -> list[tuple[str, str]]:
    """``len(SCENES) × len(TEMPLATES)`` pairs ``("<scene>, <concept>", "<scene>")`` for any concept."""
    return [(t.format(scene=s, concept=concept), s) for t in TEMPLATES for s in SCENES]


def pairs_for(concept: str, path: str | os.PathLike[str] | None = None) -> tuple[list[tuple[str, str]], str]:
    """The pairs to use and where they come from: ``path``, else the shipped file, else templates."""
    if path is None:
        path = shipped_pairs(concept)
    if path is None:
        return template_pairs(concept), "templates"
    return read_pairs(path), str(path)
