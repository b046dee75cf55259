from __future__ import annotations

import torch

from erasekit.attacks import attack

from .conftest import FAST


def _run(pipe, edit, judge, **kw):
    kw = {"batch_size": 1, "train_images": 3, **kw}
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


def test_soft_prompt_trains_on_seeds_apart_from_the_evaluation_seeds(edited, never):
    pipe, edit = edited
    result = _run(pipe, edit, never, budget=1, seeds=[11, 12], train_images=5, sampling=FAST)
    train = result.info["train_seeds"]
    assert len(set(train)) == 5 and not set(train) & {11, 12}
    assert [c.case.seed for c in result.cases] == [11, 12]  # the images judged keep the cases' seeds
    assert _run(pipe, edit, never, budget=1, seeds=[11, 12], train_images=5, sampling=FAST).info["train_seeds"] == train


def test_training_seeds_skip_the_case_seeds(edited, never, monkeypatch):
    from erasekit.attacks import soft_prompt

    monkeypatch.setattr(soft_prompt, "SEED_RANGE", 4)  # only 4 seeds to draw from: 2 are the cases'
    pipe, edit = edited
    result = _run(pipe, edit, never, budget=1, seeds=[0, 1], train_images=2, sampling=FAST)
    assert sorted(result.info["train_seeds"]) == [2, 3]
