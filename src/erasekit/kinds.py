"""What a concept can be: the kinds some methods erase differently and some attacks set per kind.

A kind is the caller's word for a concept (``erase(kinds={"van gogh": "style"})``, ``--kind "van gogh=style"``,
an attack's ``concept_kind``). ACE erases styles on every token instead of through its gate; Ring-A-Bell's
strength follows the kind as RECE's scripts set it. A misspelt kind would be ignored by every method, so
only these are accepted.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from .errors import ConfigError

CONCEPT_KINDS = ("unsafe", "style", "object", "color")


def check_kind(kind: str | None, *, named: str) -> None:
    """Raises ConfigError unless ``kind`` is None (not known) or one of :data:`CONCEPT_KINDS`; ``named`` says
    where it was given (``"for 'dog'"``, ``"(concept_kind)"``), with a close match as a hint."""
    if kind is None or kind in CONCEPT_KINDS:
        return
    close = difflib.get_close_matches(str(kind), CONCEPT_KINDS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"Unknown kind {kind!r} {named}: one of {', '.join(CONCEPT_KINDS)}.{hint}")


def check_kinds(kinds: Mapping[str, str], concepts: Iterable[str]) -> None:
    """Raises ConfigError unless every key of ``kinds`` is one of ``concepts`` and every value one of
    :data:`CONCEPT_KINDS`."""
    concepts = set(concepts)
    for concept, kind in kinds.items():
        if concept not in concepts:
            raise ConfigError(
                f"A kind is given for {concept!r}, which is not erased: give a kind (--kind NAME=KIND, kinds=) only "
                "for an erased concept."
            )
        check_kind(kind, named=f"for {concept!r}")
