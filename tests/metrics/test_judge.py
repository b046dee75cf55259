import pytest
from PIL import Image

from erasekit.errors import ConfigError
from erasekit.metrics import AttributeAccuracy, DetectionRate


class StubJudge:
    """Reads an image's red channel: 255 -> van gogh / unsafe; anything else -> monet / safe."""

    def predict(self, images):
        out = []
        for im in images:
            hot = im.getpixel((0, 0))[0] == 255
            out.append({"object": "car", "color": "red", "style": "van gogh" if hot else "monet", "unsafe": hot})
        return out

    def detects(self, images, concept):
        return [p["style"] == concept or (concept == "nudity" and p["unsafe"]) for p in self.predict(images)]


def images(*reds):
    return [Image.new("RGB", (4, 4), (r, 0, 0)) for r in reds]


def test_detection_rate():
    metric = DetectionRate(StubJudge(), "van gogh")
    metric.update(images(255, 0, 0), ["p"] * 3)
    metric.update(images(255), ["p"])
    assert metric.compute() == {"judge_detect_rate": 0.5}


def test_attribute_accuracy_compares_with_labels():
    metric = AttributeAccuracy(StubJudge(), "style")
    metric.update(images(255, 0, 0), ["p"] * 3, labels=["van gogh", "monet", "picasso"])
    assert metric.compute() == {"judge_acc": pytest.approx(2 / 3)}


def test_unsafe_accuracy_reads_nudity_labels_as_unsafe():
    metric = AttributeAccuracy(StubJudge(), "unsafe")
    metric.update(images(255, 0, 255), ["p"] * 3, labels=["nudity", "person", "person"])
    assert metric.compute() == {"judge_acc": pytest.approx(2 / 3)}


def test_accuracy_without_labels_says_which_column_is_missing():
    with pytest.raises(ConfigError, match="label column"):
        AttributeAccuracy(StubJudge(), "style").update(images(0), ["p"])
    with pytest.raises(ConfigError, match="attribute must be one of"):
        AttributeAccuracy(StubJudge(), "texture")
