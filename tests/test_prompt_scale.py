"""The prompt scale and its hooks: the score on a hand-derived case, exact at m = 1 and m = 0, guidance pairs
sharing one multiplier, reversible, composable, saved, and refused where a file cannot hold it."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import erasekit
from erasekit import Edit
from erasekit.cli import app
from erasekit.errors import ConfigError, EditFileError, EditStateError
from erasekit.prompt_scale import PromptScale, paired_multipliers
from erasekit.text import TextEncoder
from tests.test_gate import gated

runner = CliRunner()

# one concept, L = 3, d = 2, whose only word is position 1, the state (0, 1)
CONCEPT = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
WORD = torch.tensor([[False, True, False]])


def scale(metric="cosine_tokens", threshold=0.7, states=CONCEPT, words=WORD):
    return PromptScale(states, words, metric, threshold)


def test_score_on_a_hand_derived_case():
    # a holds the word's state at position 2: cos(vec a, vec C) = (1·1 + 1·0 + 0·1 ...) = 1 / (√3 √3) = 1/3, word found
    # b holds it only at position 0 (the start token, never searched): cos 1/3 again, word not found
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    x = torch.stack([a, b])
    torch.testing.assert_close(scale("cosine")(x), torch.tensor([1 / 3, 1 / 3]))
    torch.testing.assert_close(scale("tokens")(x), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(scale()(x), torch.tensor([1.0, 1 / 3]))
    # two words, (0, 1) and (−1, 0): a finds the first (cos 1) and not the second (cos −1 and 0): half
    two = scale("tokens", states=torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]]), words=torch.tensor([[0, 1, 1]]))
    torch.testing.assert_close(two(a[None]), torch.tensor([0.5]))
    # several concepts: the closest one sets m
    both = scale("tokens", states=torch.cat([CONCEPT, two.states]), words=torch.cat([WORD, two.words.bool()]))
    torch.testing.assert_close(both(x), torch.tensor([1.0, 0.0]))


def test_a_guidance_pair_takes_the_positive_rows_multiplier():
    s = scale("tokens")
    found, missed = CONCEPT[0, [0, 2, 1]], CONCEPT[0, [1, 0, 0]]  # the word at position 2 / only at position 0
    states = torch.stack([missed, missed, found, missed])  # [negative; positive] for two prompts
    same = torch.zeros(2, 4, 2, 2).repeat(2, 1, 1, 1)
    torch.testing.assert_close(paired_multipliers(s, same, states), torch.tensor([1.0, 0.0, 1.0, 0.0]))
    other = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 4, 2, 2)  # halves differ: every row its own
    torch.testing.assert_close(paired_multipliers(s, other, states), torch.tensor([0.0, 0.0, 1.0, 0.0]))


# ---- on a pipeline ---------------------------------------------------------------------------
def transformer_edit(pipe, seed=0) -> Edit:
    """A random rank-2 edit of every nn.Linear in the U-Net's transformer blocks (self- and cross-attention,
    feed-forward), large enough to change the outputs."""
    g = torch.Generator().manual_seed(seed)
    updates = {
        name: (0.1 * torch.randn(m.out_features, 2, generator=g), 0.1 * torch.randn(2, m.in_features, generator=g))
        for name, m in pipe.unet.named_modules()
        if isinstance(m, nn.Linear) and "transformer_blocks" in name
    }
    return Edit(updates, method="test", concepts=["van gogh"], fingerprint=None)


def constant(pipe, edit: Edit, m: float) -> Edit:
    """``edit`` scaled by m = 1 (every word 'found' at τ = −1) or m = 0 (none found at τ = 1 for random states)."""
    states = torch.randn(1, TextEncoder(pipe).max_length, pipe.unet.config.cross_attention_dim)
    words = torch.zeros(1, states.shape[1], dtype=torch.bool)
    words[0, 1] = True
    return dataclasses.replace(edit, prompt_scale=PromptScale(states, words, "tokens", -1.0 if m == 1 else 1.0))


def unet_out(pipe, states, x=None):
    x = torch.randn(len(states), 4, 8, 8, generator=torch.Generator().manual_seed(0)) if x is None else x
    with torch.no_grad():
        return pipe.unet(x, 10, encoder_hidden_states=states).sample


def states_of(pipe, *prompts):
    return TextEncoder(pipe)(list(prompts or ["a painting by van gogh"])).states


def no_hooks(unet) -> bool:
    return not unet._forward_pre_hooks and all(not m._forward_hooks for m in unet.modules())


def test_m_one_is_the_merged_edit_and_m_zero_the_original(tiny_pipe):
    states = states_of(tiny_pipe)
    base = unet_out(tiny_pipe, states)
    plain = transformer_edit(tiny_pipe).apply(tiny_pipe)
    merged = unet_out(tiny_pipe, states)
    plain.remove(tiny_pipe)
    assert (merged - base).abs().max() > 1e-2, "the edit must change the output"
    one = constant(tiny_pipe, plain, 1).apply(tiny_pipe)
    torch.testing.assert_close(unet_out(tiny_pipe, states), merged, rtol=1e-5, atol=1e-5)
    one.remove(tiny_pipe)
    zero = constant(tiny_pipe, plain, 0).apply(tiny_pipe)
    assert torch.equal(unet_out(tiny_pipe, states), base)
    zero.remove(tiny_pipe)


def test_guided_generation_scales_both_passes_by_the_prompt(tiny_pipe):
    """m = 1 on the prompt, m < 1 on the empty negative prompt: guided images are the merged edit's, since the
    negative pass takes the prompt's multiplier (per row, they would differ)."""
    edit = transformer_edit(tiny_pipe)
    prompt = "van gogh"
    concept = TextEncoder(tiny_pipe)([prompt])
    words = torch.arange(concept.states.shape[1])[None] == 1
    scaled = dataclasses.replace(edit, prompt_scale=PromptScale(concept.states, words, "cosine"))
    m_prompt, m_empty = scaled.prompt_scale(states_of(tiny_pipe, prompt, ""))
    assert float(m_prompt) == pytest.approx(1.0, abs=1e-6) and float(m_empty) < 0.99

    def images():
        kw = {"num_inference_steps": 2, "output_type": "np", "height": 32, "width": 32, "guidance_scale": 7.5}
        return tiny_pipe(prompt, generator=torch.Generator().manual_seed(0), **kw).images

    edit.apply(tiny_pipe)
    merged = images()
    edit.remove(tiny_pipe)
    scaled.apply(tiny_pipe)
    assert abs(images() - merged).max() <= 1e-4
    scaled.remove(tiny_pipe)


