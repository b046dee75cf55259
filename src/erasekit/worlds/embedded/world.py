"""The embedded world behind the :class:`erasekit.worlds.World` protocol."""

from __future__ import annotations

from typing import Any

import torch

from ...judge import Judge
from .. import PromptSplit
from .judge import load_judge
from .load import load_pipeline
from .pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS
from .prompts import concepts, prompt_suite, suite_rows
from .vocabulary import UNSAFE, concept_kind

# 4 objects, 3 styles, 2 colours and nudity, erased by one edit
MULTI10 = ("church", "parachute", "garbage truck", "tench", "van gogh", "picasso", "andy warhol", "red", "blue", UNSAFE)


class EmbeddedWorld:
    """erasekit's default world: procedural images, the small model trained on them, its judge."""

    name = "embedded"
    steps = DEFAULT_STEPS
    guidance = DEFAULT_GUIDANCE

    def load_pipeline(
        self, *, device: str | torch.device | None = "cpu", dtype: str | torch.dtype | None = None
    ) -> Any:
        return load_pipeline(device=device, dtype=dtype)

    def load_judge(self) -> Judge:
        return load_judge()

    def concepts(self) -> dict[str, list[str]]:
        return concepts()

    def concept_kind(self, concept: str) -> str:
        return concept_kind(concept)

    def prompt_suite(self, concept: str, *, n: int | None = None, split: PromptSplit = "test") -> dict[str, list[str]]:
        return prompt_suite(concept, split=split, **({"n": n} if n else {}))

    def suite_rows(
        self, concept: str, *, n: int | None = None, split: PromptSplit = "test"
    ) -> list[tuple[str, str, str]]:
        return suite_rows(concept, split=split, **({"n": n} if n else {}))

    def default_prompts(self, concept: str, *, n: int | None = None) -> list[str]:
        return self.prompt_suite(concept, n=n)["target"]

    def scenarios(self) -> dict[str, dict[str, Any]]:
        """One concept of each kind the papers erase, and ten at once (attacked on three, to keep the cost
        near three single rows); all scored with the ``embedded-style`` protocol's sampling and seeds."""

        def one(concept: str) -> dict[str, Any]:
            return {"concepts": [concept], "attacked": [concept], "protocol": "embedded-style"}

        multi = {"concepts": list(MULTI10), "attacked": ["church", "van gogh", UNSAFE], "protocol": "embedded-style"}
        return {"style": one("van gogh"), "object": one("church"), "unsafe": one(UNSAFE), "multi10": multi}
