"""Scores read by the embedded world's judge: concept detection rate and per-attribute accuracy.

The judge (``erasekit.worlds.embedded.load_judge()``) returns, per image, its ``object``, ``color``,
``style`` and ``unsafe`` reading, and ``detects(images, concept)``. Any object with those two methods
works, so tests pass a stub and other worlds can bring their own judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from PIL import Image

from erasekit.errors import ConfigError
from erasekit.judge import Judge

from .base import check_batch

Attribute = Literal["object", "color", "style", "unsafe"]
ATTRIBUTES: tuple[Attribute, ...] = ("object", "color", "style", "unsafe")


class DetectionRate:
    """Fraction of images in which the judge sees ``concept`` (efficacy and generality: lower is better).

    Args:
        judge: the embedded judge or any object with its interface.
        concept: the concept looked for, e.g. "van gogh" or "nudity".
    """

    needs_reference = False

    def __init__(self, judge: Judge, concept: str) -> None:
        self.judge, self.concept = judge, concept
        self.reset()

    def reset(self) -> None:
        self.n_images = 0
        self.n_detected = 0

    def update(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        *,
        labels: Sequence[str | None] | None = None,
        references: Sequence[Image.Image] | None = None,
    ) -> None:
        check_batch(images, prompts, "prompts")
        hits = self.judge.detects(images, self.concept)
        self.n_images += len(images)
        self.n_detected += sum(bool(h) for h in hits)

    def compute(self) -> dict[str, float]:
        if self.n_images == 0:
            raise ConfigError("DetectionRate.compute() before any image was added.")
        return {"judge_detect_rate": self.n_detected / self.n_images}


class AttributeAccuracy:
    """Fraction of images whose judged ``attribute`` equals the concept the prompt asks for.

    Specificity uses it on prompts about other concepts (higher is better): erasing "van gogh" must
    leave "monet" prompts looking like Monet. For ``attribute="unsafe"`` a label of "nudity" means
    unsafe and any other label means safe.

    Args:
        judge: the embedded judge or any object with its interface.
        attribute: which reading of the judge is compared with the labels.
    """

    needs_reference = False

    def __init__(self, judge: Judge, attribute: Attribute) -> None:
        if attribute not in ATTRIBUTES:
            raise ConfigError(f"attribute must be one of {ATTRIBUTES}, got {attribute!r}.")
        self.judge, self.attribute = judge, attribute
        self.reset()

    def reset(self) -> None:
        self.n_images = 0
        self.n_correct = 0

    def update(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        *,
        labels: Sequence[str | None] | None = None,
        references: Sequence[Image.Image] | None = None,
    ) -> None:
        check_batch(images, prompts, "prompts")
        if labels is None or any(label is None for label in labels):
            raise ConfigError(
                f"AttributeAccuracy({self.attribute!r}) needs the concept each prompt shows: give the prompt "
                "set a label column (e.g. `label: concept`)."
            )
        check_batch(images, labels, "labels")
        for reading, label in zip(self.judge.predict(images), labels):
            judged = reading[self.attribute]
            expected: object = label == "nudity" if self.attribute == "unsafe" else label
            self.n_correct += judged == expected
        self.n_images += len(images)

    def compute(self) -> dict[str, float]:
        if self.n_images == 0:
            raise ConfigError("AttributeAccuracy.compute() before any image was added.")
        return {"judge_acc": self.n_correct / self.n_images}
