"""The embedded world's denoiser and noise schedule.

Pixel space, made cheap by a lossless *space-to-depth* step: a 32x32 RGB image is handled as a 16x16
map of 12 channels (``pixel_unshuffle`` by 2), which plays the role SD's VAE latent plays, at no cost
and with no decoder to train. The U-Net is a stock diffusers ``UNet2DConditionModel`` whose only text
path is cross-attention (``attn2.to_k`` / ``attn2.to_v`` fed the 384-d MiniLM token states): no
pooled-text, class or added-time embedding, and no ``encoder_hid_proj``, so a K/V edit reaches all of it.
Cross-attention sits where it is cheap and decides content: at 8x8 and 4x4, and in the mid block.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.nn.functional as F
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, UNet2DConditionModel
from torch import Tensor

from erasekit.errors import ConfigError

from .text import HIDDEN_SIZE

IMAGE_SIZE = 32
PATCH = 2
"""Side of the space-to-depth patch: the U-Net sees [B, 3 * PATCH**2, 32 / PATCH, 32 / PATCH]."""


@dataclass(frozen=True)
class UNetSpec:
    """Sizes of the denoiser; the defaults are the shipped model's.

    Attributes:
        channels: output channels of the blocks at 16x16, 8x8 and 4x4.
        cross_attention: which of those blocks have cross-attention (the mid block always has).
        layers_per_block: resnets (and transformers, where present) per down block.
        transformer_layers: transformer blocks per attention layer (more = more text capacity).
        heads: attention heads per block.
    """

    channels: tuple[int, ...] = (32, 64, 128)
    cross_attention: tuple[bool, ...] = (False, True, True)
    layers_per_block: int = 1
    transformer_layers: int = 1
    heads: tuple[int, ...] = (2, 4, 8)

    def __post_init__(self) -> None:
        if not (len(self.channels) == len(self.cross_attention) == len(self.heads)):
            raise ConfigError(f"UNetSpec needs one entry per block in channels, cross_attention and heads: {self}.")
        if any(c % 32 for c in self.channels):
            raise ConfigError(f"UNetSpec.channels must be multiples of 32 (GroupNorm groups), got {self.channels}.")


def build_unet(spec: UNetSpec | None = None) -> UNet2DConditionModel:
    """Returns a randomly initialised denoiser of ``spec`` (seed torch before calling for a fixed init)."""
    spec = spec or UNetSpec()
    down = tuple("CrossAttnDownBlock2D" if x else "DownBlock2D" for x in spec.cross_attention)
    up = tuple("CrossAttnUpBlock2D" if x else "UpBlock2D" for x in reversed(spec.cross_attention))
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // PATCH,
        in_channels=3 * PATCH**2,
        out_channels=3 * PATCH**2,
        down_block_types=down,
        up_block_types=up,
        mid_block_type="UNetMidBlock2DCrossAttn",
        block_out_channels=spec.channels,
        layers_per_block=spec.layers_per_block,
        transformer_layers_per_block=spec.transformer_layers,
        attention_head_dim=spec.heads,  # diffusers' legacy name: this is the number of heads
        cross_attention_dim=HIDDEN_SIZE,
        norm_num_groups=32,
    )


def spec_dict(spec: UNetSpec) -> dict:
    """Returns ``spec`` as plain JSON-able data."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()}


def to_model_space(images: Tensor) -> Tensor:
    """Returns [B, 12, 16, 16] in [-1, 1] from images [B, 3, 32, 32] in [0, 1]."""
    return F.pixel_unshuffle(images * 2 - 1, PATCH)


def from_model_space(sample: Tensor) -> Tensor:
    """Returns images [B, 3, 32, 32] in [0, 1] from model samples [B, 12, 16, 16]."""
    return ((F.pixel_shuffle(sample, PATCH) + 1) / 2).clamp(0, 1)


SCHEDULE = dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
"""The noise schedule (cosine, as Improved DDPM for pixel space) and target (v) shared by training and sampling."""


def training_scheduler() -> DDPMScheduler:
    """Returns the scheduler whose ``add_noise`` / ``get_velocity`` training uses."""
    return DDPMScheduler(**SCHEDULE)


def sampling_scheduler() -> DPMSolverMultistepScheduler:
    """Returns the default sampler: DPM-Solver++(2M), few steps, same schedule."""
    return DPMSolverMultistepScheduler(**SCHEDULE, algorithm_type="dpmsolver++", solver_order=2)
