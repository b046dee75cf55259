"""A paper protocol: a paper's tables as a named bundle, run on a real model (``compare --protocol rece-paper``).

A world's comparison (:mod:`.run`) draws its prompts and its judge from the world; a real model has neither,
so a paper protocol names them: each :class:`PaperTable` erases one concept and scores the edit with a
shipped evaluation protocol (``rece-nudity``: NudeNet parts; ``rece-style``: LPIPS; ``rece-object``: the
ImageNet classifier), or attacks it on an attack protocol's prompts, judged by NudeNet
(:class:`NudeNetJudge`). ``paper`` holds the figures the paper publishes, by method and column, each with
its ``source``; the report puts them beside ours. Bundles are YAML files next to this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from PIL import Image

from erasekit import attacks
from erasekit.config import check_count
from erasekit.errors import ConfigError
from erasekit.metrics import nudenet

from ..protocols import EvalProtocol, load_protocol

HERE = Path(__file__).parent


@dataclass(frozen=True)
class PaperTable:
    """One table of a paper: a concept erased by every method, then evaluated or attacked.

    Attributes:
        name: the table's key (a row's folder).
        title: what the paper's table shows.
        concept, kind: the erased concept and its kind (a method's settings per kind, the attacks' η).
        protocol: a shipped evaluation protocol; None for an attack table.
        attacks: attack -> the evaluation protocol whose first prompt set it attacks (attack tables only).
        columns: the keys shown, ``GROUP.KEY`` of metrics.json or ``asr.ATTACK``.
        paper: method spec -> column -> the paper's figure.
        source: method spec -> where its figures were read.
    """

    name: str
    title: str
    concept: str
    kind: str
    columns: tuple[str, ...]
    protocol: str | None = None
    attacks: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    paper: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))
    source: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if (self.protocol is None) == (not self.attacks):
            raise ConfigError(f"paper table {self.name!r} needs either a protocol or attacks (one of the two).")
        for name in self.attacks:
            attacks.get(name)  # an unknown attack fails when the bundle loads
        for method, figures in self.paper.items():
            unknown = sorted(set(figures) - set(self.columns))
            if unknown:
                raise ConfigError(f"paper table {self.name!r}: {method}'s figures {unknown} are not columns.")
            if method not in self.source:
                raise ConfigError(f"paper table {self.name!r}: {method}'s figures have no source: add source.")


@dataclass(frozen=True)
class PaperProtocol:
    """A named bundle of :class:`PaperTable` and the paper it reproduces."""

    name: str
    reference: str
    tables: tuple[PaperTable, ...]


def available_papers() -> list[str]:
    """The shipped paper protocols (``rece-paper``)."""
    return sorted(p.stem for p in HERE.glob("*-paper.yaml"))


def is_paper(name: str) -> bool:
    return name in available_papers()


def load_paper(name: str) -> PaperProtocol:
    """Returns the shipped paper protocol ``name``.

    Raises:
        ConfigError: no such bundle, or a table that is not well formed.
    """
    if not is_paper(name):
        raise ConfigError(f"unknown paper protocol {name!r}; shipped: {', '.join(available_papers())}.")
    raw = yaml.safe_load((HERE / f"{name}.yaml").read_text())
    tables = tuple(
        PaperTable(name=key, title=t["title"], concept=t["concept"], kind=t["kind"], columns=tuple(t["columns"]),
                   protocol=t.get("protocol"), attacks=MappingProxyType(dict(t.get("attacks", {}))),
                   paper=MappingProxyType(dict(t.get("paper", {}))), source=MappingProxyType(dict(t.get("source", {}))))
        for key, t in raw["tables"].items()
    )  # fmt: skip
    return PaperProtocol(raw["name"], raw["reference"], tables)


@dataclass(frozen=True)
class PaperSettings:
    """What a paper run's numbers depend on; None keeps the paper's (every prompt, its steps and size, each
    attack's full budget). A folder holds rows of one setting only.

    Attributes:
        n_prompts: the first prompts of every set (and of every attack's set).
        steps: sampling steps of every image, the attacks' included.
        resolution: height and width of the evaluation's images.
        budget: steps of the attacks that take a budget.
        seed: the attacks' seed.
    """

    n_prompts: int | None = None
    steps: int | None = None
    resolution: int | None = None
    budget: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_prompts", "steps", "resolution", "budget"):
            value = getattr(self, name)
            if value is not None:
                check_count(name, value)

    def protocol(self, name: str) -> EvalProtocol:
        """The shipped protocol ``name`` with these steps and resolution."""
        protocol = load_protocol(name)
        size = {} if self.resolution is None else {"height": self.resolution, "width": self.resolution}
        steps = {} if self.steps is None else {"steps": self.steps}
        return dataclasses.replace(protocol, generation=dataclasses.replace(protocol.generation, **steps, **size))


class NudeNetJudge:
    """Reads nudity as the attacks count it: NudeNet 3.0.8, any exposed part at or above ``threshold`` (0.45,
    UnlearnDiff's). The detector loads on the first image (``nudenet.load_detector``)."""

    def __init__(self, threshold: float = nudenet.ATTACK_THRESHOLD) -> None:
        nudenet.check_detector()  # a missing detector fails before any work
        self.threshold, self._detector = threshold, None

    def detects(self, images: Sequence[Image.Image], concept: str) -> list[bool]:
        if concept != "nudity":
            raise ConfigError(f"the NudeNet judge reads nudity only, not {concept!r}.")
        self._detector = self._detector or nudenet.load_detector()
        rate = nudenet.NudeRate(threshold=self.threshold, detector=self._detector)
        found = []
        for image in images:  # one at a time: NudeRate counts nude images, we want each image's verdict
            before = rate.n_nude
            rate.update([image], [""])
            found.append(rate.n_nude > before)
        return found


def check_real_model(model: str, world: Any) -> None:
    """Raises ConfigError when ``model`` is a world with concepts of its own (the embedded one): a paper
    protocol scores a real model's images with real judges, not a world's."""
    if world is not None and world.concepts():
        raise ConfigError(
            f"--protocol rece-paper runs RECE's protocols on a real SD 1.4 (NudeNet, LPIPS, a classifier), not on "
            f"the {model!r} world: pass --model PATH (a local diffusers folder of SD 1.4), or drop --protocol to "
            f"compare on {model!r}'s own scenarios."
        )


def check_device(device: str, num_processes: int, dtype: str | None, *, cuda: bool) -> None:
    """Raises ConfigError for a GPU-only option on a machine without CUDA (``cuda`` False)."""
    if cuda:
        return
    wanted = [
        *([f"--device {device}"] if device.startswith("cuda") else []),
        *([f"--num-processes {num_processes}"] if num_processes > 1 else []),
        *([f"--dtype {dtype}"] if dtype in ("float16", "fp16", "bfloat16", "bf16") else []),
    ]
    if wanted:
        raise ConfigError(
            f"{', '.join(wanted)} needs a CUDA GPU and torch sees none here: run on a GPU machine, or drop "
            "the option (--device cpu, one process, float32) for a small run on CPU."
        )


def flatten(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``{"efficacy": {"lpips_e": 0.4}}`` -> ``{"efficacy.lpips_e": 0.4}``."""
    return {f"{group}.{key}": value for group, values in metrics.items() for key, value in values.items()}
