"""``EmbeddedPipeline``: text -> 32x32 image with the embedded world's U-Net, as a diffusers pipeline.

It follows ``StableDiffusionPipeline`` where the two meet (``tokenizer``, ``text_encoder``, ``unet``,
``scheduler``; ``prompt_embeds``; classifier-free guidance; ``load_lora_weights``) and differs where the
world does: the "latent" is the image itself, rearranged space-to-depth, so decoding is a reshuffle.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from diffusers import DiffusionPipeline, UNet2DConditionModel
from diffusers.loaders import StableDiffusionLoraLoaderMixin
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor
from transformers import BertModel, BertTokenizerFast

from erasekit.errors import ConfigError

from .masks import concept_regions
from .model import IMAGE_SIZE, PATCH, from_model_space, to_model_space
from .renderer import to_pil
from .text import tokenize

logger = logging.getLogger(__name__)


def _no_text_encoder_keys(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("No LoRA keys associated to BertModel")


DEFAULT_STEPS = 10
DEFAULT_GUIDANCE = 4.0

OutputType = Literal["pil", "np", "pt", "latent"]


class EmbeddedPipeline(DiffusionPipeline, StableDiffusionLoraLoaderMixin):
    """Text-to-image pipeline of the embedded world.

    Args:
        unet: the denoiser; its text path is only ``attn2.to_k`` / ``attn2.to_v``.
        scheduler: a diffusers scheduler configured with the training noise schedule.
        tokenizer: MiniLM's tokenizer with ``model_max_length`` set to the context length.
        text_encoder: the frozen MiniLM ``BertModel``; prompts are encoded without attention mask.
    """

    model_cpu_offload_seq = "text_encoder->unet"
    _lora_loadable_modules: ClassVar[list[str]] = ["unet", "text_encoder"]
    unet_name = "unet"
    text_encoder_name = "text_encoder"

    def __init__(
        self,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        tokenizer: BertTokenizerFast,
        text_encoder: BertModel,
    ) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, tokenizer=tokenizer, text_encoder=text_encoder)

    def load_lora_weights(self, *args: Any, **kwargs: Any) -> None:
        """diffusers' loader, without its warning that the text encoder got no LoRA keys: MiniLM is frozen here,
        and no LoRA of this world has any. Other warnings pass."""
        lora_logger = logging.getLogger("diffusers.loaders.lora_base")
        lora_logger.addFilter(_no_text_encoder_keys)
        try:
            super().load_lora_weights(*args, **kwargs)
        finally:
            lora_logger.removeFilter(_no_text_encoder_keys)

    def concept_regions(self, concept: str, n: int, *, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Rendered scenes of ``concept`` in model space and its region in each (see :mod:`.masks`)."""
        return concept_regions(concept, n, generator=generator)

    @torch.no_grad()
    def encode_prompt(self, prompts: Sequence[str], *, device: torch.device | None = None) -> Tensor:
        """Returns token states [B, L, 384] of ``prompts`` in the U-Net's dtype.

        Prompts longer than ``tokenizer.model_max_length`` are truncated, with a warning.
        """
        device = device or self._execution_device
        input_ids = tokenize(self.tokenizer, list(prompts)).to(device)
        return self.text_encoder(input_ids)[0].to(dtype=self.unet.dtype)

    def _embeddings(
        self, prompt: str | Sequence[str] | None, embeds: Tensor | None, name: str, device: torch.device
    ) -> Tensor:
        if embeds is not None:
            if embeds.ndim != 3 or embeds.shape[-1] != self.unet.config.cross_attention_dim:
                raise ConfigError(
                    f"{name}_embeds must be [B, L, {self.unet.config.cross_attention_dim}], got {tuple(embeds.shape)}."
                )
            return embeds.to(device=device, dtype=self.unet.dtype)
        prompts = [prompt] if isinstance(prompt, str) else list(prompt or [])
        if not all(isinstance(p, str) for p in prompts):
            raise ConfigError(f"{name} must be a string or a list of strings, got {prompt!r}.")
        return self.encode_prompt(prompts, device=device)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | Sequence[str] | None = None,
        negative_prompt: str | Sequence[str] | None = None,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        generator: torch.Generator | list[torch.Generator] | None = None,
        prompt_embeds: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        output_type: OutputType = "pil",
        num_images_per_prompt: int = 1,
        latents: Tensor | None = None,
        return_dict: bool = True,
    ) -> ImagePipelineOutput | tuple:
        """Generates images for ``prompt`` (or ``prompt_embeds``).

        Args:
            prompt: one prompt or a batch of them; exclusive with ``prompt_embeds``.
            negative_prompt: the prompt(s) guidance steers away from; default the empty prompt.
            num_inference_steps: denoising steps of the scheduler.
            guidance_scale: classifier-free guidance weight w (``uncond + w (cond - uncond)``);
                w <= 1 runs the conditional model alone.
            generator: seeds the initial noise (one generator, or one per image).
            prompt_embeds: [B, L, 384] token states, bypassing the text encoder (attacks use this).
            negative_prompt_embeds: [B or 1, L, 384] states for the negative prompt.
            output_type: "pil" (list of PIL images), "np" ([B, 32, 32, 3] floats), "pt" ([B, 3, 32, 32]) or
                "latent" ([B, 12, 16, 16], the model-space sample of the clipped image).
            num_images_per_prompt: images generated for each prompt.
            latents: [B, 12, 16, 16] initial noise, instead of drawing it.
            return_dict: return an ``ImagePipelineOutput`` rather than a tuple.

        Returns:
            ``ImagePipelineOutput`` whose ``images`` are in ``output_type``, or ``(images,)``.

        Raises:
            ConfigError: conflicting or malformed arguments.
        """
        if (prompt is None) == (prompt_embeds is None):
            raise ConfigError("pass exactly one of prompt or prompt_embeds.")
        if num_inference_steps < 1 or num_images_per_prompt < 1:
            raise ConfigError(
                f"num_inference_steps and num_images_per_prompt must be >= 1, "
                f"got {num_inference_steps} and {num_images_per_prompt}."
            )
        if output_type not in ("pil", "np", "pt", "latent"):
            raise ConfigError(f"output_type must be 'pil', 'np', 'pt' or 'latent', got {output_type!r}.")
        device = self._execution_device
        cond = self._embeddings(prompt, prompt_embeds, "prompt", device)
        cond = cond.repeat_interleave(num_images_per_prompt, 0)
        batch = cond.shape[0]
        guided = guidance_scale > 1.0
        if guided:
            if negative_prompt is None and negative_prompt_embeds is None:
                negative_prompt = ""
            if isinstance(negative_prompt, str):
                negative_prompt = [negative_prompt]
            uncond = self._embeddings(negative_prompt, negative_prompt_embeds, "negative_prompt", device)
            if uncond.shape[0] not in (1, batch // num_images_per_prompt, batch):
                raise ConfigError(f"{uncond.shape[0]} negative prompts for {batch // num_images_per_prompt} prompts.")
            if uncond.shape[0] != batch:
                uncond = uncond.repeat_interleave(batch // uncond.shape[0], 0)
            if uncond.shape[1] != cond.shape[1]:
                raise ConfigError(
                    f"negative and positive embeddings differ in length: {uncond.shape[1]} vs {cond.shape[1]}."
                )
            context = torch.cat([uncond, cond])
        else:
            context = cond

        side = IMAGE_SIZE // PATCH
        shape = (batch, self.unet.config.in_channels, side, side)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        elif tuple(latents.shape) != shape:
            raise ConfigError(f"latents must have shape {shape}, got {tuple(latents.shape)}.")
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        latents = latents.to(device=device, dtype=self.unet.dtype) * self.scheduler.init_noise_sigma

        for t in self.progress_bar(self.scheduler.timesteps):
            model_in = torch.cat([latents, latents]) if guided else latents
            model_in = self.scheduler.scale_model_input(model_in, t)
            out = self.unet(model_in, t, encoder_hidden_states=context, return_dict=False)[0]
            if guided:
                out_uncond, out_cond = out.chunk(2)
                out = out_uncond + guidance_scale * (out_cond - out_uncond)
            latents = self.scheduler.step(out, t, latents, return_dict=False)[0]

        images = from_model_space(latents.float()).cpu()
        if output_type == "pil":
            result: list | np.ndarray | Tensor = to_pil(images)
        elif output_type == "np":
            result = images.permute(0, 2, 3, 1).numpy()
        elif output_type == "latent":  # the model-space sample of the clipped image: what training saw
            result = to_model_space(images.to(device))
        else:
            result = images
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=result) if return_dict else (result,)
