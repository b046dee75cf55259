"""The metric protocol shared by every scorer, and the image conversions they use.

A metric follows torchmetrics' shape: ``update`` with one batch at a time, ``compute`` once at the
end, ``reset`` to reuse it. Images are PIL images (what a diffusers pipeline returns and what the
runner reads back from disk); each metric converts them as its reference implementation does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from erasekit.errors import ConfigError

Group = Literal["efficacy", "generality", "specificity", "asr", "quality"]
GROUPS: tuple[Group, ...] = ("efficacy", "generality", "specificity", "asr", "quality")
"""The five groups of ``metrics.json`` (DESIGN.md), in the order they are written."""

Images = Sequence[Image.Image]
Prompts = Sequence[str]
Labels = Sequence[str | None] | None


@runtime_checkable
class Metric(Protocol):
    """What the runner needs from a metric.

    Attributes:
        needs_reference: True when ``update`` needs ``references``: the original model's images for the
            same prompts and seeds (FID, LPIPS), in the same order as ``images``.
    """

    needs_reference: bool

    def update(
        self, images: Images, prompts: Prompts, *, labels: Labels = None, references: Images | None = None
    ) -> None:
        """Adds a batch.

        Args:
            images: generated images.
            prompts: the prompt of each image.
            labels: the concept each prompt is meant to show (class, artist, embedded concept), or None.
            references: the original model's image for each prompt and seed (metrics that need them).
        """
        ...

    def compute(self) -> dict[str, float]:
        """Returns the scores over every batch added since the last ``reset``, by name."""
        ...

    def reset(self) -> None:
        """Forgets every batch added."""
        ...


class BatchMetric(ABC):
    """:class:`Metric`'s ``update``, written once for erasekit's metrics: it refuses a batch without its
    references (present, one per image) when the metric ``needs_reference``, then hands it to ``add_batch``."""

    needs_reference = False

    def update(
        self, images: Images, prompts: Prompts, *, labels: Labels = None, references: Images | None = None
    ) -> None:
        if self.needs_reference:
            if references is None:
                raise ConfigError(
                    f"{type(self).__name__} needs references: the original model's images for the same prompts "
                    "and seeds."
                )
            check_batch(images, references, "references")
        self.add_batch(images, prompts, labels, references)

    @abstractmethod
    def add_batch(self, images: Images, prompts: Prompts, labels: Labels, references: Images | None) -> None:
        """Adds a batch (the arguments as :meth:`Metric.update`'s, references checked)."""

    @abstractmethod
    def compute(self) -> dict[str, float]: ...

    @abstractmethod
    def reset(self) -> None: ...


class MeanMetric(BatchMetric):
    """A metric that is a mean (a rate, an accuracy, a mean score): ``add_batch`` calls ``add`` with a batch's
    sum and count, ``compute`` returns ``{key: total / count}``."""

    key: str  # the score's name in metrics.json
    counted = "image"  # what one count is, named when compute() comes before any

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, total: float, count: int) -> None:
        self.total += total
        self.count += count

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise ConfigError(f"{type(self).__name__}.compute() before any {self.counted} was added.")
        return {self.key: self.total / self.count}


def check_batch(images: Sequence[object], other: Sequence[object] | None, what: str) -> None:
    """Raises ConfigError unless ``other`` is None or has one entry per image."""
    if other is not None and len(other) != len(images):
        raise ConfigError(f"{len(images)} images but {len(other)} {what}: pass one per image.")


def to_tensor(images: Sequence[Image.Image]) -> Tensor:
    """Returns float images [B, 3, H, W] in [0, 1] from PIL images of one size.

    Raises:
        ConfigError: not PIL images, or images of different sizes.
    """
    arrays = []
    for image in images:
        if not isinstance(image, Image.Image):
            raise ConfigError(f"metrics take PIL images, got {type(image).__name__}.")
        arrays.append(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    if not arrays:
        return torch.zeros(0, 3, 1, 1)
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        raise ConfigError(f"images in one batch must share a size, got {sorted(sizes)}.")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def to_uint8(images: Sequence[Image.Image]) -> Tensor:
    """Returns uint8 images [B, 3, H, W] in [0, 255] from PIL images of one size."""
    return (to_tensor(images) * 255).round().to(torch.uint8)
