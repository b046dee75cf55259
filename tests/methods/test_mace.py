"""MACE: each stage against a transcription of the reference or a hand-derived case, bad input, end to end."""

from __future__ import annotations

import math
import time

import pytest
import torch

import erasekit
from erasekit.closed_form import layer_updates
from erasekit.edit import Edit
from erasekit.errors import ConfigError
from erasekit.methods import EraseRequest, get
from erasekit.methods.mace import (
    MACEConfig,
    attention_map_loss,
    coexisting_positions,
    concept_positions,
    concept_prompts,
    erase_mace,
    from_segmenter,
    fuse,
    fusion_maps,
    importance_weights,
    refine_factor,
)
from erasekit.targets import find_targets
from erasekit.text import TextEncoder
from erasekit.worlds.tiny import tiny_pipeline
from tests.methods.embedded import assert_erased, erase_on_embedded
from tests.oracle import F64, ca_projections, pipe_encoder
from tests.test_end_to_end import N, detection_rate, embedded_pipeline, unrelated_rates


def request_of(pipe, concepts, **kw):
    return EraseRequest(find_targets(pipe.unet), TextEncoder(pipe), tuple(concepts), pipe=pipe, **kw)


def tiny_regions(concept, n, *, generator):
    """Random latents of the tiny U-Net's shape and a left-half region."""
    masks = torch.zeros(n, 16, 16)
    masks[:, :, :8] = 1
    return torch.randn(n, 4, 16, 16, generator=generator), masks


# ---- stage 1: closed-form refinement ---------------------------------------------------------------


def test_coexisting_positions_by_hand():
    # start, "a", "photo", concept (2 tokens) | guide (1 token), ",", end; padded to 10
    old, new = [101, 5, 6, 50, 51, 7, 102], [101, 5, 6, 60, 7, 102]
    assert coexisting_positions(old, new, 10) == ([0, 1, 2, 5, 6, 7, 8, 9], [0, 1, 2, 4, 5, 6, 7, 8])
    assert coexisting_positions(new, old, 10) == ([0, 1, 2, 4, 5, 6, 7, 8], [0, 1, 2, 5, 6, 7, 8, 9])


def _reference_indices(old, new, length):
    """cfr_utils.find_matching_indices and prepare_k_v's extension to the padded length, transcribed."""
    start = 0
    for i, j in zip(old, new):
        if i != j:
            break
        start += 1
    eo, en = len(old) - 1, len(new) - 1
    while eo >= start and en >= start and old[eo] == new[en]:
        eo, en = eo - 1, en - 1
    oi = list(range(start)) + list(range(eo + 1, len(old)))
    ni = list(range(start)) + list(range(en + 1, len(new)))
    if oi[-1] >= ni[-1]:
        return oi + list(range(oi[-1] + 1, length)), ni + list(range(ni[-1] + 1, length - (oi[-1] - ni[-1])))
    return oi + list(range(oi[-1] + 1, length - (ni[-1] - oi[-1]))), ni + list(range(ni[-1] + 1, length))


def test_refinement_matches_the_reference_closed_form(tiny_pipe):
    """closed_form_refinement over prepare_k_v's rows, per layer with torch.inverse in float64, vs ours."""
    cfg = MACEConfig(lamb=0.5, n_prompts=4, guide="a dog", preserve_scale=0.3)
    request = request_of(tiny_pipe, ["a cat", "a red car"], preserve=("a tree",))
    pairs = concept_prompts(request.concepts, ["a dog"] * 2, cfg)
    updates = layer_updates(request.layers(edit_keys=True), refine_factor(request, cfg, pairs))
    encode, tok = pipe_encoder(tiny_pipe), tiny_pipe.tokenizer
    L = tok.model_max_length
    keep = [t.format("a tree") for t in cfg.templates]
    rows = []  # (context, guide states, weight) per pair, as prepare_k_v builds them (encoded once, not per layer)
    for old_text, new_text in (p for per in pairs for p in per):
        emb, _ = encode([old_text, new_text])
        oi, ni = _reference_indices(tok(old_text).input_ids, tok(new_text).input_ids, L)
        rows.append((emb[0][oi], emb[1][ni], 1.0))
    rows += [(emb, emb, cfg.preserve_scale) for emb in encode(keep)[0]]
    for name, W in ca_projections(tiny_pipe.unet).items():
        mat1, mat2 = cfg.lamb * W, cfg.lamb * torch.eye(W.shape[1], dtype=F64)
        for context, guide, scale in rows:
            mat1 = mat1 + scale * (guide @ W.T).T @ context
            mat2 = mat2 + scale * context.T @ context
        expected = mat1 @ torch.inverse(mat2) - W
        B, A = updates[name]
        got = B.double() @ A.double()
        assert torch.linalg.norm(got - expected) <= 1e-4 * torch.linalg.norm(expected), name


