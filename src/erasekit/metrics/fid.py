"""FID between the edited model's images and the original model's images for the same prompts and seeds.

The Fréchet distance is torchmetrics' ``FrechetInceptionDistance`` (float64 moments, its matrix square
root). The features are those of the FID Inception-v3 (TensorFlow's 2015-12-05 graph, pool3, 2048-d) in
its TorchScript form, ``inception-2015-12-05.pt``, the file StyleGAN2-ADA and clean-fid load: it takes
uint8 images of any size and resizes them itself. torch-fidelity (torchmetrics' default extractor)
needs torchvision, which erasekit does not depend on.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor, nn

from erasekit.errors import ConfigError, MissingWeightsError

from .base import BatchMetric, Images, Labels, Prompts, to_uint8
from .weights import resolve_weights


class InceptionFeatures(nn.Module):
    """The FID Inception-v3 pool3 features, [B, 2048], from uint8 images [B, 3, H, W].

    Args:
        weights: ``inception-2015-12-05.pt``; default ``$ERASEKIT_INCEPTION`` or torch hub's checkpoints.

    Raises:
        MissingWeightsError: the file is missing or is not that TorchScript model.
    """

    num_features = 2048

    def __init__(self, weights: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        path = resolve_weights("inception", weights)
        try:
            with warnings.catch_warnings():  # the published file is TorchScript; there is no torch.export form
                warnings.filterwarnings(
                    "ignore", message=".*torch.jit.load.* is deprecated", category=DeprecationWarning
                )
                self.net = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as err:
            raise MissingWeightsError(
                f"{path} is not the TorchScript FID Inception (inception-2015-12-05.pt): {str(err)[:200]}"
            ) from err

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.net(images, return_features=True)


class FID(BatchMetric):
    """Fréchet Inception Distance of edited images (``images``) to original ones (``references``).

    Args:
        weights: the Inception TorchScript file (see ``InceptionFeatures``).
        feature: a feature extractor to use instead, mapping uint8 [B, 3, H, W] to [B, d] (tests use a
            small one).

    ``compute()`` returns ``{"fid": ...}``; it needs at least two images on each side.
    """

    needs_reference = True

    def __init__(self, *, weights: str | os.PathLike[str] | None = None, feature: nn.Module | None = None) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance

        extractor = feature if feature is not None else InceptionFeatures(weights)
        self._fid = FrechetInceptionDistance(feature=extractor, normalize=False)

    def reset(self) -> None:
        self._fid.reset()

    def add_batch(self, images: Images, prompts: Prompts, labels: Labels, references: Images | None) -> None:
        self._fid.update(to_uint8(references), real=True)
        self._fid.update(to_uint8(images), real=False)

    def compute(self) -> dict[str, float]:
        if int(self._fid.fake_features_num_samples) < 2:
            raise ConfigError("FID needs at least 2 images on each side; generate more prompts or seeds.")
        return {"fid": float(self._fid.compute())}
