import pytest
from PIL import Image

from erasekit.errors import ConfigError, MissingWeightsError, UnknownMetricError
from erasekit.metrics import (
    REGISTRY,
    WEIGHTS,
    AttributeAccuracy,
    DetectionRate,
    MetricContext,
    NudeRate,
    build_metric,
    needs_reference,
    preflight,
)


class Judge:
    def predict(self, images):
        return [{"object": "car", "color": "red", "style": "monet", "unsafe": False} for _ in images]

    def detects(self, images, concept):
        return [concept == "monet" for _ in images]


def test_every_metric_has_its_class_and_only_fid_and_lpips_need_references():
    assert {name for name in REGISTRY.names() if needs_reference(name)} == {"fid", "lpips"}


def test_judge_metrics_take_the_concept_from_the_context_and_load_the_judge_once():
    loads = []
    ctx = MetricContext(
        concept="monet", judge_loader=lambda: loads.append(1) or Judge(), concept_kind=lambda c: "style"
    )
    rate = build_metric("detection_rate", {}, ctx)
    accuracy = build_metric("attribute_accuracy", {}, ctx)  # "auto": the kind of "monet" is style
    assert isinstance(rate, DetectionRate) and rate.concept == "monet" and loads == [1]
    assert isinstance(accuracy, AttributeAccuracy) and accuracy.attribute == "style"
    accuracy.update([Image.new("RGB", (4, 4))], ["p"], labels=["monet"])
    assert accuracy.compute() == {"judge_acc": 1.0}
    with pytest.raises(ConfigError, match="needs a concept"):
        build_metric("detection_rate", {}, MetricContext(judge_loader=Judge))


def test_parameters_are_checked():
    assert build_metric("nude_rate", {"threshold": 0.45}, MetricContext()).threshold == 0.45
    assert isinstance(build_metric("nude_rate", {}, MetricContext()), NudeRate)
    with pytest.raises(ConfigError, match=r"got bad parameters \{'thresh': 0.4\}.*takes \['threshold'\]"):
        build_metric("nude_rate", {"thresh": 0.4}, MetricContext())
    with pytest.raises(UnknownMetricError, match="Unknown metric 'psnr'"):
        build_metric("psnr", {}, MetricContext())


@pytest.mark.parametrize("name, judge", [("clip_score", "clip"), ("fid", "inception"), ("lpips", "alexnet"),
                                         ("imagenet_accuracy", "imagenet")])  # fmt: skip
def test_metrics_with_weights_fail_clearly_when_the_weights_are_missing(name, judge, tmp_path, monkeypatch):
    monkeypatch.delenv(WEIGHTS[judge].env, raising=False)
    ctx = MetricContext(weights={judge: str(tmp_path / "missing")})
    with pytest.raises(MissingWeightsError, match=rf"{WEIGHTS[judge].env}=PATH"):
        build_metric(name, {}, ctx)


@pytest.mark.parametrize("name", [n for n in REGISTRY.names() if REGISTRY.get(n).weights])
def test_preflight_finds_missing_weights_without_loading_anything(name, tmp_path, monkeypatch):
    ctx = MetricContext(weights={judge: str(tmp_path / "missing") for judge in REGISTRY.get(name).weights})
    with pytest.raises(MissingWeightsError, match="--weights"):
        preflight(name, ctx)


def test_preflight_of_nudenet_checks_the_package(monkeypatch):
    import importlib.metadata

    def version(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(MissingWeightsError, match=r"pip install 'erasekit\[nudenet\]'"):
        preflight("nude_rate", MetricContext())
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "3.4.2")
    with pytest.raises(ConfigError, match=r"nudenet 3.4.2 is installed .* nudenet==3.0.8"):
        preflight("nude_rate", MetricContext())
    preflight("detection_rate", MetricContext())  # needs nothing up front
