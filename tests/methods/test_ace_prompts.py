"""ACE's gate sets (methods/ace/prompts.py): what the gate is fitted to open and to stay shut on."""

from __future__ import annotations

import dataclasses

import torch

import erasekit
from erasekit.evaluate import compare
from erasekit.methods import EraseRequest
from erasekit.methods.ace import prompts
from erasekit.methods.ace.config import ACEConfig
from erasekit.methods.ace.prompts import concept_tokens, gate_tokens
from erasekit.targets import find_targets
from erasekit.text import TextEncoder
from erasekit.worlds import embedded
from erasekit.worlds.tiny import tiny_pipeline
from tests.test_end_to_end import embedded_pipeline

SMALL = ACEConfig(neutral_captions=64, vocabulary_captions=8, name_captions=8)


def test_the_callers_preserve_prompts_join_the_negatives_and_can_be_left_out(tiny_pipe):
    kept = ("a cat by monet", "monet painting of a bridge", "water lilies, oil")
    request = EraseRequest(find_targets(tiny_pipe.unet), TextEncoder(tiny_pipe), ("van gogh",), tiny_pipe,
                           preserve=("monet",), preserve_prompts=kept)  # fmt: skip
    pos, neg = gate_tokens(request, SMALL)
    pos_off, neg_off = gate_tokens(request, dataclasses.replace(SMALL, gate_fit_preserve=False))
    assert torch.equal(pos.states, pos_off.states)  # the positives stay the concept's
    assert neg.states.shape[0] == neg_off.states.shape[0] + len(kept)
    # each preserve prompt's states are among the negatives, every token of it counted
    states = TextEncoder(tiny_pipe)(list(kept)).states.float()
    for row in states:
        assert any(torch.equal(row, other) for other in neg.states)


def test_preserve_prompts_shut_van_goghs_gate_on_rembrandt_van_rijn():
    # positive control: fitted on captions alone (which name "rembrandt", never "rembrandt van rijn") the gate of
    # "van gogh" opens on every test-split prompt of rembrandt that says "van rijn" (43 of 43, measured); with
    # compare's fit prompts of rembrandt among its negatives on 24 of them (15 while the fit held out every fourth
    # caption, which kept the first-named ones, "by edward van gogh", out of its positives; methods/ace/gatefit.py)
    torch.set_num_threads(1)
    pipe = embedded_pipeline()
    sc = compare.scenario("van gogh")
    kept = compare.preserve_prompts(sc, 16)
    assert "rembrandt" in compare.preserve_set(sc) and any("rembrandt van rijn" in p for p in kept)
    prompts = [p for p in embedded.prompt_suite("rembrandt", n=96, split="test")["target"] if "van rijn" in p]
    states = TextEncoder(pipe)(prompts).states

    def share_open(**overrides) -> float:  # one round of the K/V objective: only the gate is read
        edit = erasekit.erase(pipe, ["van gogh"], "ace", preserve=compare.preserve_set(sc), preserve_prompts=kept,
                              epochs=1, inner_steps=0, loss="kv", mine_words=0, **overrides)  # fmt: skip
        return float(edit.gate.opens(states).any(1).float().mean())

    assert len(prompts) >= 20
    assert share_open(gate_fit_preserve=False, gate_margin=0.25) > 0.9
    assert share_open() < 0.65


def test_names_after_the_concept_end_every_positive_caption_and_count_as_open(tiny_pipe):
    # "a dog by nudity by kelly brastin": each caption gains an artist after the concept, whose tokens count as
    # open as the concept's do; in a causal encoder (CLIP's, the tiny pipeline's) the states up to the concept's end
    # do not change
    request = EraseRequest(find_targets(tiny_pipe.unet), TextEncoder(tiny_pipe), ("nudity",), tiny_pipe)
    pos, neg = gate_tokens(request, SMALL)
    named, neg_named = gate_tokens(request, dataclasses.replace(SMALL, gate_names_after=True))
    assert torch.equal(neg.states, neg_named.states)  # the negatives stay as they were
    assert torch.equal(named.mask, pos.mask)  # counted from the concept's last token on, as before
    start = pos.mask.float().argmax(1)  # [B]
    for b in range(pos.states.shape[0]):
        s = int(start[b]) + 1
        assert torch.allclose(named.states[b, :s], pos.states[b, :s], atol=1e-5)
        assert not torch.allclose(named.states[b, s:], pos.states[b, s:], atol=1e-3)  # the name follows


def test_an_ungated_edit_encodes_only_the_held_out_captions_the_stopping_rule_reads(tiny_pipe):
    # without a gate only the stopping rule's quarter of the positives is needed (train.py): the same rows the gated
    # path holds out of its fit, from a quarter of the encoding
    request = EraseRequest(find_targets(tiny_pipe.unet), TextEncoder(tiny_pipe), ("van gogh",), tiny_pipe)
    cfg = dataclasses.replace(SMALL, synonyms=("starry night",))
    pos, _ = gate_tokens(request, cfg)
    held = pos.split()[1]
    encoder = TextEncoder(tiny_pipe)
    only = concept_tokens(dataclasses.replace(request, encoder=encoder), cfg, held_only=True)
    assert held.states.shape[0] == pos.states.shape[0] // 4
    assert len(encoder.cache.rows) <= held.states.shape[0]  # (a caption drawn twice is encoded once)
    assert torch.equal(only.mask, held.mask)
    assert torch.allclose(only.states, held.states, atol=1e-6)


