import pytest
import torch
from PIL import Image
from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

from erasekit.errors import ConfigError, MissingWeightsError
from erasekit.metrics import IMAGENETTE, ImageNetAccuracy


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("resnet")
    cfg = ResNetConfig(embedding_size=8, hidden_sizes=[8], depths=[1], num_labels=1000)
    ResNetForImageClassification(cfg).save_pretrained(path)
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=1.0).save_pretrained(path)
    return path


def test_accuracy_against_the_classifier_own_predictions(tiny_classifier):
    metric = ImageNetAccuracy(weights=tiny_classifier)
    images = [Image.new("RGB", (40, 40), (i * 40, 90, 200 - i * 30)) for i in range(4)]
    with torch.no_grad():
        inputs = metric.processor(images=images, return_tensors="pt")
        predicted = metric.model(**inputs).logits.argmax(-1).tolist()
    names = {v: k for k, v in IMAGENETTE.items()}
    labels = [names.get(predicted[0], "tench"), "church", "church", "parachute"]
    metric.update(images, ["p"] * 4, labels=labels)
    expected = sum(IMAGENETTE[label] == p for label, p in zip(labels, predicted)) / 4
    assert metric.compute()["classifier_acc"] == pytest.approx(expected)


def test_labels_are_required_and_known(tiny_classifier):
    metric = ImageNetAccuracy(weights=tiny_classifier)
    with pytest.raises(ConfigError, match="label column"):
        metric.update([Image.new("RGB", (8, 8))], ["p"])
    with pytest.raises(ConfigError, match=r"\['zebra'\] are not ImageNet classes"):
        metric.update([Image.new("RGB", (8, 8))], ["p"], labels=["zebra"])


def test_missing_classifier(tmp_path):
    with pytest.raises(MissingWeightsError, match="microsoft/resnet-50"):
        ImageNetAccuracy(weights=tmp_path / "none")
