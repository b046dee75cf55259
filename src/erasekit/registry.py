"""One registry helper for methods, attacks, metrics and worlds: a name -> entry map filled at import.

Duplicates are refused; an unknown name is answered with the closest known ones and an error that
names the kind of thing looked up (method, attack, metric, world).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import RegistryError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries of one kind by name, filled at import and never changed afterwards.

    Args:
        kind: what an entry is ("method", "attack", ...), used in messages.
        error: the :class:`UnknownNameError` subclass raised for an unknown name.
        normalize: maps a name as typed to its key (attacks accept ``soft-prompt`` for ``soft_prompt``).
    """

    def __init__(self, kind: str, error: type[UnknownNameError], normalize: Callable[[str], str] | None = None):
        self.kind, self.error = kind, error
        self._normalize = normalize or (lambda name: name)
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``.

        Raises:
            RegistryError: ``name`` is taken.
        """
        key = self._normalize(name)
        if key in self._entries:
            raise RegistryError(f"A {self.kind} named {name!r} is already registered; pick another name.")
        self._entries[key] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry registered as ``name``.

        Raises:
            UnknownNameError (the registry's subclass): no such name; the message lists the closest.
        """
        key = self._normalize(name) if isinstance(name, str) else name
        if key not in self._entries:
            close = difflib.get_close_matches(str(key), list(self._entries), n=3)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise self.error(f"Unknown {self.kind} {name!r}.{hint} Available: {', '.join(self.names())}.")
        return self._entries[key]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._normalize(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
