"""The attacks on the embedded world's pipeline: BERT text encoder, v-prediction, DPM-Solver, pixel "latents".

A tiny random copy of the world (its real tokenizer, a 1-layer BERT, a 2-level U-Net), so no trained
weights are needed; with them, ``embedded.load_pipeline()`` and ``embedded.load_judge()`` plug in as is.
"""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel

import erasekit
from erasekit.attacks import attack
from erasekit.text import TextEncoder
from erasekit.worlds.embedded.model import UNetSpec, build_unet, sampling_scheduler
from erasekit.worlds.embedded.pipeline import EmbeddedPipeline
from erasekit.worlds.embedded.text import load_tokenizer

from .conftest import FAST, same_state, unet_state


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture
def world(tokenizer):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = build_unet(UNetSpec(channels=(32, 32), cross_attention=(False, True), heads=(2, 2)))
        bert = BertModel(
            BertConfig(
                vocab_size=tokenizer.vocab_size,
                hidden_size=384,
                num_hidden_layers=1,
                num_attention_heads=4,
                intermediate_size=64,
                max_position_embeddings=64,
            )
        ).eval()
    pipe = EmbeddedPipeline(unet=unet, scheduler=sampling_scheduler(), tokenizer=tokenizer, text_encoder=bert)
    pipe.set_progress_bar_config(disable=True)
    return pipe, erasekit.erase(pipe, ["red"], method="uce")


def test_text_states_are_the_pipelines(world):
    pipe, _ = world
    prompts = ["a red car", "a painting of a blue house by van gogh"]
    torch.testing.assert_close(TextEncoder(pipe).encode_text(prompts), TextEncoder(pipe)(prompts).states)


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("derived", {}),
        ("derived_bounded", {}),
        ("ringabell_embed", {"eta": 0.9}),
        ("ringabell", {"budget": 2, "population": 4, "length": 3}),
        ("soft_prompt", {"budget": 3, "k": 2, "batch_size": 2, "train_images": 2}),
        ("unlearndiff", {"budget": 2, "iterations": 1, "k": 2}),
        ("p4d", {"budget": 2, "iterations": 1, "k": 2}),
    ],
)
def test_every_attack_runs_on_the_embedded_world(world, never, name, kw):
    pipe, edit = world
    before = unet_state(pipe)
    result = attack(pipe, name, "red", judge=never, edit=edit, prompts=["a red car", "a red ball"], sampling=FAST, **kw)
    assert same_state(pipe, before)
    for case in result.cases:
        assert case.outcome.prompt_embeds.shape == (24, 384) and case.outcome.image.size == (32, 32)
    if name in ("unlearndiff", "p4d"):
        prompt = result.cases[0].outcome.adversarial_prompt
        assert prompt.endswith("a red car") and not any(t in prompt for t in ("[CLS]", "[SEP]", "[PAD]"))
