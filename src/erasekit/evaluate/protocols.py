"""Evaluation protocols: YAML files that fix prompts, seeds, steps, guidance, thresholds and metrics.

``load_protocol("rece-nudity")`` reads ``protocols/rece-nudity.yaml`` shipped in this package (or any YAML
path) and checks it into a frozen :class:`EvalProtocol`; every mistake is a :class:`ConfigError` naming the
file and the key. The schema, by example::

    name: embedded-style
    description: ...
    reference: the paper and table the protocol comes from
    concept: van gogh             # default concept when no edit names one
    generation: {steps: 12, guidance: 4.0, batch_size: 16}   # + height, width, negative_prompt
    baseline: true                # also score the original model's images ("before" numbers)
    prompts:                      # named prompt sets
      target: {embedded: target, n: 24, seeds: [0, 1]}
      i2p: {csv: i2p.csv.gz, seed_column: evaluation_seed, guidance_column: evaluation_guidance}
      erased: {csv: big_artist_prompts.csv, label_column: artist, match: concept, seeds: [0]}
    metrics:                      # each: a metric's registry name, its group, the prompt set it reads
                                  # (not `on:`, which YAML reads as True)
      - {name: detection_rate, group: efficacy, prompt_set: target, suffix: _target}
      - {name: nude_rate, group: efficacy, prompt_set: i2p, params: {threshold: 0.6}}
    derived:                      # scores of scores, from "group.key" inputs
      - {name: mace_h_o, group: quality, fn: mace_h_o, inputs: [efficacy.a, specificity.b, generality.c]}
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

from erasekit.config import check_count
from erasekit.errors import ConfigError, UnknownMetricError
from erasekit.metrics import GROUPS, Group, check_metric_params, needs_reference

EmbeddedGroup = Literal["target", "generality", "specificity"]
Match = Literal["concept", "not_concept"]
DerivedFn = Literal["mace_h_o", "lpips_d"]
DERIVED_ARITY: dict[str, int] = {"mace_h_o": 3, "lpips_d": 2}


@dataclass(frozen=True)
class PromptSetSpec:
    """Where one named set of prompts comes from.

    Attributes:
        name: the set's name, referred to by metrics' ``prompt_set``.
        csv: a CSV (or .csv.gz) shipped in ``evaluate/prompts/``, or a path; exclusive with ``embedded``.
        embedded: a group of ``embedded.prompt_suite(concept)``: target, generality or specificity.
        n: prompts per group of the embedded suite.
        prompt_column, seed_column, guidance_column, label_column: CSV columns (None: absent).
        match: keep rows whose label names the concept ("concept") or does not ("not_concept").
        seeds: seeds of every prompt when there is no seed column.
        limit: keep only the first ``limit`` rows (after ``match``).
    """

    name: str
    csv: str | None = None
    embedded: EmbeddedGroup | None = None
    n: int = 24
    prompt_column: str = "prompt"
    seed_column: str | None = None
    guidance_column: str | None = None
    label_column: str | None = None
    match: Match | None = None
    seeds: tuple[int, ...] = (0,)
    limit: int | None = None


@dataclass(frozen=True)
class MetricSpec:
    """One metric of a protocol: ``metrics.build_metric(name, params)`` on ``prompt_set``, under ``group``."""

    name: str
    group: Group
    prompt_set: str
    suffix: str = ""
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class DerivedSpec:
    """A score computed from others: ``fn(*inputs)`` with inputs written ``"group.key"``."""

    name: str
    group: Group
    fn: DerivedFn
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class Generation:
    """Sampling settings. ``height``/``width``/``negative_prompt`` None: the pipeline's defaults."""

    steps: int = 50
    guidance: float = 7.5
    height: int | None = None
    width: int | None = None
    negative_prompt: str | None = None
    batch_size: int = 4

    def __post_init__(self) -> None:
        counts = {"steps": self.steps, "batch_size": self.batch_size, "height": self.height, "width": self.width}
        for name, value in counts.items():
            if value is None and name in ("height", "width"):
                continue
            check_count(name, value)
        check_finite("guidance", self.guidance)
        if self.negative_prompt is not None and not isinstance(self.negative_prompt, str):
            raise ConfigError(f"negative_prompt must be text, got {self.negative_prompt!r}.")


def check_finite(name: str, value: object) -> float:
    """Returns ``value`` as a float; raises ConfigError for NaN, infinities and non-numbers (strict JSON has none)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}.")
    return float(value)


@dataclass(frozen=True)
class EvalProtocol:
    """A checked evaluation protocol (see the module docstring for the YAML)."""

    name: str
    description: str
    generation: Generation
    prompts: tuple[PromptSetSpec, ...]
    metrics: tuple[MetricSpec, ...] = ()
    derived: tuple[DerivedSpec, ...] = ()
    concept: str | None = None
    baseline: bool = False
    reference: str = ""

    def prompt_set(self, name: str) -> PromptSetSpec:
        """Returns the prompt set called ``name``."""
        for spec in self.prompts:
            if spec.name == name:
                return spec
        raise ConfigError(
            f"protocol {self.name!r} has no prompt set {name!r}; it has {[p.name for p in self.prompts]}."
        )

    def needs_originals(self, set_name: str) -> bool:
        """Returns whether the original model's images of ``set_name`` are needed (references or baseline)."""
        if self.baseline:
            return True
        return any(m.prompt_set == set_name and needs_reference(m.name) for m in self.metrics)


