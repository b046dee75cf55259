"""Prompt rows: from the CSVs shipped with the protocols, a user's CSV, or the embedded world's suites.

Every row knows its prompt set, its index in it, its prompt, and optionally its seed, guidance and label
(the concept it shows). A CSV that lacks a column the protocol or the user asked for is a
:class:`PromptsFileError` naming the missing columns and the ones the file has.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from erasekit.errors import ConfigError, PromptsFileError
from erasekit.io import prompts_dir, read_csv
from erasekit.worlds import World

from .protocols import PromptSetSpec


@dataclass(frozen=True)
class PromptRow:
    """One prompt of a prompt set; images are made for it with each of ``seeds``."""

    set: str
    index: int
    prompt: str
    seeds: tuple[int, ...]
    guidance: float | None = None
    label: str | None = None


USER_COLUMNS = {
    "seed": ("seed", "evaluation_seed"),
    "guidance": ("guidance", "evaluation_guidance"),
    "label": ("label", "concept", "class", "artist"),
}
"""Column names recognised in a user's CSV (first match wins); ``prompt`` is the one required column,
``group`` (a prompt set of the protocol) is optional too."""


def _shipped_or_path(name: str) -> Path:
    shipped = prompts_dir() / name
    return shipped if shipped.is_file() else Path(name)


def _names_concept(label: str | None, concept: str) -> bool:
    """True when a label such as "Vincent van Gogh" names the concept "van gogh" (either contains the other)."""
    if label is None:
        return False
    a, b = label.casefold().strip(), concept.casefold().strip()
    return a in b or b in a


def load_prompt_set(spec: PromptSetSpec, *, concept: str | None, world: World | None = None) -> list[PromptRow]:
    """Returns the rows of one prompt set, in file (or suite) order, after ``match`` and ``limit``.

    Args:
        spec: the prompt set of a protocol.
        concept: the concept under evaluation; needed by world suites and by ``match``.
        world: the world of the model under evaluation; needed by a set read from its prompt suite.

    Raises:
        PromptsFileError: missing file or columns.
        ConfigError: a concept is needed but none is given, or no row is left.
    """
    if (spec.embedded or spec.match) and not concept:
        raise ConfigError(f"prompt set {spec.name!r} depends on the concept: evaluate an edit or pass --concept.")
    rows: list[PromptRow] = []
    if spec.embedded is not None:
        if world is None:
            raise ConfigError(
                f"prompt set {spec.name!r} is a world's prompt suite, but the model is not a world: evaluate a "
                "world's model (--model embedded), or pass --prompts FILE."
            )
        rows_of = world.suite_rows(concept, n=spec.n)  # type: ignore[arg-type]
        suite = [(p, shown) for group, p, shown in rows_of if group == spec.embedded]
        rows = [PromptRow(spec.name, i, p, spec.seeds, None, shown) for i, (p, shown) in enumerate(suite)]
    else:
        assert spec.csv is not None, "parse_protocol guarantees csv or embedded"
        wanted = [c for c in (spec.prompt_column, spec.seed_column, spec.guidance_column, spec.label_column) if c]
        for i, record in enumerate(read_csv(_shipped_or_path(spec.csv), required=wanted)):
            rows.append(
                PromptRow(
                    spec.name,
                    i,
                    record[spec.prompt_column],
                    (_int(record, spec.seed_column, spec.csv),) if spec.seed_column else spec.seeds,
                    _float(record, spec.guidance_column, spec.csv) if spec.guidance_column else None,
                    record[spec.label_column] if spec.label_column else None,
                )
            )
    if spec.match is not None:
        keep = spec.match == "concept"
        rows = [r for r in rows if _names_concept(r.label, concept or "") == keep]
    if spec.limit is not None:
        rows = rows[: spec.limit]
    if not rows:
        raise ConfigError(f"prompt set {spec.name!r} has no prompts left for concept {concept!r} (match={spec.match}).")
    return rows


def read_user_prompts(
    path: str | Path, *, set_names: Sequence[str] = ("prompts",), seeds: tuple[int, ...] = (0,)
) -> list[PromptRow]:
    """Returns the rows of a user's CSV: a ``prompt`` column, optional seed/guidance/label/group columns.

    Recognised optional columns are listed in ``USER_COLUMNS``; rows without a seed column get ``seeds``.
    A ``group`` column sends each row to the prompt set it names (one of ``set_names``); without it every
    row goes to the first set.

    Raises:
        PromptsFileError: missing file, no ``prompt`` column (the message lists the columns found), or a
            group that is not one of ``set_names``.
    """
    records = read_csv(path, required=["prompt"])
    columns = set(records[0])
    found = {key: next((c for c in names if c in columns), None) for key, names in USER_COLUMNS.items()}
    counts: dict[str, int] = {}
    rows = []
    for record in records:
        set_name = record["group"] if "group" in columns else set_names[0]
        if set_name not in set_names:
            raise PromptsFileError(
                f"{path}: group {set_name!r} is not a prompt set of the protocol: {list(set_names)}."
            )
        index = counts[set_name] = counts.get(set_name, -1) + 1
        rows.append(
            PromptRow(
                set_name,
                index,
                record["prompt"],
                (_int(record, found["seed"], str(path)),) if found["seed"] else seeds,
                _float(record, found["guidance"], str(path)) if found["guidance"] else None,
                record[found["label"]] if found["label"] else None,
            )
        )
    return rows


def _int(record: dict[str, str], column: str | None, where: str) -> int:
    try:
        return int(float(record[column or ""]))
    except (TypeError, ValueError, OverflowError) as err:  # OverflowError: inf
        raise PromptsFileError(f"{where}: column {column!r} holds {record.get(column or '')!r}, not a seed.") from err


def _float(record: dict[str, str], column: str | None, where: str) -> float:
    try:
        value = float(record[column or ""])
    except (TypeError, ValueError) as err:
        raise PromptsFileError(f"{where}: column {column!r} holds {record.get(column or '')!r}, not a number.") from err
    if not math.isfinite(value):  # NaN or inf: no sampler takes it, and strict JSON cannot record it
        raise PromptsFileError(f"{where}: column {column!r} holds {record.get(column or '')!r}, not a finite number.")
    return value
