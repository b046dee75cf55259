"""Tiny random pipelines behind the :class:`erasekit.worlds.World` protocol: no judge, no concepts."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ...errors import ConfigError
from ...judge import Judge
from ...pipeline import resolve_device, resolve_dtype
from .. import PromptSplit
from . import tiny_pipeline

logger = logging.getLogger(__name__)


class TinyWorld:
    """``tiny-sd1`` / ``tiny-sd2`` / ``tiny-sdxl``: random weights at diffusers' test sizes, images are noise."""

    steps = 50
    guidance = 7.5

    def __init__(self, kind: str):
        self.kind = kind
        self.name = f"tiny-{kind}"

    def load_pipeline(
        self, *, device: str | torch.device | None = "cpu", dtype: str | torch.dtype | None = None
    ) -> Any:
        dev, torch_dtype = resolve_device(device), resolve_dtype(dtype)
        logger.info("%s is a tiny model with random weights: its images are noise.", self.name)
        return tiny_pipeline(self.kind).to(device=dev, dtype=torch_dtype)  # type: ignore[arg-type]

    def load_judge(self) -> Judge:
        raise ConfigError(
            f"{self.name} has random weights and no judge: its images are noise. Use --model embedded, or the Python "
            "API with a judge of your own (any object with detects(images, concept) -> list[bool])."
        )

    def concepts(self) -> dict[str, list[str]]:
        return {}

    def concept_kind(self, concept: str) -> str:
        raise ConfigError(f"{self.name} has no concepts of its own: it is a tiny random model.")

    def prompt_suite(self, concept: str, *, n: int | None = None, split: PromptSplit = "test") -> dict[str, list[str]]:
        raise ConfigError(f"{self.name} has no prompt suites: pass prompts of your own (--prompts FILE).")

    def suite_rows(
        self, concept: str, *, n: int | None = None, split: PromptSplit = "test"
    ) -> list[tuple[str, str, str]]:
        return list(self.prompt_suite(concept, n=n, split=split))  # raises: no suites

    def default_prompts(self, concept: str, *, n: int | None = None) -> list[str]:
        return [concept]

    def scenarios(self) -> dict[str, dict[str, Any]]:
        return {}
