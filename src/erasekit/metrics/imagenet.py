"""Top-1 accuracy of an ImageNet classifier on the class each prompt names (RECE's object erasure).

RECE classifies imagenette generations with an ImageNet ResNet-50 and reports accuracy on the erased
class (efficacy, lower is better) and on the other nine (specificity, higher is better). Here the
classifier is a transformers image-classification folder (``microsoft/resnet-50`` by default) read
from disk only. RECE used torchvision's ResNet-50 weights, which erasekit cannot load without
torchvision: the protocol is the paper's, the classifier is a ResNet-50 trained on the same ImageNet-1k
labels, so absolute accuracies can differ by a few points from the paper's.
"""

from __future__ import annotations

import os

import torch

from erasekit.errors import ConfigError, MissingWeightsError

from .base import Images, Labels, MeanMetric, Prompts, check_batch
from .weights import resolve_weights

IMAGENETTE: dict[str, int] = {
    "tench": 0,
    "english springer": 217,
    "cassette player": 482,
    "chain saw": 491,
    "church": 497,
    "french horn": 566,
    "garbage truck": 569,
    "gas pump": 571,
    "golf ball": 574,
    "parachute": 701,
}
"""The ten imagenette classes (as imagenette.csv spells them, lower-cased) and their ImageNet-1k indices."""


class ImageNetAccuracy(MeanMetric):
    """Fraction of images classified (top-1) as the ImageNet class of their label.

    Args:
        weights: a transformers image-classification folder; default ``$ERASEKIT_IMAGENET_CLASSIFIER``
            or ``microsoft/resnet-50`` from the local Hugging Face cache.
        classes: label -> ImageNet-1k index; default the imagenette classes.
        batch_size: images per forward pass.
    """

    key = "classifier_acc"

    def __init__(
        self,
        *,
        weights: str | os.PathLike[str] | None = None,
        classes: dict[str, int] | None = None,
        batch_size: int = 32,
    ) -> None:
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        path = resolve_weights("imagenet", weights)
        try:
            self.model = AutoModelForImageClassification.from_pretrained(path, local_files_only=True).eval()
            self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as err:
            raise MissingWeightsError(
                f"{path} is not a transformers image classifier with its preprocessor_config.json "
                f"({type(err).__name__}: {str(err)[:200]})."
            ) from err
        self.classes = {k.lower(): v for k, v in (classes or IMAGENETTE).items()}
        self.batch_size = batch_size
        self.reset()

    @torch.no_grad()
    def add_batch(self, images: Images, prompts: Prompts, labels: Labels, references: Images | None) -> None:
        if labels is None:
            raise ConfigError("ImageNetAccuracy needs the class of each prompt: give the prompt set a label column.")
        check_batch(images, labels, "labels")
        unknown = sorted({str(label) for label in labels if str(label).lower() not in self.classes})
        if unknown:
            raise ConfigError(f"labels {unknown} are not ImageNet classes this metric knows: {sorted(self.classes)}.")
        targets = torch.tensor([self.classes[str(label).lower()] for label in labels])
        correct = 0
        for i in range(0, len(images), self.batch_size):
            inputs = self.processor(
                images=[im.convert("RGB") for im in images[i : i + self.batch_size]], return_tensors="pt"
            )
            predicted = self.model(**inputs).logits.argmax(-1)
            correct += int((predicted == targets[i : i + self.batch_size]).sum())
        self.add(correct, len(images))
