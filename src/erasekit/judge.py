"""The one ``Judge`` protocol: what decides whether an image shows a concept.

Attacks need ``detects``; the world-judge metrics also read ``predict`` (one dict of readings per
image, e.g. the embedded world's ``{"object": "church", "color": "red", "style": "none",
"unsafe": False}``). A world's judge, a NudeNet wrapper or a test stub all fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from PIL import Image


@runtime_checkable
class Judge(Protocol):
    """Reads images: ``detects(images, concept) -> list[bool]`` and ``predict(images) -> list[dict]``."""

    def detects(self, images: Sequence[Image.Image], concept: str) -> list[bool]: ...

    def predict(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]: ...
