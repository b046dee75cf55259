from __future__ import annotations

import pytest
import torch

import erasekit
from erasekit.errors import ConfigError, UnsupportedModelError
from erasekit.text import EmbeddingCache, TextEncoder, mentions
from erasekit.worlds.tiny import tiny_pipeline


def _count_forwards(pipe):
    calls = []
    for encoder in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)):
        if encoder is not None:
            encoder.register_forward_hook(lambda *a: calls.append(1))
    return calls


def test_states_as_the_pipeline_computes_them(any_pipe):
    prompts = ["a cat", "a dog on a mat"]
    enc = TextEncoder(any_pipe)(prompts)
    theirs = any_pipe.encode_prompt(
        prompt=prompts, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False
    )[0]
    assert enc.states.shape == theirs.shape and torch.allclose(enc.states, theirs.float(), atol=1e-6)
    n_words = [len(any_pipe.tokenizer(p, add_special_tokens=False).input_ids) for p in prompts]
    assert enc.last_word.tolist() == n_words  # position 0 is the start token


def test_the_cache_is_the_callers_and_repeats_cost_nothing(tiny_pipe):
    cache = EmbeddingCache()
    calls = _count_forwards(tiny_pipe)
    TextEncoder(tiny_pipe, cache=cache)(["a cat"])
    TextEncoder(tiny_pipe, cache=cache)(["a cat", "a cat"])
    assert len(calls) == 1 and list(cache.rows) == ["a cat"]


@pytest.mark.parametrize("kind", ["sd1", "sdxl"])
@pytest.mark.parametrize(
    ("method", "guides"), [("uce", None), ("rece", None), ("rece", ["art", "a photo"]), ("nullspace", None)]
)
def test_closed_forms_encode_every_prompt_set_in_one_pass(kind, method, guides):
    pipe = tiny_pipeline(kind)
    calls = _count_forwards(pipe)
    extra = {"epochs": 1} if method == "rece" else {"keep_energy": 0.9} if method == "nullspace" else {}
    erasekit.erase(pipe, ["van gogh", "a church"], method=method, preserve=["monet"], guides=guides, **extra)
    assert len(calls) == (2 if kind == "sdxl" else 1)  # one batch per text encoder


def test_slots_with_the_original_embeddings_give_the_plain_states(tiny_pipe):
    text = TextEncoder(tiny_pipe)
    slotted = text.slotted(["a cat"], 2)
    plain = text.encode(slotted.ids)
    original = text.table.weight[slotted.ids[0, slotted.slots]]
    assert torch.equal(text.encode(slotted.ids, slots=slotted.slots, slot_embeds=original), plain)
    moved = text.encode(slotted.ids, slots=slotted.slots, slot_embeds=original + 1)
    assert not torch.equal(moved, plain) and torch.equal(moved[:, 0], plain[:, 0])  # causal: start state unchanged


def test_what_the_text_path_refuses(tiny_pipe):
    with pytest.raises(UnsupportedModelError, match=r"has no tokenizer/text_encoder.*StableDiffusionPipeline"):
        TextEncoder(object())
    with pytest.raises(ConfigError, match="two text encoders"):
        TextEncoder(tiny_pipeline("sdxl")).check_single_encoder()
    with pytest.raises(ConfigError, match="tokenises to nothing"):
        TextEncoder(tiny_pipe).check_concept("   ")


def test_mentions_finds_whole_words_only_whatever_the_case():
    assert mentions("A painting by Van Gogh, 1888", "van gogh") and mentions("a dog.", "dog")
    assert not mentions("a hotdog stand", "dog") and not mentions("a party", "art")


def test_in_precision_encodes_under_autocast_in_a_cache_of_its_own(any_pipe):
    prompts = ["a cat", "a dog on a mat"]
    full = TextEncoder(any_pipe)
    assert full.in_precision(None) is full
    half = full.in_precision(torch.bfloat16)
    assert half.autocast == torch.bfloat16 and half.in_precision(torch.bfloat16) is half
    assert half.cache is not full.cache
    exact, rounded = full(prompts).states, half(prompts).states
    assert rounded.dtype == torch.float32 and not torch.equal(rounded, exact)  # bf16 products: not the same bits
    assert (rounded - exact).norm() / exact.norm() < 0.05
    assert torch.equal(half.in_precision(None)(prompts).states, exact)


def test_native_bf16_reads_the_device(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert erasekit.text.native_bf16(torch.device("cpu"))
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not erasekit.text.native_bf16(torch.device("cpu"))
    assert not erasekit.text.native_bf16(torch.device("meta"))
    seen = []  # a GPU that only emulates bf16 (before Ampere) is not native
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda **kw: seen.append(kw) or False)
    assert not erasekit.text.native_bf16(torch.device("cuda")) and seen == [{"including_emulation": False}]
