"""The model under attack: a pipeline, the edit applied to it, and the way back to the original weights.

Attacks see the edited model; some also need the original one (RECE's derived embedding reads both
weights, the denoising attacks learn from images only the original model still makes). An
:class:`erasekit.Edit` is exact to apply and remove, so one pipeline serves both: :meth:`Victim.original`
removes the edit for the length of a ``with`` block and puts it back, bit-identical.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from ..edit import Edit, applied_edits
from ..errors import ConfigError
from ..targets import denoiser

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    """How images are generated: ``None`` keeps the pipeline's own default."""

    steps: int | None = None  # num_inference_steps
    guidance: float | None = None  # guidance_scale

    def __post_init__(self) -> None:
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"Sampling.steps must be ≥ 1, got {self.steps}.")

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.steps is not None:
            out["num_inference_steps"] = self.steps
        if self.guidance is not None:
            out["guidance_scale"] = self.guidance
        return out


class Victim:
    """A pipeline under attack, with ``edit`` applied while the attack runs.

    Args:
        pipe: a single-encoder diffusers text-to-image pipeline (SD 1.x/2.x, the embedded world).
        edit: the erasure to attack. None attacks the pipeline as it is (then it is its own
            original); a pipeline that already carries an applied edit must pass it here instead.
        sampling: steps and guidance of every image the attack makes.
        force: apply ``edit`` even when its base fingerprint does not match ``pipe``.

    Raises:
        ConfigError: ``edit`` is None but the pipeline carries an applied edit.
    """

    def __init__(self, pipe: Any, edit: Edit | None = None, *, sampling: Sampling | None = None, force: bool = False):
        if edit is None and applied_edits(denoiser(pipe)):  # gated and prompt-scaled edits merge no weight
            raise ConfigError(
                "The pipeline carries an applied edit but none was passed: the attack could not reach the original "
                "weights. Remove it first and pass it as edit=..., so the attack applies and removes it."
            )
        if getattr(pipe, "safety_checker", None) is not None:
            logger.warning(
                "%s has a safety checker: it blacks out images it flags, so the judge may not see what the attack "
                "made. Red-teaming usually runs with pipe.safety_checker = None.",
                type(pipe).__name__,
            )
        self.pipe = pipe
        self.edit = edit
        self.sampling = sampling or Sampling()
        self.force = force

    @property
    def device(self) -> torch.device:
        return denoiser(self.pipe).device

    @contextmanager
    def attacking(self) -> Iterator[Victim]:
        """Apply the edit for the ``with`` block, remove it after, even on error."""
        if self.edit is None:
            yield self
            return
        self.edit.apply(self.pipe, force=self.force)
        try:
            yield self
        finally:
            self.edit.remove(self.pipe)

    @contextmanager
    def original(self) -> Iterator[Any]:
        """The pipeline with the edit removed for the ``with`` block (inside :meth:`attacking`)."""
        if self.edit is None:
            yield self.pipe
            return
        self.edit.remove(self.pipe)
        try:
            yield self.pipe
        finally:
            self.edit.apply(self.pipe, force=True)  # the same weights as before the block

    @torch.no_grad()
    def generate(self, embeds: Tensor, seeds: Sequence[int], *, batch_size: int = 8) -> list[Image.Image]:
        """One image per row of ``embeds`` ``[B, L, d]``, row ``i`` drawn from ``seeds[i]``."""
        return [img for part in self._batches(embeds, seeds, batch_size, "pil") for img in part]

    @torch.no_grad()
    def latents(self, embeds: Tensor, seeds: Sequence[int], *, batch_size: int = 8) -> Tensor:
        """``[B, C, h, w]`` the final latents of the images :meth:`generate` would make."""
        return torch.cat(list(self._batches(embeds, seeds, batch_size, "latent")))

    def _batches(self, embeds: Tensor, seeds: Sequence[int], batch_size: int, kind: str) -> Iterator[Any]:
        if embeds.shape[0] != len(seeds):
            raise ConfigError(f"{embeds.shape[0]} embeddings but {len(seeds)} seeds: give one seed per image.")
        dtype = self.pipe.unet.dtype
        for start in range(0, len(seeds), batch_size):
            rows = embeds[start : start + batch_size].to(self.device, dtype)
            gens = [torch.Generator().manual_seed(int(s)) for s in seeds[start : start + batch_size]]
            yield self._call(rows, gens, kind)

    def _call(self, embeds: Tensor, generators: list[torch.Generator], kind: str) -> Any:
        kwargs = dict(prompt_embeds=embeds, generator=generators, **self.sampling.kwargs())
        images = self.pipe(output_type=kind, **kwargs).images
        return images if kind == "pil" else images.float()