# ---- stage 2: the attention-map loss -------------------------------------------------------------


def test_attention_map_loss_by_hand():
    # 1 image, 2 heads, 2x2 pixels, 3 tokens; every pixel of head 0 attends (.5, .3, .2), of head 1 (.2, .4, .4)
    probs = torch.tensor([[0.5, 0.3, 0.2]] * 4 + [[0.2, 0.4, 0.4]] * 4)[None].reshape(2, 4, 3)
    mask = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # pixels 0 and 3
    positions = torch.tensor([[False, True, True]])
    # head 0: 2 pixels × (.3² + .2²) = .26; head 1: 2 × (.4² + .4²) = .64; √.9
    assert attention_map_loss(probs, mask, positions).item() == pytest.approx(math.sqrt(0.9), rel=1e-6)
    # a 4x4 mask is resized by nearest to 2x2: its pixels (0, 0), (0, 2), (2, 0), (2, 2) decide
    big = torch.zeros(1, 4, 4)
    big[0, 0, 0] = big[0, 2, 2] = 1
    assert attention_map_loss(probs, big, positions).item() == pytest.approx(math.sqrt(0.9), rel=1e-6)
    # two images: the norms add; an empty region adds nothing
    two = attention_map_loss(torch.cat([probs, probs]), torch.cat([mask, torch.zeros(1, 2, 2)]), positions.repeat(2, 1))
    assert two.item() == pytest.approx(math.sqrt(0.9), rel=1e-6)


def test_importance_weights_peak_between_200_and_400():
    w = importance_weights(1000)
    assert w.sum().item() == pytest.approx(1.0) and 200 <= int(w.argmax()) <= 400
    assert w[50] < 1e-3 * w.max() and w[600] < 1e-3 * w.max()


def test_concept_positions_cover_the_concept_and_with_pooler_the_end(tiny_pipe):
    request = request_of(tiny_pipe, ["cat"])
    tok = tiny_pipe.tokenizer
    ids = tok("a photo of cat").input_ids
    where = concept_positions(request, ["a photo of cat"], "cat", use_pooler=False)
    assert where[0].nonzero().flatten().tolist() == [len(ids) - 2]
    where = concept_positions(request, ["a photo of cat"], "cat", use_pooler=True)
    assert where[0].nonzero().flatten().tolist() == [len(ids) - 2, *range(len(ids) - 1, tok.model_max_length)]


# ---- stage 3: fusion -----------------------------------------------------------------------------------


def test_fusion_reproduces_each_lora_on_its_own_inputs_by_hand():
    # concept 1 reads e1 (twice), concept 2 reads e2; M = λI + 2 e1e1ᵀ + e2e2ᵀ, so C_i M⁻¹ C_iᵀ-weighted
    # maps give ΔW e1 = ΔW_1 e1 · 2/(2+λ), ΔW e2 = ΔW_2 e2 · 1/(1+λ), ΔW e3 = 0
    lamb = 1e-3
    e = torch.eye(3)
    rows = [torch.stack([e[0], e[0]]), e[1:2]]
    B1, A1 = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0, 5.0, 7.0]])
    B2, A2 = torch.tensor([[3.0], [-1.0]]), torch.tensor([[4.0, 2.0, 0.5]])
    base = {"l": (torch.zeros(2, 0), torch.zeros(0, 3))}
    maps = fusion_maps(rows, torch.empty(0, 0), lamb=lamb, keep_scale=0.0)
    B, A = fuse(base, [{"l": (B1, A1)}, {"l": (B2, A2)}], rows, maps)["l"]
    dW = B.double() @ A.double()
    torch.testing.assert_close(dW @ e[0].double(), (B1 @ A1 @ e[0]).double() * 2 / (2 + lamb))
    torch.testing.assert_close(dW @ e[1].double(), (B2 @ A2 @ e[1]).double() / (1 + lamb))
    torch.testing.assert_close(dW @ e[2].double(), torch.zeros(2, dtype=F64))


