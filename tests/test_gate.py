"""The token gate and its attention processor: exact at the extremes, reversible, composable, saved."""

from __future__ import annotations

import dataclasses

import torch

import erasekit
from erasekit import Edit
from erasekit.gate import GatedKVProcessor, TokenGate, concept_ratio


def unet_out(pipe, states):
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return pipe.unet(x, 10, encoder_hidden_states=states).sample


def states_of(pipe, prompt="a painting by van gogh"):
    return erasekit.text.TextEncoder(pipe)([prompt]).states


def gated(edit: Edit, *, always: bool) -> Edit:
    """``edit`` behind a gate that is always open (τ below every ratio) or always shut (τ above)."""
    d = next(iter(edit.updates.values()))[1].shape[1]
    basis = torch.linalg.qr(torch.randn(d, 2, generator=torch.Generator().manual_seed(1)))[0]
    gate = TokenGate(basis, torch.zeros(d), 1e4, -1.0 if always else 2.0)
    return dataclasses.replace(edit, gate=gate)


def rank_cut(edit: Edit, r: int) -> Edit:
    """``edit`` with every update cut to its best rank-``r`` part."""
    updates = {}
    for name, (B, A) in edit.updates.items():
        U, S, Vh = torch.linalg.svd(B @ A, full_matrices=False)
        updates[name] = (U[:, :r] * S[:r], Vh[:r])
    return dataclasses.replace(edit, updates=updates)


def test_ratio_and_gate_values():
    basis = torch.eye(4)[:, :2]  # span(e0, e1)
    x = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    torch.testing.assert_close(concept_ratio(x, basis, torch.zeros(4)).squeeze(-1), torch.tensor([1.0, 0.0, 0.5]))
    g = TokenGate(basis, torch.zeros(4), 100.0, 0.25)(x).squeeze(-1)
    assert g[0] > 0.99 and g[1] < 0.01 and g[2] > 0.99


def test_opens_marks_the_tokens_above_one_half():
    basis = torch.eye(4)[:, :2]
    states = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]])  # [B=1, L=2, d]: r = 1 and r = 0
    gate = TokenGate(basis, torch.zeros(4), 100.0, 0.25)
    assert gate.opens(states).tolist() == [[True, False]]
    assert gate.opens(states).tolist() == (gate(states).squeeze(-1) > 0.5).tolist()


def test_a_whole_prompt_gate_caps_each_token_at_the_prompts_last_position(tiny_pipe, tmp_path):
    basis, mean = torch.eye(4)[:, :2], torch.zeros(4)
    near, far = [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]  # r = 1 and r = 0
    states = torch.tensor([[near, far, near], [near, far, far]])  # [B=2, L=3, d]: the second prompt ends far
    per_token = TokenGate(basis, mean, 100.0, 0.25)
    whole = dataclasses.replace(per_token, whole_prompt=True)
    assert per_token(states).squeeze(-1)[1, 0] > 0.99  # open on its own token
    torch.testing.assert_close(whole(states)[0], per_token(states)[0])  # ends near: as it was
    assert whole(states).squeeze(-1)[1].max() < 0.01  # ends far: shut throughout
    rows = states.flatten(0, 1)  # [n, d]: no sequence, each row its own value
    torch.testing.assert_close(whole(rows), per_token(rows))
    edit = gated(erasekit.erase(tiny_pipe, ["van gogh"], method="uce"), always=True)
    for flag in (True, False):
        saved = dataclasses.replace(edit, gate=dataclasses.replace(edit.gate, whole_prompt=flag))
        assert Edit.load(saved.save(tmp_path / f"{flag}.safetensors")).gate.whole_prompt is flag


def test_open_gate_equals_the_merged_edit_and_shut_gate_the_base(tiny_pipe):
    states = states_of(tiny_pipe)
    base = unet_out(tiny_pipe, states)
    edit = erasekit.erase(tiny_pipe, ["van gogh"], method="uce")
    edit.apply(tiny_pipe)
    with_weights = unet_out(tiny_pipe, states)
    edit.remove(tiny_pipe)
    always = gated(edit, always=True).apply(tiny_pipe)
    torch.testing.assert_close(unet_out(tiny_pipe, states), with_weights, rtol=1e-5, atol=1e-5)
    always.remove(tiny_pipe)
    never = gated(edit, always=False).apply(tiny_pipe)
    torch.testing.assert_close(unet_out(tiny_pipe, states), base, rtol=0, atol=1e-6)
    never.remove(tiny_pipe)


