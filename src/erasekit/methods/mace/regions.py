"""Where each concept is in an image: the images and masks MACE's LoRAs train on.

A *region source* is a callable ``source(concept, n, *, generator) -> (x0, masks)``: ``x0 [n, C, h, w]``
samples in the space the U-Net denoises (SD's VAE latents, a world's model space) that show the
concept, and ``masks [n, H, W]`` in [0, 1], the concept's region in each (the whole image for a
style, as the reference trains its art LoRAs without masks). MACE takes it from, in order, the
``regions=`` argument of :func:`~erasekit.methods.mace.train.train_loras` or the pipeline's
``concept_regions`` attribute (a world provides one; a user may set it).

For a real model, :func:`from_segmenter` makes one from a segmenter, as the reference does with
Grounded-SAM: the original model generates images of the concept and ``segmenter(images, concept)``
marks the concept in them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from ...errors import ConfigError

Segmenter = Callable[[Tensor, str], Tensor]  # (images [n, 3, H, W] in [0, 1], concept) -> masks [n, H, W]


class RegionSource(Protocol):
    def __call__(self, concept: str, n: int, *, generator: torch.Generator) -> tuple[Tensor, Tensor]: ...


def region_source(pipe: Any, regions: RegionSource | None) -> RegionSource | None:
    """``regions`` if given, else the pipeline's ``concept_regions`` (None: no source)."""
    return regions if regions is not None else getattr(pipe, "concept_regions", None)


def checked_regions(source: RegionSource, concept: str, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``source``'s ``(x0 [n, C, h, w], masks [n, H, W])`` for ``concept``, float32.

    Raises:
        ConfigError: wrong shapes, or no image with any pixel of the concept's region.
    """
    x0, masks = source(concept, n, generator=generator)
    if x0.ndim != 4 or masks.ndim != 3 or x0.shape[0] != masks.shape[0] or x0.shape[0] < 1:
        raise ConfigError(
            f"The region source gave x0 {tuple(x0.shape)} and masks {tuple(masks.shape)} for {concept!r}: it must "
            "return x0 [n, C, h, w] and masks [n, H, W] for the same n ≥ 1 images."
        )
    if not (masks > 0.5).any():
        raise ConfigError(
            f"No image of {concept!r} has any pixel in its region, so the attention loss has nothing to act on. "
            "Fix the segmenter (its prompt or threshold) so that it finds the concept, or, for a style or a concept "
            "without a place in the image, return whole-image masks (torch.ones) as the reference does for art."
        )
    return x0.float(), masks.float()


def from_segmenter(
    pipe: Any, segmenter: Segmenter, *, steps: int = 25, guidance: float = 7.5, template: str = "a photo of {}"
) -> RegionSource:
    """A region source from the original model's images of the concept and ``segmenter`` (a pipeline with a VAE).

    The images are drawn by ``pipe`` as it is when the source is called (MACE calls it before any
    of its updates is applied), with ``template`` around the concept.

    Raises:
        ConfigError: the pipeline has no VAE to decode its latents for the segmenter.
    """
    vae = getattr(pipe, "vae", None)
    if vae is None:
        raise ConfigError(
            f"{type(pipe).__name__} has no VAE, so its latents cannot be decoded for a segmenter: give the pipeline a "
            "concept_regions(concept, n, *, generator) of its own (a world's pipeline has one)."
        )

    @torch.no_grad()
    def source(concept: str, n: int, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        out = pipe(
            [template.format(concept)] * n,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generator,
            output_type="latent",
        )
        x0 = out.images  # [n, C, h, w], scaled latents
        images = (vae.decode(x0 / vae.config.scaling_factor).sample.float() + 1) / 2
        return x0, segmenter(images.clamp(0, 1), concept)

    return source