def test_the_neutral_captions_of_a_new_process_are_read_from_disk(tiny_pipe, monkeypatch):
    # the memory cache emptied, as in a new process: the same negatives, without encoding the neutral captions again
    request = EraseRequest(find_targets(tiny_pipe.unet), TextEncoder(tiny_pipe), ("van gogh",), tiny_pipe)
    encoded: list[int] = []
    tiny_pipe.text_encoder.register_forward_hook(lambda module, args, out: encoded.append(args[0].shape[0]))

    def new_process() -> tuple[torch.Tensor, int]:
        prompts._NEUTRAL_STATES.clear()
        encoded.clear()
        _, neg = gate_tokens(dataclasses.replace(request, encoder=TextEncoder(tiny_pipe)), SMALL)
        return neg.states, sum(encoded)

    first, _ = new_process()
    again, from_disk = new_process()
    monkeypatch.setenv("ERASEKIT_CACHE", "off")
    without, every_time = new_process()
    assert torch.equal(again, first) and torch.equal(without, first)
    assert every_time - from_disk >= SMALL.neutral_captions  # the neutral captions, encoded only without the disk


def test_an_edit_of_either_text_encoder_in_place_replaces_the_neutral_states(monkeypatch):
    # SDXL's states concatenate two encoders: writing into the second must not leave the first's cached states
    monkeypatch.setenv("ERASEKIT_CACHE", "off")
    pipe = tiny_pipeline("sdxl")
    request = EraseRequest(find_targets(pipe.unet), TextEncoder(pipe), ("van gogh",), pipe)
    _, before = gate_tokens(request, SMALL)
    with torch.no_grad():
        pipe.text_encoder_2.get_input_embeddings().weight.mul_(2.0)
    _, after = gate_tokens(dataclasses.replace(request, encoder=TextEncoder(pipe)), SMALL)
    assert after.states.shape == before.states.shape and not torch.equal(after.states, before.states)


def test_the_training_prompts_are_encoded_in_bf16_where_the_hardware_has_it(tiny_pipe, monkeypatch):
    request = EraseRequest(find_targets(tiny_pipe.unet), TextEncoder(tiny_pipe), ("van gogh",), tiny_pipe)

    def autocast(encode_dtype: str, native: bool) -> torch.dtype | None:
        monkeypatch.setattr(prompts, "native_bf16", lambda device: native)
        return prompts.training_encoder(request, ACEConfig(encode_dtype=encode_dtype)).encoder.autocast

    assert autocast("auto", True) == torch.bfloat16 and autocast("auto", False) is None
    assert autocast("bfloat16", False) == torch.bfloat16 and autocast("float32", True) is None
    assert prompts.training_encoder(request, ACEConfig(encode_dtype="float32")) is request  # nothing to change
    with torch.no_grad():  # weights in half already: auto leaves them so
        half = dataclasses.replace(request, encoder=TextEncoder(tiny_pipeline().to(torch.bfloat16)))
    assert prompts.training_encoder(half, ACEConfig()).encoder.autocast is None
    custom = dataclasses.replace(request, encoder=lambda texts: TextEncoder(tiny_pipe)(texts))
    assert prompts.training_encoder(custom, ACEConfig(encode_dtype="bfloat16")) is custom


def test_under_bf16_the_neutral_captions_stay_float32_and_the_edit_says_how_it_encoded(tiny_pipe, monkeypatch):
    # the stored neutral captions are the pipeline's own float32 states, whatever the concept's prompts ran in
    monkeypatch.setenv("ERASEKIT_CACHE", "off")
    request = EraseRequest(find_targets(tiny_pipe.unet), TextEncoder(tiny_pipe), ("van gogh",), tiny_pipe)
    rounded = prompts.training_encoder(request, ACEConfig(encode_dtype="bfloat16"))
    neutral = {}
    for name, req in (("full", request), ("rounded", rounded)):
        prompts._NEUTRAL_STATES.clear()
        neutral[name] = prompts._neutral_states(req, SMALL, ["van gogh"])[0]
    assert torch.equal(neutral["rounded"], neutral["full"])
    pos = {name: concept_tokens(req, SMALL).states for name, req in (("full", request), ("rounded", rounded))}
    assert not torch.equal(pos["rounded"], pos["full"])  # the concept's own captions did run in bf16
    fast = {"epochs": 1, "inner_steps": 0, "loss": "kv", "mine_words": 0, "neutral_captions": 16, "contexts": 8}
    for dtype in ("bfloat16", "float32"):
        edit = erasekit.erase(tiny_pipe, ["van gogh"], "ace", rank=2, encode_dtype=dtype, **fast)
        assert edit.info["encode_dtype"] == dtype
