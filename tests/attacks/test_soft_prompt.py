from __future__ import annotations

import torch

from erasekit.attacks import attack

from .conftest import FAST


def _run(pipe, edit, judge, **kw):
    return attack(pipe, "soft_prompt", "cat", judge=judge, edit=edit, prompts=["a cat", "a cat on a mat"], **kw)


def test_soft_prompt_lowers_its_loss_and_returns_documented_shapes(edited, never):
    pipe, edit = edited
    result = _run(pipe, edit, never, budget=20, lr=0.05, k=2, sampling=FAST)
    assert result.info["loss_end"] < result.info["loss_start"]  # on the same fixed (case, t, ε) draws
    assert result.tensors["soft_tokens"].shape == (2, 32)
    assert result.config["steps"] == 20 and result.config["k"] == 2
    for case in result.cases:
        assert case.outcome.prompt_embeds.shape == (77, 32) and case.outcome.adversarial_prompt is None
        assert case.outcome.image.size == (32, 32)


def test_soft_prompt_is_deterministic_under_a_seed(edited, never):
    pipe, edit = edited
    a, b, c = (_run(pipe, edit, never, budget=3, seed=s, sampling=FAST) for s in (7, 7, 8))
    assert torch.equal(a.tensors["soft_tokens"], b.tensors["soft_tokens"])
    assert not torch.equal(a.tensors["soft_tokens"], c.tensors["soft_tokens"])
    assert [x.outcome.image.tobytes() for x in a.cases] == [x.outcome.image.tobytes() for x in b.cases]


def test_soft_prompt_starts_from_the_concept_words(edited, never):
    pipe, edit = edited
    result = _run(pipe, edit, never, budget=1, lr=1e-12, k=1, sampling=FAST)
    cat = pipe.tokenizer("cat", add_special_tokens=False).input_ids[0]
    table = pipe.text_encoder.get_input_embeddings().weight
    torch.testing.assert_close(result.tensors["soft_tokens"][0], table[cat].detach(), rtol=0, atol=1e-6)
