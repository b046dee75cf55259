from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention

from erasekit.errors import ConfigError
from erasekit.worlds.embedded.model import UNetSpec, build_unet
from erasekit.worlds.embedded.pipeline import EmbeddedPipeline
from erasekit.worlds.embedded.text import CONTEXT_LENGTH

PROMPTS = ["a red car", "a painting of a blue dog by van gogh"]


def generate(pipe, prompts=PROMPTS, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", 2)
    kwargs.setdefault("output_type", "pt")
    return pipe(prompts, generator=torch.Generator().manual_seed(seed), **kwargs).images


def test_generates_one_32x32_image_per_prompt(tiny_pipe):
    images = tiny_pipe(PROMPTS, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images
    assert len(images) == 2 and images[0].size == (32, 32) and images[0].mode == "RGB"
    assert generate(tiny_pipe).shape == (2, 3, 32, 32)
    assert generate(tiny_pipe, output_type="np").shape == (2, 32, 32, 3)
    assert generate(tiny_pipe, num_images_per_prompt=3).shape == (6, 3, 32, 32)


def test_same_generator_same_images(tiny_pipe):
    assert torch.equal(generate(tiny_pipe, seed=1), generate(tiny_pipe, seed=1))
    assert not torch.equal(generate(tiny_pipe, seed=1), generate(tiny_pipe, seed=2))


def test_prompt_embeds_bypass_the_encoder(tiny_pipe):
    embeds = tiny_pipe.encode_prompt(PROMPTS)
    assert embeds.shape == (2, CONTEXT_LENGTH, 384)
    torch.testing.assert_close(generate(tiny_pipe), generate(tiny_pipe, prompts=None, prompt_embeds=embeds))
    negative = tiny_pipe.encode_prompt([""])
    torch.testing.assert_close(generate(tiny_pipe), generate(tiny_pipe, negative_prompt_embeds=negative))


def test_guidance_and_negative_prompt_matter(tiny_pipe):
    with torch.no_grad():
        for p in tiny_pipe.unet.parameters():  # a random U-Net at init ignores text (zero out-projections)
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    plain = generate(tiny_pipe, guidance_scale=1.0)
    assert not torch.allclose(plain, generate(tiny_pipe, guidance_scale=5.0))
    assert not torch.allclose(
        generate(tiny_pipe, guidance_scale=5.0), generate(tiny_pipe, guidance_scale=5.0, negative_prompt="a church")
    )


def test_tokenizer_contract(tiny_pipe):
    tok = tiny_pipe.tokenizer
    out = tok(
        ["a red car", "a cassette player"],
        padding="max_length",
        max_length=tok.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    assert out["input_ids"].shape == (2, tok.model_max_length) == (2, CONTEXT_LENGTH)
    for ids, mask in zip(out["input_ids"], out["attention_mask"]):
        last_word = int(mask.sum()) - 2
        assert ids[0] == tok.cls_token_id and ids[last_word + 1] == tok.sep_token_id
        assert (ids[last_word + 2 :] == tok.pad_token_id).all()


def test_padding_positions_carry_the_prompt(tiny_pipe):
    a, b = tiny_pipe.encode_prompt(["a red car", "a blue dog"])
    assert (a[-1] - b[-1]).abs().max() > 1e-4  # last padding position differs with the prompt


def test_long_prompts_are_truncated_with_a_warning(tiny_pipe, caplog):
    with caplog.at_level(logging.WARNING, logger="erasekit.worlds.embedded.text"):
        images = generate(tiny_pipe, prompts=["a red car " * 20])
    assert images.shape[0] == 1
    assert "truncated" in caplog.text


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(prompt=None), "exactly one"),
        (dict(prompt_embeds=torch.zeros(1, CONTEXT_LENGTH, 384)), "exactly one"),
        (dict(num_inference_steps=0), ">= 1"),
        (dict(output_type="bits"), "output_type"),
        (dict(negative_prompt=["x", "y", "z"]), "negative prompts"),
        (dict(latents=torch.zeros(1, 12, 8, 8)), "latents"),
    ],
)
def test_bad_arguments_are_clear_errors(tiny_pipe, kwargs, match):
    args = dict(prompt=PROMPTS, num_inference_steps=1) | kwargs
    with pytest.raises(ConfigError, match=match):
        tiny_pipe(**args)


def test_bad_prompt_embeds_shape(tiny_pipe):
    with pytest.raises(ConfigError, match="prompt_embeds"):
        tiny_pipe(prompt_embeds=torch.zeros(2, CONTEXT_LENGTH, 10), num_inference_steps=1)


def test_save_and_load_round_trip(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path)
    loaded = EmbeddedPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.tokenizer.model_max_length == CONTEXT_LENGTH
    torch.testing.assert_close(generate(tiny_pipe), generate(loaded))


def test_text_reaches_the_unet_only_through_cross_attention_kv():
    unet = build_unet(UNetSpec())
    assert unet.encoder_hid_proj is None and unet.class_embedding is None
    assert getattr(unet, "add_embedding", None) is None and unet.config.addition_embed_type is None
    cross = {name: m for name, m in unet.named_modules() if isinstance(m, Attention) and m.is_cross_attention}
    assert cross and all(name.endswith("attn2") for name in cross)
    assert all(m.to_k.in_features == m.to_v.in_features == 384 for m in cross.values())
    assert all(m.norm_cross is None for m in cross.values())


def test_load_lora_weights_changes_the_unet(tiny_pipe):
    before = generate(tiny_pipe)
    target = next(name for name, _ in tiny_pipe.unet.named_modules() if name.endswith("attn2.to_v"))
    layer = tiny_pipe.unet.get_submodule(target)
    g = torch.Generator().manual_seed(0)
    lora = {
        f"unet.{target}.lora_A.weight": torch.randn(2, layer.in_features, generator=g),
        f"unet.{target}.lora_B.weight": torch.randn(layer.out_features, 2, generator=g),
    }
    tiny_pipe.load_lora_weights(lora, adapter_name="test")
    with torch.no_grad():  # the tiny U-Net's output projections start at zero: open them to see the change
        for name, p in tiny_pipe.unet.named_parameters():
            if "proj_out" in name and "weight" in name:
                p.add_(0.1)
    after = generate(tiny_pipe)
    tiny_pipe.set_adapters("test", adapter_weights=0.0)
    without = generate(tiny_pipe)
    assert not np.allclose(after.numpy(), without.numpy())
    assert before.shape == after.shape