def test_apply_merges_nothing_and_remove_is_bit_exact(tiny_pipe):
    states = states_of(tiny_pipe)
    weights = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    base = unet_out(tiny_pipe, states)
    edit = constant(tiny_pipe, transformer_edit(tiny_pipe), 1).apply(tiny_pipe)
    assert all(torch.equal(weights[k], v) for k, v in tiny_pipe.unet.state_dict().items()), "hooks merge nothing"
    assert not torch.equal(unet_out(tiny_pipe, states), base)
    edit.remove(tiny_pipe)
    assert no_hooks(tiny_pipe.unet)
    assert all(torch.equal(weights[k], v) for k, v in tiny_pipe.unet.state_dict().items())
    assert torch.equal(unet_out(tiny_pipe, states), base)


def test_composes_with_merged_and_gated_edits_in_any_order(tiny_pipe):
    states = states_of(tiny_pipe)
    base = unet_out(tiny_pipe, states)
    merged = erasekit.erase(tiny_pipe, ["a church"], method="uce")
    gate = gated(erasekit.erase(tiny_pipe, ["van gogh"], method="uce"), always=True)
    plain = transformer_edit(tiny_pipe)
    for edit in (merged, gate, plain):
        edit.apply(tiny_pipe)
    expected = unet_out(tiny_pipe, states)  # the prompt-scaled edit at m = 1 is the plain one
    plain.remove(tiny_pipe)
    scaled = constant(tiny_pipe, plain, 1).apply(tiny_pipe)
    torch.testing.assert_close(unet_out(tiny_pipe, states), expected, rtol=1e-5, atol=1e-5)
    merged.remove(tiny_pipe)  # the oldest first: the others stay, on the base weights
    merged.apply(tiny_pipe)
    torch.testing.assert_close(unet_out(tiny_pipe, states), expected, rtol=1e-5, atol=1e-5)
    for edit in (gate, scaled, merged):
        edit.remove(tiny_pipe)
    assert no_hooks(tiny_pipe.unet)
    assert torch.equal(unet_out(tiny_pipe, states), base)