def test_fusion_of_100_loras_keeps_each_on_its_own_concept():
    # mass erasure: concept i reads e_i alone, so the fused update gives LoRA i on e_i, scaled by 1/(1 + λ)
    g, n, d, lamb = torch.Generator().manual_seed(0), 100, 128, 1e-2
    rows = [torch.eye(d)[i : i + 1] for i in range(n)]
    loras = [{"l": (torch.randn(8, 1, generator=g), torch.randn(1, d, generator=g))} for _ in range(n)]
    maps = fusion_maps(rows, torch.empty(0, 0), lamb=lamb, keep_scale=0.0)
    B, A = fuse({"l": (torch.zeros(8, 0), torch.zeros(0, d))}, loras, rows, maps)["l"]
    dW = B.double() @ A.double()
    for i in (0, 37, 99):
        want = (loras[i]["l"][0] @ loras[i]["l"][1])[:, i].double() / (1 + lamb)
        torch.testing.assert_close(dW[:, i], want, rtol=1e-5, atol=1e-6)


def test_fusion_matches_the_reference_closed_form():
    """fuse_lora_close_form: W* = (λW + Σ_i (W + ΔW_i) C_iᵀC_i + ps W KᵀK)(λI + Σ C_iᵀC_i + ps KᵀK)⁻¹."""
    g = torch.Generator().manual_seed(0)
    d, d_out, lamb, ps = 6, 5, 0.3, 0.2
    W, U = torch.randn(d_out, d, generator=g, dtype=F64), torch.randn(d, 2, generator=g, dtype=F64)
    A0 = torch.randn(2, d, generator=g, dtype=F64)
    rows = [torch.randn(4, d, generator=g), torch.randn(3, d, generator=g)]
    K = torch.randn(2, d, generator=g)
    loras = [{"l": (torch.randn(d_out, 1, generator=g), torch.randn(1, d, generator=g))} for _ in rows]
    W_ref = W + W @ U @ A0  # stage 1's refined weight
    mat1, mat2 = lamb * W_ref, lamb * torch.eye(d, dtype=F64)
    for lora, C in zip(loras, rows):
        C = C.double()
        dW = lora["l"][0].double() @ lora["l"][1].double()
        mat1 = mat1 + (C @ (W_ref + dW).T).T @ C
        mat2 = mat2 + C.T @ C
    mat1 = mat1 + ps * (K.double() @ W_ref.T).T @ K.double()
    mat2 = mat2 + ps * K.double().T @ K.double()
    expected = mat1 @ torch.inverse(mat2) - W
    maps = fusion_maps(rows, K, lamb=lamb, keep_scale=ps)
    B, A = fuse({"l": ((W @ U).float(), A0.float())}, loras, rows, maps)["l"]
    torch.testing.assert_close(B.double() @ A.double(), expected, rtol=1e-5, atol=1e-5)


# ---- the method on a tiny pipeline; bad input ---------------------------------------------------------


def test_edit_is_deterministic_loads_in_diffusers_and_is_low_rank(tiny_pipe, tmp_path):
    cfg = MACEConfig(steps=2, lr=1e-2, n_prompts=3, n_images=2)
    edits = [erase_mace(request_of(tiny_pipe, ["a cat", "a dog"]), cfg, regions=tiny_regions) for _ in range(2)]
    assert edits[0].info["stages"] == ["refine", "lora", "fuse"] and len(edits[0].info["losses"]) == 2
    for name, (B, A) in edits[0].updates.items():
        assert torch.equal(B, edits[1].updates[name][0]) and torch.equal(A, edits[1].updates[name][1])
        assert B.shape[1] <= min(B.shape[0], A.shape[1])
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    ctx = tiny_pipe.encode_prompt(["a cat"], "cpu", 1, False)[0]
    edits[0].apply(tiny_pipe)
    ours = tiny_pipe.unet(x, 10, encoder_hidden_states=ctx).sample
    edits[0].remove(tiny_pipe)
    edits[0].save(tmp_path / "mace.safetensors")
    tiny_pipe.load_lora_weights(tmp_path / "mace.safetensors")
    theirs = tiny_pipe.unet(x, 10, encoder_hidden_states=ctx).sample
    tiny_pipe.unload_lora_weights()
    assert torch.linalg.norm(theirs - ours) <= 1e-5 * torch.linalg.norm(ours)


