"""The embedded world's causal text encoder reads prompts as SD's CLIP does (issue: a faithful world)."""

from __future__ import annotations

import torch

from erasekit.worlds.embedded import load_pipeline
from erasekit.worlds.embedded.text import CausalBertModel, load_text_encoder

PAIRS = [
    ("a painting of a red car by van gogh", "a painting of a red car by monet"),
    ("a photo of a church at dusk", "a photo of a cathedral at dusk"),
]


def _first_difference(ids_a, ids_b) -> int:
    return int((ids_a != ids_b).nonzero()[0])


def test_a_state_depends_only_on_the_tokens_before_it():
    pipe = load_pipeline()
    pipe.text_encoder = load_text_encoder(causal=True)
    for a, b in PAIRS:
        states = pipe.encode_prompt([a, b]).float()
        ids = pipe.tokenizer([a, b], padding="max_length", max_length=pipe.tokenizer.model_max_length).input_ids
        k = _first_difference(torch.tensor(ids[0]), torch.tensor(ids[1]))
        torch.testing.assert_close(states[0, :k], states[1, :k], rtol=0, atol=1e-5)  # shared prefix, same states
        gap = (states[0, k:] - states[1, k:]).norm(dim=-1) / states[0, k:].norm(dim=-1)
        assert bool((gap > 1e-3).all()), f"every state from the first differing token on differs: {gap}"
    first = pipe.encode_prompt(["a cat", "nudity"]).float()[:, 0]
    assert torch.equal(first[0], first[1])  # the start-of-text state is the same for every prompt


def test_the_bidirectional_encoder_is_the_control():  # the property the test above checks can fail
    pipe = load_pipeline()
    pipe.text_encoder = load_text_encoder(causal=False)
    a, b = PAIRS[0]
    states = pipe.encode_prompt([a, b]).float()
    assert not torch.allclose(states[0, :2], states[1, :2], atol=1e-5)


def test_the_world_reads_text_as_its_unet_was_trained():
    pipe = load_pipeline()  # the U-Net's training.json names its text encoder
    from erasekit.worlds.embedded.weights import training_info

    causal = bool(training_info().get("config", {}).get("causal_text", False))
    assert isinstance(pipe.text_encoder, CausalBertModel) == causal
