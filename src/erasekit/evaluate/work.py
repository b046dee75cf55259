"""The deterministic work list: one item per (model variant, prompt, seed), and its shards.

The list depends only on the prompt rows and which sets need the original model's images, so every
process of a sharded run builds the same list and takes items ``i`` with ``i % count == index``.
Each item has a fixed file name, which is what makes a killed run resumable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from erasekit.errors import ConfigError

from .prompt_sets import PromptRow

Variant = Literal["edited", "original"]
VARIANTS: tuple[Variant, ...] = ("edited", "original")


@dataclass(frozen=True)
class WorkItem:
    """One image to make: ``row.prompt`` with ``seed`` by the ``variant`` model."""

    variant: Variant
    row: PromptRow
    seed: int

    @property
    def key(self) -> str:
        """Returns the item's unique, stable name, also its path under ``images/`` without suffix."""
        return f"{self.variant}/{self.row.set}/{self.row.index:05d}_s{self.seed}"


@dataclass(frozen=True)
class Shard:
    """Process ``index`` of ``count`` takes items ``i`` with ``i % count == index``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ConfigError(f"shard index must be in [0, {self.count}), got {self.index}.")

    def take(self, items: Sequence[WorkItem]) -> list[WorkItem]:
        """Returns this shard's items, in list order."""
        return [item for i, item in enumerate(items) if i % self.count == self.index]


def build_work(rows: Sequence[PromptRow], *, needs_originals: Callable[[str], bool]) -> list[WorkItem]:
    """Returns every image to make: edited images of all rows, then original images of the sets that need them.

    Args:
        rows: prompt rows of every set, in protocol order.
        needs_originals: whether a prompt set needs the original model's images.

    Raises:
        ConfigError: two items would share a file name (a prompt set listed twice).
    """
    items = [WorkItem("edited", row, seed) for row in rows for seed in row.seeds]
    items += [WorkItem("original", row, seed) for row in rows if needs_originals(row.set) for seed in row.seeds]
    keys = [item.key for item in items]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise ConfigError(f"two images would be written as {duplicate}: a prompt set or seed is listed twice.")
    return items