def test_100_concepts_in_one_call(tiny_pipe):
    concepts = [f"thing {i}" for i in range(100)]
    edit = erase_mace(request_of(tiny_pipe, concepts), MACEConfig(steps=0, n_prompts=1))
    assert len(edit.concepts) == 100 and edit.info["stages"] == ["refine"]
    assert any(torch.linalg.norm(edit.delta(name)) > 0 for name in edit.updates)


def test_without_regions_it_warns_and_returns_stage_one(tiny_pipe):
    with pytest.warns(UserWarning, match="no region source"):
        edit = erasekit.erase(tiny_pipe, ["a cat"], "mace")
    assert edit.info["stages"] == ["refine"] and isinstance(edit, Edit)


def test_a_segmenter_that_finds_nothing_is_a_config_error(tiny_pipe):
    source = from_segmenter(tiny_pipe, lambda images, concept: torch.zeros(images.shape[0], *images.shape[2:]), steps=1)
    with pytest.raises(ConfigError, match="Fix the segmenter"):
        erase_mace(request_of(tiny_pipe, ["a cat"]), MACEConfig(steps=1, n_images=1), regions=source)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"lamb": 0.0}, "lamb must be a finite number > 0"),
        ({"rank": 0}, "rank must be a whole number"),
        ({"steps": -1}, "steps must be ≥ 0"),
        ({"templates": ("a photo",)}, "must hold '{}'"),
        ({"no_regions": "guess"}, "no_regions must be"),
        ({"preserve_scale": -1.0}, "preserve_scale must be ≥ 0"),
    ],
)
def test_bad_config_is_one_clear_error(overrides, match):
    with pytest.raises(ConfigError, match=match):
        get("mace").make_config(**overrides)


def test_bad_regions_and_prompts_are_config_errors(tiny_pipe):
    request = request_of(tiny_pipe, ["a cat"])
    with pytest.raises(ConfigError, match="x0 \\[n, C, h, w\\] and masks \\[n, H, W\\]"):
        erase_mace(
            request, MACEConfig(steps=1), regions=lambda c, n, generator: (torch.zeros(n, 4, 16, 16), torch.ones(n))
        )
    sdxl = tiny_pipeline("sdxl")
    with pytest.raises(ConfigError, match="steps=0"):
        erase_mace(request_of(sdxl, ["a cat"]), MACEConfig(steps=1, n_prompts=1), regions=tiny_regions)
    with pytest.raises(ConfigError, match="does not hold the tokens"):
        concept_positions(request, ["a photo of a dog"], "cat", use_pooler=True)


# ---- end to end on the embedded world ------------------------------------------------------------------


@pytest.fixture(scope="module")
def world():
    from erasekit.worlds import embedded

    return embedded_pipeline(), embedded.load_judge(), embedded


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_mace_erases_parachute_on_the_embedded_world(threads):
    assert_erased(erase_on_embedded("mace", "parachute", threads=threads, preserve=False), kept="both")


@pytest.mark.slow
def test_mace_erases_multi10_in_one_call(world):
    pipe, judge, embedded = world
    concepts = list(erasekit.worlds.get("embedded").scenarios()["multi10"]["concepts"])
    preserve = [c for names in embedded.concepts().values() for c in names if c not in (*concepts, "person")]
    before = {c: detection_rate(pipe, judge, embedded.prompt_suite(c, n=N)["target"], c, 0) for c in concepts}
    start = time.perf_counter()
    edit = erasekit.erase(pipe, concepts, "mace", settings="embedded", preserve=preserve)
    seconds = time.perf_counter() - start
    edit.apply(pipe)
    try:
        after = {c: detection_rate(pipe, judge, embedded.prompt_suite(c, n=N)["target"], c, 0) for c in concepts}
        kept = unrelated_rates(pipe, judge, *concepts)["both"]
    finally:
        edit.remove(pipe)
    print(
        "multi10:",
        {c: f"{before[c]:.2f} -> {after[c]:.2f}" for c in concepts},
        f"unrelated {kept:.2f}, {seconds:.0f} s",
    )
    assert sum(before.values()) / len(before) >= 0.8
    assert sum(after.values()) / len(after) <= 0.25 and kept >= 0.8 and seconds <= 600
