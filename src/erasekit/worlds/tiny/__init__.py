"""Tiny random diffusers pipelines (SD 1.x, 2.x, SDXL shapes) for tests and smoke runs.

Built from configs at diffusers' ``get_dummy_components`` sizes with the CLIP tokenizer shipped
beside this file, so they need no download. Weights are random: images are noise, but every code
path (tokenisation, text encoders, cross-attention K/V, LoRA loading) is the real one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from ...errors import ConfigError

TOKENIZER_DIR = Path(__file__).parent / "clip_tokenizer"
TinyKind = Literal["sd1", "sd2", "sdxl"]


def tiny_pipeline(kind: TinyKind = "sd1", *, seed: int = 0, text_dim: int = 32) -> Any:
    """A tiny random ``StableDiffusionPipeline`` (``"sd1"``, ``"sd2"``) or ``StableDiffusionXLPipeline``.

    ``text_dim`` is the width of each text encoder (SDXL's U-Net reads twice that).
    """
    if kind not in ("sd1", "sd2", "sdxl"):
        raise ConfigError(f"Unknown tiny pipeline {kind!r}: choose 'sd1', 'sd2' or 'sdxl'.")
    # SD 2.x pads with "!" instead of the end-of-text token; the attention mask is the same.
    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER_DIR, **({"pad_token": "!"} if kind == "sd2" else {}))
    text_cfg = dict(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        vocab_size=len(tokenizer),
        max_position_embeddings=tokenizer.model_max_length,
        hidden_size=text_dim,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=3,
        hidden_act="gelu" if kind == "sd2" else "quick_gelu",
    )
    unet_cfg: dict[str, Any] = dict(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=text_dim,
        attention_head_dim=(2, 4) if kind == "sd2" else 8,
        use_linear_projection=kind != "sd1",
        norm_num_groups=4,
    )
    if kind == "sdxl":
        unet_cfg.update(
            cross_attention_dim=2 * text_dim,  # both encoders' states concatenated
            transformer_layers_per_block=(1, 2),
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=text_dim + 6 * 8,  # pooled text + 6 size/crop ids
        )
    unet = _seeded(lambda: UNet2DConditionModel(**unet_cfg), seed)
    vae = _seeded(
        lambda: AutoencoderKL(
            block_out_channels=(8, 16),
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            latent_channels=4,
            norm_num_groups=4,
        ),
        seed + 1,
    )
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    text_encoder = _seeded(lambda: CLIPTextModel(CLIPTextConfig(**text_cfg)), seed + 2)
    if kind != "sdxl":
        pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.set_progress_bar_config(disable=True)
        return pipe
    text_encoder_2 = _seeded(
        lambda: CLIPTextModelWithProjection(CLIPTextConfig(**text_cfg, projection_dim=text_dim)), seed + 4
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=CLIPTokenizer.from_pretrained(TOKENIZER_DIR, pad_token="!"),
        unet=unet,
        scheduler=scheduler,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _seeded(build: Any, seed: int) -> Any:
    """Build a module with its default initialisation drawn from ``seed``, leaving the global RNG alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().eval()