def test_save_and_load_keep_the_prompt_scale_and_diffusers_reads_the_plain_update(tiny_pipe, tmp_path):
    states = states_of(tiny_pipe)
    plain = transformer_edit(tiny_pipe)
    edit = constant(tiny_pipe, plain, 1)
    back = Edit.load(edit.save(tmp_path / "scaled.safetensors"))
    assert back.prompt_scale is not None and back.id == edit.id and back.id != plain.id
    assert torch.equal(back.prompt_scale.states, edit.prompt_scale.states)
    assert torch.equal(back.prompt_scale.words.bool(), edit.prompt_scale.words)
    assert back.prompt_scale.scalars() == edit.prompt_scale.scalars()
    plain.apply(tiny_pipe)
    expected = unet_out(tiny_pipe, states)
    plain.remove(tiny_pipe)
    tiny_pipe.load_lora_weights(str(tmp_path / "scaled.safetensors"))  # skips the scale: the update at m = 1
    torch.testing.assert_close(unet_out(tiny_pipe, states), expected, rtol=1e-4, atol=1e-4)


def test_kohya_export_is_refused_unless_unscaled(tiny_pipe, tmp_path, caplog):
    plain = transformer_edit(tiny_pipe)
    edit = constant(tiny_pipe, plain, 0)
    with pytest.raises(EditFileError) as err:
        edit.save(tmp_path / "k.safetensors", format="kohya")
    assert all(w in str(err.value) for w in ("Edit.load(path).apply(pipe)", "unscaled=True", "--unscaled"))
    assert list(tmp_path.iterdir()) == []
    with caplog.at_level(logging.WARNING):
        path = edit.save(tmp_path / "k.safetensors", format="kohya", unscaled=True)
    assert "DROPPING THE PROMPT SCALE" in caplog.text
    back = Edit.load(path)
    assert back.prompt_scale is None and "prompt_scale_dropped" in back.info
    assert all(torch.allclose(back.delta(n), plain.delta(n), atol=1e-6) for n in plain.updates)
    src = edit.save(tmp_path / "d.safetensors")
    result = runner.invoke(app, ["export", str(src), "-o", str(tmp_path / "out.safetensors")])
    assert result.exit_code == 2 and "--unscaled" in " ".join(result.output.split())
    assert (
        runner.invoke(app, ["export", str(src), "-o", str(tmp_path / "out.safetensors"), "--unscaled"]).exit_code == 0
    )
    assert Edit.load(tmp_path / "out.safetensors").prompt_scale is None
    summary = json.loads(runner.invoke(app, ["info", str(src), "--json"]).stdout)
    assert summary["prompt_scale"]["metric"] == "tokens" and "load_lora_weights" in summary["prompt_scale"]["note"]
    assert "prompt scale" in runner.invoke(app, ["info", str(src)]).stdout


def test_bad_input_is_refused_with_a_clear_message(tiny_pipe):
    with pytest.raises(ConfigError, match="metric"):
        scale("clipcos")
    with pytest.raises(ConfigError, match=r"\[K, L\]"):
        scale(words=WORD[0])
    with pytest.raises(ConfigError, match="at least one word"):
        scale(words=torch.zeros(1, 3, dtype=torch.bool))
    with pytest.raises(ConfigError, match="cosine"):
        scale(threshold=2.0)
    with pytest.raises(ConfigError, match="another text encoder"):
        scale()(torch.zeros(1, 4, 2))
    edit = constant(tiny_pipe, transformer_edit(tiny_pipe), 1)
    with pytest.raises(ConfigError, match="not both"):
        dataclasses.replace(edit, gate=gated(edit, always=True).gate)
    B, A = next(iter(edit.updates.values()))
    with pytest.raises(ConfigError, match="text-encoder"):
        dataclasses.replace(edit, updates={**edit.updates, "text_encoder.encoder.layers.0.mlp.fc1": (B, A)})
    edit.apply(tiny_pipe)
    try:
        with pytest.raises(ConfigError, match="encoder_hidden_states"):
            tiny_pipe.unet(torch.zeros(1, 4, 8, 8), 10, encoder_hidden_states=None)
        name = next(iter(edit.updates))
        layer = dict(tiny_pipe.unet.named_modules())[name]
        with pytest.raises(EditStateError, match="outside a U-Net forward"):
            layer(torch.zeros(1, 3, layer.in_features))
    finally:
        edit.remove(tiny_pipe)
    assert no_hooks(tiny_pipe.unet)