def test_remove_restores_processors_and_outputs_exactly(tiny_pipe):
    states = states_of(tiny_pipe)
    before_procs = dict(tiny_pipe.unet.attn_processors)
    base = unet_out(tiny_pipe, states)
    edit = gated(erasekit.erase(tiny_pipe, ["van gogh"], method="uce"), always=True)
    weights = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    edit.apply(tiny_pipe)
    assert all(torch.equal(weights[k], v) for k, v in tiny_pipe.unet.state_dict().items()), "a gate merges nothing"
    assert any(isinstance(p, GatedKVProcessor) for p in tiny_pipe.unet.attn_processors.values())
    assert not torch.equal(unet_out(tiny_pipe, states), base)
    edit.remove(tiny_pipe)
    after = tiny_pipe.unet.attn_processors
    assert all(after[k] is before_procs[k] for k in before_procs)
    assert torch.equal(unet_out(tiny_pipe, states), base)


def test_gated_and_merged_edits_compose_in_any_order(tiny_pipe):
    states = states_of(tiny_pipe)
    base = unet_out(tiny_pipe, states)
    merged = erasekit.erase(tiny_pipe, ["a church"], method="uce")
    gate = gated(erasekit.erase(tiny_pipe, ["van gogh"], method="uce"), always=True)
    merged.apply(tiny_pipe)
    gate.apply(tiny_pipe)
    both = unet_out(tiny_pipe, states)
    merged.remove(tiny_pipe)  # the older, merged one first: the gate stays, on the base weights
    merged.apply(tiny_pipe)
    torch.testing.assert_close(unet_out(tiny_pipe, states), both, rtol=1e-5, atol=1e-5)
    gate.remove(tiny_pipe)
    merged.remove(tiny_pipe)
    assert torch.equal(unet_out(tiny_pipe, states), base)


def test_gate_survives_save_and_load_and_diffusers_reads_the_lora_part(tiny_pipe, tmp_path):
    states = states_of(tiny_pipe)
    plain = erasekit.erase(tiny_pipe, ["van gogh"], method="uce")
    edit = gated(plain, always=True)
    path = edit.save(tmp_path / "gated.safetensors")
    back = Edit.load(path)
    assert back.gate is not None and back.id == edit.id
    torch.testing.assert_close(back.gate.basis, edit.gate.basis)
    assert back.gate.scalars() == edit.gate.scalars()
    plain.apply(tiny_pipe)
    expected = unet_out(tiny_pipe, states)  # an open gate = the ungated update
    plain.remove(tiny_pipe)
    tiny_pipe.load_lora_weights(str(path))  # diffusers skips the gate's keys and applies B A to every token
    torch.testing.assert_close(unet_out(tiny_pipe, states), expected, rtol=1e-4, atol=1e-4)


def test_always_open_rows_act_on_every_token_and_the_others_through_the_gate(tiny_pipe, tmp_path):
    """An edit of two parts (ACE's ungated kinds): ``always`` marks the rows of ``A`` no gate holds back."""
    states = states_of(tiny_pipe)
    base = unet_out(tiny_pipe, states)
    # rank 2 in every layer, as an ACE edit has one rank throughout (always is one vector for all layers)
    style, church = (rank_cut(erasekit.erase(tiny_pipe, [c], method="uce"), 2) for c in ("van gogh", "a church"))
    updates = {name: (torch.cat([B, church.updates[name][0]], 1), torch.cat([A, church.updates[name][1]], 0))
               for name, (B, A) in style.updates.items()}  # fmt: skip
    r_style = 2
    always = torch.tensor([1.0, 1.0, 0.0, 0.0])
    for gate_open, expected_from in ((False, [style]), (True, [style, church])):
        for e in expected_from:
            e.apply(tiny_pipe)
        expected = unet_out(tiny_pipe, states)
        for e in expected_from:
            e.remove(tiny_pipe)
        shut_or_open = gated(church, always=gate_open).gate
        edit = dataclasses.replace(church, updates=updates, gate=dataclasses.replace(shut_or_open, always=always))
        edit.apply(tiny_pipe)
        torch.testing.assert_close(unet_out(tiny_pipe, states), expected, rtol=1e-5, atol=1e-5)
        edit.remove(tiny_pipe)
        assert torch.equal(unet_out(tiny_pipe, states), base)
    back = Edit.load(edit.save(tmp_path / "two-parts.safetensors"))
    assert torch.equal(back.gate.always, always) and back.id == edit.id
    assert back.summary()["gate"]["always_open_rows"] == r_style
