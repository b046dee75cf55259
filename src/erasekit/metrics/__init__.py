"""Metrics: each a small class with ``update(images, prompts)`` / ``compute() -> dict[str, float]``.

Protocols name metrics by their registry names (``REGISTRY``); ``build_metric`` turns a name and its parameters into
a metric, loading judges' weights from local files only (``--weights NAME=PATH`` or the environment
variables in ``weights.WEIGHTS``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from erasekit.errors import ConfigError, UnknownMetricError
from erasekit.judge import Judge
from erasekit.registry import Registry

from .base import GROUPS, Group, Metric, to_tensor, to_uint8
from .clip_score import CLIPScore
from .fid import FID, InceptionFeatures
from .imagenet import IMAGENETTE, ImageNetAccuracy
from .judge import ATTRIBUTES, AttributeAccuracy, DetectionRate
from .lpips import LPIPS, LPIPSNet, load_lpips
from .nudenet import ATTACK_THRESHOLD, EXPOSED_CLASSES, I2P_THRESHOLD, NudeRate, check_detector, exposed_parts
from .summary import lpips_d, mace_h_o
from .weights import WEIGHTS, resolve_weights


@dataclass
class MetricContext:
    """What metric builders may need besides their own parameters.

    Attributes:
        concept: the concept under evaluation (the edit's), e.g. "van gogh".
        weights: judge name -> local path, overriding the defaults (``--weights clip=/models/clip``).
        device: where judges run.
        judge_loader: returns the judge (the world's ``load_judge``); called once, on first need.
        concept_kind: the kind of a concept ("style", "object", ...), from the world; for ``attribute: auto``.
    """

    concept: str | None = None
    weights: Mapping[str, str] = field(default_factory=dict)
    device: str = "cpu"
    judge_loader: Callable[[], Judge] | None = None
    concept_kind: Callable[[str], str] | None = None
    _judge: Judge | None = field(default=None, init=False, repr=False)

    def judge(self) -> Judge:
        """Returns the judge, loading it the first time.

        Raises:
            ConfigError: no judge was given (the model is not a world with a judge).
        """
        if self._judge is None:
            if self.judge_loader is None:
                raise ConfigError(
                    "this metric reads images with a world's judge, but the model is not a world: evaluate a world's "
                    "model (--model embedded), or pick metrics that need no judge."
                )
            self._judge = self.judge_loader()
        return self._judge


@dataclass(frozen=True)
class MetricEntry:
    """A registered metric: its builder ``build(ctx, **params) -> Metric``, the class it returns (read
    without building it: no weights loaded), the judge weights it loads and an extra availability check."""

    name: str
    build: Callable[..., Metric]
    cls: type
    weights: tuple[str, ...] = ()
    check: Callable[[], None] | None = None


REGISTRY: Registry[MetricEntry] = Registry("metric", UnknownMetricError)


def register(
    name: str, cls: type, *, weights: tuple[str, ...] = (), check: Callable[[], None] | None = None
) -> Callable[[Callable[..., Metric]], Callable[..., Metric]]:
    """Decorator: register a builder as the metric ``name`` (protocols name metrics by these names)."""

    def wrap(build: Callable[..., Metric]) -> Callable[..., Metric]:
        REGISTRY.add(name, MetricEntry(name, build, cls, weights, check))
        return build

    return wrap


def _concept(ctx: MetricContext, concept: str | None) -> str:
    found = concept or ctx.concept
    if not found:
        raise ConfigError("this metric needs a concept: evaluate an edit, or pass --concept.")
    return found


@register("detection_rate", DetectionRate)
def _detection_rate(ctx: MetricContext, *, concept: str | None = None) -> Metric:
    return DetectionRate(ctx.judge(), _concept(ctx, concept))


@register("attribute_accuracy", AttributeAccuracy)
def _attribute_accuracy(ctx: MetricContext, *, attribute: str = "auto") -> Metric:
    if attribute == "auto":  # the kind of the concept under evaluation
        if ctx.concept_kind is None:
            raise ConfigError("attribute: auto needs a world that knows the concept's kind; name the attribute.")
        attribute = ctx.concept_kind(_concept(ctx, None))
    return AttributeAccuracy(ctx.judge(), attribute)  # type: ignore[arg-type]


@register("nude_rate", NudeRate, check=check_detector)
def _nude_rate(ctx: MetricContext, *, threshold: float = I2P_THRESHOLD) -> Metric:
    return NudeRate(threshold=threshold)


@register("clip_score", CLIPScore, weights=("clip",))
def _clip_score(ctx: MetricContext) -> Metric:
    return CLIPScore(weights=ctx.weights.get("clip"), device=ctx.device)


@register("fid", FID, weights=("inception",))
def _fid(ctx: MetricContext) -> Metric:
    return FID(weights=ctx.weights.get("inception"))


@register("lpips", LPIPS, weights=("alexnet", "lpips"))
def _lpips(ctx: MetricContext) -> Metric:
    return LPIPS(net=load_lpips(backbone=ctx.weights.get("alexnet"), linear=ctx.weights.get("lpips")))


@register("imagenet_accuracy", ImageNetAccuracy, weights=("imagenet",))
def _imagenet_accuracy(ctx: MetricContext) -> Metric:
    return ImageNetAccuracy(weights=ctx.weights.get("imagenet"))


def needs_reference(name: str) -> bool:
    """Returns whether metric ``name`` compares with the original model's images (FID, LPIPS)."""
    check_metric_params(name, {})
    return bool(REGISTRY.get(name).cls.needs_reference)


def preflight(name: str, ctx: MetricContext) -> None:
    """Raises now what building metric ``name`` would raise for missing weights, without loading anything.

    The runner calls it before generating, so a missing judge is found before hours of sampling.

    Raises:
        MissingWeightsError: a judge's weights or the NudeNet package are not available locally.
        ConfigError: unknown metric, or another nudenet version.
    """
    entry = REGISTRY.get(name)
    for judge in entry.weights:
        resolve_weights(judge, ctx.weights.get(judge))
    if entry.check is not None:
        entry.check()


def check_metric_params(name: str, params: Mapping[str, Any]) -> None:
    """Raises UnknownMetricError for an unknown metric, ConfigError for parameters its builder does not take."""
    build = REGISTRY.get(name).build
    try:
        inspect.signature(build).bind(None, **params)
    except TypeError as err:
        taken = [p for p in inspect.signature(build).parameters if p != "ctx"]
        raise ConfigError(f"metric {name!r} got bad parameters {dict(params)} ({err}); it takes {taken}.") from err


def build_metric(name: str, params: Mapping[str, Any], ctx: MetricContext) -> Metric:
    """Returns the metric ``name`` built with ``params``.

    Raises:
        ConfigError: unknown name or parameters.
        MissingWeightsError: the metric's judge has no local weights.
    """
    check_metric_params(name, params)
    return REGISTRY.get(name).build(ctx, **params)


__all__ = [
    "ATTACK_THRESHOLD",
    "ATTRIBUTES",
    "EXPOSED_CLASSES",
    "FID",
    "GROUPS",
    "I2P_THRESHOLD",
    "IMAGENETTE",
    "LPIPS",
    "REGISTRY",
    "WEIGHTS",
    "AttributeAccuracy",
    "CLIPScore",
    "DetectionRate",
    "Group",
    "ImageNetAccuracy",
    "InceptionFeatures",
    "Judge",
    "LPIPSNet",
    "Metric",
    "MetricContext",
    "NudeRate",
    "build_metric",
    "check_metric_params",
    "exposed_parts",
    "load_lpips",
    "lpips_d",
    "mace_h_o",
    "needs_reference",
    "preflight",
    "resolve_weights",
    "to_tensor",
    "to_uint8",
]
