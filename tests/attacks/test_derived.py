from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch.testing import assert_close

from erasekit import Edit
from erasekit.attacks import attack
from erasekit.attacks.derived import gate_open, grams
from erasekit.closed_form import regenerating_embeddings
from erasekit.gate import TokenGate
from erasekit.targets import find_targets
from erasekit.text import TextEncoder

from .conftest import FAST, same_state, unet_state


def close_form_emb_regzero(model, model_copy, concept, with_to_k=True, regeular_scale=1e-3):
    """RECE's ``utils/embedding_calculation/close_form_emb.py:close_form_emb_regzero``, transcribed literally.

    ``model`` holds the edited weights, ``model_copy`` the original ones; float64 for the comparison.
    """
    sub_nets = model.unet.named_children()
    sub_nets_copy = model_copy.unet.named_children()
    ca_layers = []
    ca_layers_copy = []
    for net in sub_nets:
        if "up" in net[0] or "down" in net[0]:
            for block in net[1]:
                if "Cross" in block.__class__.__name__:
                    for attn in block.attentions:
                        for transformer in attn.transformer_blocks:
                            ca_layers.append(transformer.attn2)
        if "mid" in net[0]:
            for attn in net[1].attentions:
                for transformer in attn.transformer_blocks:
                    ca_layers.append(transformer.attn2)
    for net in sub_nets_copy:
        if "up" in net[0] or "down" in net[0]:
            for block in net[1]:
                if "Cross" in block.__class__.__name__:
                    for attn in block.attentions:
                        for transformer in attn.transformer_blocks:
                            ca_layers_copy.append(transformer.attn2)
        if "mid" in net[0]:
            for attn in net[1].attentions:
                for transformer in attn.transformer_blocks:
                    ca_layers_copy.append(transformer.attn2)
    projection_matrices = [layer.to_v for layer in ca_layers]
    projection_matrices_copy = [layer.to_v for layer in ca_layers_copy]
    if with_to_k:
        projection_matrices = projection_matrices + [layer.to_k for layer in ca_layers]
        projection_matrices_copy = projection_matrices_copy + [layer.to_k for layer in ca_layers_copy]
    concept_tokens = model.tokenizer(
        concept, padding="max_length", max_length=model.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        concept_embedding = model.text_encoder(concept_tokens["input_ids"])[0].squeeze(0).double()
    d = projection_matrices[0].weight.shape[1]
    mat1 = torch.eye(d, dtype=torch.float64) * regeular_scale
    mat2 = torch.zeros((d, d), dtype=torch.float64)
    for idx_, layer in enumerate(projection_matrices):
        W, W_copy = layer.weight.detach().double(), projection_matrices_copy[idx_].weight.detach().double()
        mat1 = mat1 + torch.matmul(W.T, W)
        mat2 = mat2 + torch.matmul(W.T, W_copy)
    coefficent = torch.matmul(torch.inverse(mat1), mat2)
    adv_embedding = torch.matmul(concept_embedding, coefficent.T).unsqueeze(0)
    return concept_embedding.unsqueeze(0), adv_embedding


def _reference(pipe, edit, concept, **kwargs):
    original = copy.deepcopy(pipe)
    edit.apply(pipe)
    try:
        return close_form_emb_regzero(pipe, original, concept, **kwargs)[1][0]
    finally:
        edit.remove(pipe)


def test_derived_equals_rece_close_form_emb_regzero(edited, never):
    pipe, edit = edited
    expected = _reference(pipe, edit, "cat", regeular_scale=1e-2)  # [L, d] float64
    result = attack(pipe, "derived", "cat", judge=never, edit=edit, reg_lamb=1e-2, sampling=FAST)
    found = result.cases[0].outcome.prompt_embeds
    assert found.shape == (77, 32) and found.dtype == torch.float32
    assert_close(found.double(), expected, rtol=1e-5, atol=1e-6)


def test_derived_values_only_matches_the_reference_without_to_k(edited, never):
    pipe, edit = edited
    expected = _reference(pipe, edit, "cat", with_to_k=False, regeular_scale=1e-2)
    result = attack(pipe, "derived", "cat", judge=never, edit=edit, reg_lamb=1e-2, edit_keys=False, sampling=FAST)
    assert_close(result.cases[0].outcome.prompt_embeds.double(), expected, rtol=1e-5, atol=1e-6)


def test_the_lift_is_exact_for_an_edit_not_of_the_closed_form_shape(edited):
    """A random dense-ish edit (W_l ≠ W_orig,l T for any shared T) still gives Eq. 8 exactly."""
    pipe, _ = edited
    targets = find_targets(pipe.unet)
    g = torch.Generator().manual_seed(0)
    updates = {
        t.name: (0.1 * torch.randn(t.weight.shape[0], 3, generator=g), torch.randn(3, t.weight.shape[1], generator=g))
        for t in targets
    }
    edit = Edit(updates, method="random", fingerprint=targets.fingerprint())
    expected = _reference(pipe, edit, "cat", regeular_scale=1e-2)
    edit.apply(pipe)
    try:
        states = pipe.text_encoder(pipe.tokenizer("cat", padding="max_length", return_tensors="pt").input_ids)[0][0]
        found = regenerating_embeddings(*grams(pipe.unet, edit_keys=True), states.detach(), 1e-2)
    finally:
        edit.remove(pipe)
    assert_close(found, expected, rtol=1e-8, atol=1e-9)


def test_derived_is_bit_identical_across_runs_and_leaves_the_weights_alone(edited, never):
    pipe, edit = edited
    before = unet_state(pipe)
    runs = [
        attack(pipe, "derived", "cat", judge=never, edit=edit, prompts=["cat", "a cat"], sampling=FAST) for _ in "ab"
    ]
    assert same_state(pipe, before)
    for a, b in zip(*(r.cases for r in runs)):
        assert torch.equal(a.outcome.prompt_embeds, b.outcome.prompt_embeds)
        assert a.outcome.image.tobytes() == b.outcome.image.tobytes()


def test_the_derived_embedding_minimises_rece_eq5(edited):
    """c' = argmin Σ_l ‖W_l c' − W_orig,l c‖² + λ‖c'‖²: no nearby point does better (Eq. 5)."""
    pipe, edit = edited
    targets = find_targets(pipe.unet)
    originals = {t.name: t.weight.detach().double().clone() for t in targets}
    with torch.no_grad():
        c = pipe.text_encoder(pipe.tokenizer("cat", padding="max_length", return_tensors="pt").input_ids)[0][0, 1]
    edit.apply(pipe)
    try:
        found = regenerating_embeddings(*grams(pipe.unet, edit_keys=True), c[None], 1e-2)[0]
        edited_w = {t.name: t.weight.detach().double().clone() for t in targets}
    finally:
        edit.remove(pipe)

    def objective(x):
        fit = sum(((edited_w[n] @ x - originals[n] @ c.double()) ** 2).sum() for n in originals)
        return fit + 1e-2 * (x**2).sum()

    g = torch.Generator().manual_seed(0)
    best = objective(found)
    assert best < objective(c.double())
    assert all(best <= objective(found + 1e-3 * torch.randn(32, generator=g, dtype=torch.float64)) for _ in range(20))


def test_a_gated_edit_counts_as_its_open_gate(edited):
    """A gated edit merges no weight; Eq. 8 still sees its whole linear update."""
    pipe, edit = edited
    d = next(iter(edit.updates.values()))[1].shape[1]
    gate = TokenGate(torch.eye(d)[:, :2], torch.zeros(d), 10.0, 0.5)
    merged = _grams_with(pipe, edit)
    gated = _grams_with(pipe, dataclasses.replace(edit, gate=gate))
    for a, b in zip(merged, gated):
        assert_close(a, b, rtol=1e-5, atol=1e-6)  # a merged edit is rounded to the weights' float32


@pytest.mark.parametrize(("threshold", "share"), [(-1.0, 1.0), (2.0, 0.0)])
def test_derived_reports_where_a_gated_edits_gate_opens_on_its_embedding(edited, never, threshold, share):
    """The gate's ratio lies in [0, 1]: τ = -1 opens it on every token state of c', τ = 2 on none."""
    pipe, edit = edited
    d = next(iter(edit.updates.values()))[1].shape[1]
    gate = TokenGate(torch.eye(d)[:, :2], torch.zeros(d), 50.0, threshold)
    result = attack(pipe, "derived", "cat", judge=never, edit=dataclasses.replace(edit, gate=gate),
                    prompts=["cat", "a cat"], sampling=FAST)  # fmt: skip
    assert [c.outcome.info["gate_open"] for c in result.cases] == [share, share]
    assert result.info["gate_open_mean"] == share


def test_derived_reports_no_gate_for_an_ungated_edit(edited, never):
    pipe, edit = edited
    result = attack(pipe, "derived", "cat", judge=never, edit=edit, prompts=["cat"], sampling=FAST)
    assert "gate_open_mean" not in result.info and "gate_open" not in result.cases[0].outcome.info


def test_gate_open_counts_a_token_where_any_gate_opens():
    """Two gates on disjoint axes: a state along one axis opens one gate, so it counts; one along neither does not."""
    e = torch.eye(4)
    gates = [TokenGate(e[:, :1], torch.zeros(4), 50.0, 0.5), TokenGate(e[:, 1:2], torch.zeros(4), 50.0, 0.5)]
    assert gate_open(gates, torch.stack([e[0], e[1], e[2], e[3]])) == 0.5


def _grams_with(pipe, edit):
    edit.apply(pipe)
    try:
        return grams(pipe.unet, edit_keys=True)
    finally:
        edit.remove(pipe)


def test_derived_reports_its_lambda_and_norm_ratios(edited, never):
    pipe, edit = edited
    result = attack(pipe, "derived", "cat", judge=never, edit=edit, prompts=["cat", "a cat", "a cat on a mat"],
                    reg_lamb=1e-2, sampling=FAST)  # fmt: skip
    states = TextEncoder(pipe).encode_text(["cat", "a cat", "a cat on a mat"])
    ratios = [float(c.outcome.prompt_embeds.norm() / s.norm()) for c, s in zip(result.cases, states)]
    assert result.info["reg_lamb"] == 1e-2 and result.info["norm_ratio"] == pytest.approx(ratios)
    assert result.info["norm_ratio_median"] == pytest.approx(sorted(ratios)[1])
    assert [c.outcome.info["norm_ratio"] for c in result.cases] == pytest.approx(ratios)


def test_derived_bounded_keeps_each_token_within_the_prompts_norm_range(edited, never):
    pipe, edit = edited
    prompts = ["cat", "a cat", "a cat on a mat"]
    bounded = attack(pipe, "derived_bounded", "cat", judge=never, edit=edit, prompts=prompts, sampling=FAST)
    norms = TextEncoder(pipe).encode_text(prompts).norm(dim=-1)  # [3, L]
    low, high = norms.min(0).values, norms.max(0).values
    for case in bounded.cases:
        n = case.outcome.prompt_embeds.norm(dim=-1)
        assert ((n >= low * (1 - 1e-5)) & (n <= high * (1 + 1e-5))).all()
        assert case.outcome.info["reg_lamb_max"] >= 1e-3  # λ only grows from Eq. 8's