def protocols_dir() -> Path:
    """Returns the folder of the shipped protocol YAML files."""
    return Path(str(resources.files("erasekit.evaluate") / "protocols"))


def available_protocols() -> list[str]:
    """Returns the names of the shipped protocols, sorted."""
    return sorted(p.stem for p in protocols_dir().glob("*.yaml"))


def load_protocol(name_or_path: str | Path) -> EvalProtocol:
    """Returns the protocol named ``name_or_path`` (shipped) or read from that YAML path, checked.

    Raises:
        ConfigError: unknown name, unreadable YAML, or a bad key or value (the message names it).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = protocols_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown protocol {name_or_path!r}; shipped: {', '.join(available_protocols())}.")
    if not path.is_file():
        raise ConfigError(f"protocol file {path} not found.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"protocol {path} is not valid YAML: {err}") from err
    return parse_protocol(raw, where=str(path))


def parse_protocol(raw: Any, *, where: str = "<protocol>") -> EvalProtocol:
    """Returns a checked :class:`EvalProtocol` from its YAML mapping.

    Raises:
        ConfigError: a missing, unknown or ill-typed key; names that do not refer to each other.
    """
    top = _mapping(raw, where)
    _keys(top, where, required={"name", "prompts"}, optional={
        "description", "reference", "concept", "generation", "baseline", "metrics", "derived"})  # fmt: skip
    generation = _build(Generation, _mapping(top.get("generation", {}), f"{where}: generation"), f"{where}: generation")
    sets = []
    for name, body in _mapping(top["prompts"], f"{where}: prompts").items():
        body = dict(_mapping(body, f"{where}: prompts.{name}"))
        if "seeds" in body:
            body["seeds"] = tuple(int(s) for s in body["seeds"])
        spec = _build(PromptSetSpec, {"name": name, **body}, f"{where}: prompts.{name}")
        if (spec.csv is None) == (spec.embedded is None):
            raise ConfigError(f"{where}: prompts.{name} needs exactly one of csv or embedded.")
        if spec.embedded not in (None, "target", "generality", "specificity"):
            raise ConfigError(f"{where}: prompts.{name}.embedded must be target, generality or specificity.")
        if spec.match is not None and spec.label_column is None:
            raise ConfigError(f"{where}: prompts.{name} has match but no label_column to match on.")
        sets.append(spec)
    if not sets:
        raise ConfigError(f"{where}: prompts is empty.")
    set_names = {s.name for s in sets}
    metrics = []
    for i, body in enumerate(top.get("metrics") or []):
        body = dict(_mapping(body, f"{where}: metrics[{i}]"))
        body["params"] = MappingProxyType(dict(body.get("params") or {}))
        spec = _build(MetricSpec, body, f"{where}: metrics[{i}]")
        _group(spec.group, f"{where}: metrics[{i}]")
        if spec.prompt_set not in set_names:
            raise ConfigError(
                f"{where}: metrics[{i}] reads prompt set {spec.prompt_set!r}, not one of {sorted(set_names)}."
            )
        try:
            check_metric_params(spec.name, spec.params)
        except UnknownMetricError as err:
            raise ConfigError(f"{where}: metrics[{i}]: {err}") from err
        metrics.append(spec)
    derived = []
    for i, body in enumerate(top.get("derived") or []):
        body = dict(_mapping(body, f"{where}: derived[{i}]"))
        body["inputs"] = tuple(body.get("inputs") or ())
        spec = _build(DerivedSpec, body, f"{where}: derived[{i}]")
        _group(spec.group, f"{where}: derived[{i}]")
        if spec.fn not in DERIVED_ARITY or len(spec.inputs) != DERIVED_ARITY[spec.fn]:
            raise ConfigError(f"{where}: derived[{i}] fn must be one of {DERIVED_ARITY} with that many inputs.")
        for key in spec.inputs:
            _group(key.partition(".")[0], f"{where}: derived[{i}] input {key!r}")
        derived.append(spec)
    return EvalProtocol(
        name=str(top["name"]),
        description=str(top.get("description", "")),
        reference=str(top.get("reference", "")),
        concept=top.get("concept"),
        baseline=bool(top.get("baseline", False)),
        generation=generation,
        prompts=tuple(sets),
        metrics=tuple(metrics),
        derived=tuple(derived),
    )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}.")
    return value


def _keys(body: Mapping[str, Any], where: str, *, required: set[str], optional: set[str]) -> None:
    missing, unknown = required - set(body), set(body) - required - optional
    if missing or unknown:
        raise ConfigError(f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}.")


def _group(group: str, where: str) -> None:
    if group not in GROUPS:
        raise ConfigError(f"{where}: group {group!r} is not one of {GROUPS}.")


def _build(cls: type, body: Mapping[str, Any], where: str) -> Any:
    """Returns ``cls(**body)`` with unknown or missing keys reported by name."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    required = {
        n for n, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    _keys(body, where, required=required, optional=set(fields) - required)
    try:
        return cls(**body)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from err
