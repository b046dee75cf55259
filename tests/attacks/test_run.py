from __future__ import annotations

import dataclasses

import pytest
import torch

from erasekit.attacks import attack, attack_success_rate
from erasekit.errors import ConfigError, ErasekitError, UnknownAttackError
from erasekit.gate import TokenGate
from erasekit.text import TextEncoder
from erasekit.worlds.tiny import tiny_pipeline

from .conftest import FAST, BrightJudge, PromptJudge, same_state, unet_state


@pytest.mark.parametrize(
    ("pre", "post", "asr"),
    [([True, False, False, False], [False, True, False, False], 0.5),  # 1 already + 1 made
     ([True, True], [False, False], 1.0),  # pre-attack successes count even if "post" says no
     ([False, False, False], [False, False, False], 0.0),
     ([False, False, False, False, False], [True, True, True, True, True], 1.0)],
)  # fmt: skip
def test_attack_success_rate_counts_pre_attack_successes(pre, post, asr):
    assert attack_success_rate(pre, post) == asr


def test_attack_success_rate_needs_matching_nonempty_lists():
    with pytest.raises(ConfigError):
        attack_success_rate([True], [True, False])
    with pytest.raises(ConfigError):
        attack_success_rate([], [])


def test_prompts_already_successful_are_not_attacked(edited):
    pipe, edit = edited
    judge = PromptJudge(flagged={0, 2})
    result = attack(pipe, "derived", "cat", judge=judge, edit=edit, prompts=["a", "b", "c", "d"], sampling=FAST)
    assert [c.pre_success for c in result.cases] == [True, False, True, False]
    assert [c.outcome is None for c in result.cases] == [True, False, True, False]
    assert result.asr == 0.5 and result.pre_asr == 0.5
    summary = result.summary()
    assert summary["n_pre_success"] == 2 and summary["n_attack_success"] == 0 and summary["asr"] == 0.5
    assert [c["attacked"] for c in summary["cases"]] == [False, True, False, True]
    assert result.info["edit"]["method"] == "uce"


def test_the_pipeline_ends_as_it_began_even_when_the_attack_fails(edited):
    pipe, edit = edited
    before = unet_state(pipe)

    class Boom:
        def detects(self, images, concept):
            raise RuntimeError("judge crashed")

    with pytest.raises(RuntimeError, match="judge crashed"):
        attack(pipe, "derived", "cat", judge=Boom(), edit=edit, sampling=FAST)
    assert same_state(pipe, before)
    attack(pipe, "soft_prompt", "cat", judge=BrightJudge(always=False), edit=edit, quick=True, budget=2, sampling=FAST)
    assert same_state(pipe, before)
    assert all(p.grad is None for p in pipe.unet.parameters())  # attacks never touch the model's .grad


def test_the_pre_attack_image_is_the_edited_model_with_the_case_seed(edited, never):
    pipe, edit = edited
    result = attack(pipe, "derived", "cat", judge=never, edit=edit, prompts=["a cat"], seeds=[5], sampling=FAST)
    edit.apply(pipe)
    try:
        image = pipe("a cat", num_inference_steps=2, generator=torch.Generator().manual_seed(5)).images[0]
    finally:
        edit.remove(pipe)
    assert result.cases[0].pre_image.tobytes() == image.tobytes()


@pytest.mark.parametrize("kind", ["sd1", "sd2"])
def test_attack_text_states_are_the_pipelines(kind):
    pipe = tiny_pipeline(kind)
    prompts = ["a cat", "a photo of a dog on a mat"]
    torch.testing.assert_close(TextEncoder(pipe).encode_text(prompts), TextEncoder(pipe)(prompts).states)


def test_bad_input_gets_clear_errors(edited, never):
    pipe, edit = edited
    run = lambda name="derived", concept="cat", **kw: attack(  # noqa: E731
        pipe, name, concept, judge=never, edit=edit, sampling=FAST, **kw
    )
    with pytest.raises(UnknownAttackError, match="Did you mean 'unlearndiff'"):
        run("unlearndif")
    with pytest.raises(ConfigError, match="tokenises to nothing"):
        run(concept="   ")
    for bad in (0, -3):
        with pytest.raises(ConfigError, match=r"whole number of steps ≥ 1, got -?\d: pass e\.g\. --budget 50, --quick"):
            run("soft_prompt", budget=bad)
    with pytest.raises(ConfigError, match=r"SoftPromptConfig\.steps must be a whole number ≥ 1, got 0: give a budget"):
        run("soft_prompt", steps=0)
    with pytest.raises(ConfigError, match=r"Unknown kind 'painting' \(concept_kind; None: not known\): one of unsafe"):
        run(concept_kind="painting")
    with pytest.raises(ConfigError, match="closed form and has no budget"):
        run(budget=10)
    with pytest.raises(ConfigError, match="either budget"):
        run("unlearndiff", budget=10, steps=5)
    with pytest.raises(ConfigError, match="prompt set is empty"):
        run(prompts=[])
    with pytest.raises(ConfigError, match="one seed per prompt"):
        run(prompts=["a", "b"], seeds=[1])
    with pytest.raises(ConfigError, match=r"has no hyper-parameter 'etaa'\. Did you mean 'eta'"):
        run("ringabell_embed", etaa=2.0)
    with pytest.raises(ConfigError, match="two text encoders"):
        attack(tiny_pipeline("sdxl"), "derived", "cat", judge=never)
    d = pipe.text_encoder.config.hidden_size
    gate = TokenGate(torch.eye(d)[:, :2], torch.zeros(d), 10.0, 0.5)
    for applied in (edit, dataclasses.replace(edit, gate=gate)):  # a gated edit merges no weight: found all the same
        applied.apply(pipe)
        try:
            with pytest.raises(ErasekitError, match="applied edit but none was passed"):
                attack(pipe, "derived", "cat", judge=never)
        finally:
            applied.remove(pipe)


@pytest.mark.parametrize(
    ("name", "kw", "total"),
    [("unlearndiff", {"budget": 3}, 6), ("soft_prompt", {"budget": 3, "batch_size": 1, "train_images": 2}, 3)],
)
def test_progress_climbs_to_the_total(edited, never, name, kw, total):
    pipe, edit = edited
    seen = []
    attack(pipe, name, "cat", judge=never, edit=edit, prompts=["a cat", "a dog"], sampling=FAST,
           progress=lambda done, n: seen.append((done, n)), **kw)  # fmt: skip
    assert seen[-1] == (total, total) and all(n == total for _, n in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
