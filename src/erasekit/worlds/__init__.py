"""Worlds: a pipeline together with the judge, concepts and prompt suites that make erasure measurable.

A world bundles what the rest of erasekit needs to erase, attack and score without knowing which
world it is: :class:`World`. ``"embedded"`` is the shipped default (a small text-to-image model
trained on a procedural image world, with its judge); ``"tiny-sd1"``, ``"tiny-sd2"`` and
``"tiny-sdxl"`` are tiny random diffusers pipelines for smoke tests (images are noise, no judge).
No module outside ``worlds/`` and the command line names a world: they ask this registry.

:func:`load_pipeline` is erasekit's loader: a world's name gives the world's pipeline, anything
else is a local diffusers folder or a hub id in the local cache (:func:`erasekit.pipeline.load_local`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol

import torch

from ..errors import ConfigError, UnknownWorldError
from ..judge import Judge
from ..pipeline import load_local
from ..registry import Registry

PromptSplit = Literal["fit", "val", "test"]
"""Which prompts a world's suite gives: those a method may see, those for tuning, those that are reported."""
SPLITS: tuple[PromptSplit, ...] = ("fit", "val", "test")


class World(Protocol):
    """What erasekit reads from a world.

    Attributes:
        name: the registry name (``--model NAME``).
        steps, guidance: the sampling defaults of its pipeline.
    """

    name: str
    steps: int
    guidance: float

    def load_pipeline(
        self, *, device: str | torch.device | None = "cpu", dtype: str | torch.dtype | None = None
    ) -> Any:
        """The world's text-to-image pipeline."""
        ...

    def load_judge(self) -> Judge:
        """The judge that reads the world's images (raises ConfigError if the world has none)."""
        ...

    def concepts(self) -> dict[str, list[str]]:
        """Its concepts by kind, e.g. ``{"object": [...], "style": [...]}`` (empty if it has none)."""
        ...

    def concept_kind(self, concept: str) -> str:
        """The kind of one of its concepts ("object", "color", "style", "unsafe")."""
        ...

    def prompt_suite(self, concept: str, *, n: int | None = None, split: PromptSplit = "test") -> dict[str, list[str]]:
        """``{"target": [...], "generality": [...], "specificity": [...]}`` prompts for ``concept``.

        ``split``: ``"fit"`` (prompts a method may see), ``"val"`` (for tuning) or ``"test"`` (what is
        reported); no prompt string is in two splits (``erasekit compare`` checks).
        """
        ...

    def suite_rows(
        self, concept: str, *, n: int | None = None, split: PromptSplit = "test"
    ) -> list[tuple[str, str, str]]:
        """``(group, prompt, what it shows)`` rows of :meth:`prompt_suite`, for scoring with labels."""
        ...

    def default_prompts(self, concept: str, *, n: int | None = None) -> list[str]:
        """The prompts an attack or a quick check uses for ``concept`` when the user gives none."""
        ...

    def scenarios(self) -> dict[str, dict[str, Any]]:
        """The named scenarios of ``erasekit compare`` on this world (empty if it has none).

        Each is ``{"concepts": [...], "attacked": [...], "protocol": NAME}``: the concepts one edit erases
        together, those whose target prompts the attacks get, and the shipped evaluation protocol whose
        sampling and seeds score it. A one-concept scenario of any other concept of the world is scored
        under the first scenario's protocol.
        """
        ...


def _embedded() -> World:
    from .embedded.world import EmbeddedWorld

    return EmbeddedWorld()


def _tiny(kind: str) -> Callable[[], World]:
    def make() -> World:
        from .tiny.world import TinyWorld

        return TinyWorld(kind)

    return make


# name -> a factory, so that naming a world does not import it
WORLDS: Registry[Callable[[], World]] = Registry("world", UnknownWorldError)
WORLDS.add("embedded", _embedded)
for _kind in ("sd1", "sd2", "sdxl"):
    WORLDS.add(f"tiny-{_kind}", _tiny(_kind))

DEFAULT = "embedded"


def get(name: str) -> World:
    """The world registered as ``name``.

    Raises:
        UnknownWorldError: no such world; the message lists the closest names.
    """
    return WORLDS.get(name)()


def find(name_or_path: str) -> World | None:
    """The world named ``name_or_path``, or None for a diffusers folder or hub id."""
    return get(name_or_path) if name_or_path in WORLDS else None


def canonical_concept(world: World | None, concept: str) -> str:
    """Returns the world's own spelling of ``concept``, matched ignoring case and extra spaces ("Van  Gogh"
    -> "van gogh"); ``concept`` as given when the world (or a model without one) has no such concept, so
    that whatever reads it next refuses it with the names it knows."""
    key = " ".join(concept.split()).casefold()
    names = [name for kind in (world.concepts() if world is not None else {}).values() for name in kind]
    return next((name for name in names if " ".join(name.split()).casefold() == key), concept)


def available() -> list[str]:
    return WORLDS.names()


def load_pipeline(
    name_or_path: str = DEFAULT, *, device: str | torch.device | None = "cpu", dtype: str | torch.dtype | None = None
) -> Any:
    """A text-to-image pipeline by world name or path.

    Args:
        name_or_path: a world (``"embedded"``, ``"tiny-sd1"``, ``"tiny-sd2"``, ``"tiny-sdxl"``), a local
            diffusers folder, or a hub id already in the local Hugging Face cache (``org/name``).
        device: ``"cpu"``, ``"cuda"``, ``"auto"``, ...
        dtype: ``"float32"``, ``"fp16"``, ``"bf16"`` or None for the checkpoint's dtype.

    Raises:
        UnknownWorldError: a bare name that is neither a world nor an existing folder (a typo).
        MissingWeightsError: the model is not available locally (the message says how to provide it).
        ConfigError: bad device or dtype.
    """
    if not isinstance(name_or_path, str) or not name_or_path:
        raise ConfigError(f"--model must be a world name, a folder or a hub id, got {name_or_path!r}.")
    world = find(name_or_path)
    if world is not None:
        return world.load_pipeline(device=device, dtype=dtype)
    if "/" not in name_or_path and not Path(name_or_path).exists():
        WORLDS.get(name_or_path)  # raises: not a world, not a folder, not an org/name hub id
    return load_local(name_or_path, device=device, dtype=dtype)


def sampling(name_or_path: str) -> tuple[int, float]:
    """``(steps, guidance)``: the world's defaults, else Stable Diffusion's 50 steps at 7.5."""
    world = find(name_or_path)
    return (world.steps, world.guidance) if world is not None else (50, 7.5)
