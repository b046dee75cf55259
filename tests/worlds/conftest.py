from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

from erasekit.worlds.embedded.model import UNetSpec, build_unet, sampling_scheduler
from erasekit.worlds.embedded.pipeline import EmbeddedPipeline
from erasekit.worlds.embedded.text import load_tokenizer

TINY_SPEC = UNetSpec(channels=(32, 32), cross_attention=(False, True), heads=(2, 2))


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer()


def tiny_text_encoder(tokenizer, hidden: int = 384) -> BertModel:
    """A 1-layer random BERT with MiniLM's vocabulary and width: the real tokenizer, no big weights."""
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return BertModel(config).eval().requires_grad_(False)


@pytest.fixture
def tiny_pipe(tokenizer) -> EmbeddedPipeline:
    """A tiny random embedded pipeline: 2-level U-Net, 1-layer text encoder, real tokenizer."""
    torch.manual_seed(0)
    unet = build_unet(TINY_SPEC)
    pipe = EmbeddedPipeline(
        unet=unet, scheduler=sampling_scheduler(), tokenizer=tokenizer, text_encoder=tiny_text_encoder(tokenizer)
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
