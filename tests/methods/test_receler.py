from __future__ import annotations

import dataclasses

import pytest
import torch

import erasekit
from erasekit.errors import ConfigError
from erasekit.methods import EraseRequest
from erasekit.methods.esd import Checkpoints
from erasekit.methods.receler import RecelerConfig, train_receler
from erasekit.methods.receler.regions import attention_maps, concept_masks, cross_attentions, outside_loss
from erasekit.methods.receler.train import with_adversary
from erasekit.targets import find_targets
from erasekit.text import TextEncoder
from tests.methods.embedded import assert_erased, erase_on_embedded
from tests.methods.resume import resumed_states

FAST = {"iterations": 3, "adversary_steps": 2, "ddim_steps": 2, "rank": 2, "adversary_tokens": 2}


# ---- pieces, by hand -------------------------------------------------------------------------
def test_with_adversary_replaces_the_states_after_the_words_and_passes_the_gradient():
    c = torch.zeros(1, 6, 3)
    a = torch.ones(2, 3, requires_grad=True)
    out = with_adversary(c, a, 2)
    assert out.shape == c.shape and out[0, 2:4].eq(1).all() and out[0, :2].eq(0).all() and out[0, 4:].eq(0).all()
    out.sum().backward()
    assert a.grad.eq(1).all()


def test_concept_masks_threshold_the_normalised_map_and_resize_it():
    hot = torch.zeros(1, 16)
    hot[0, 10] = 1.0  # 4 x 4 map: one pixel at (2, 2)
    maps = {"a": hot, "b": hot * 2 + 3, "small": torch.rand(1, 4)}  # two 4 x 4 layers, one 2 x 2
    masks = concept_masks(maps, 0.1, side=4)
    assert masks["a"].tolist() == [[1.0 if i == 10 else 0.0 for i in range(16)]]
    assert torch.equal(masks["a"], masks["b"])
    assert masks["small"].tolist() == [[0.0, 0.0, 0.0, 1.0]]  # nearest, as F.interpolate: cell (1, 1) reads (2, 2)


def test_outside_loss_averages_the_squared_output_outside_the_mask_per_layer():
    e = torch.tensor([[[1.0, 3.0], [2.0, 2.0], [4.0, 0.0]]])  # [1, hw=3, d=2]: per-pixel mean of squares 5, 4, 8
    mask = torch.tensor([[1.0, 0.0, 0.0]])  # pixel 0 is the concept: (4 + 8) / 2
    assert outside_loss({"l": e}, {"l": mask}).item() == pytest.approx(6.0)
    zero_outside = {"l": e, "m": e * torch.tensor([[[1.0], [0.0], [0.0]]])}
    assert outside_loss(zero_outside, {"l": mask, "m": mask}).item() == pytest.approx(3.0)


def test_attention_maps_are_softmax_probabilities_at_the_word_tokens(tiny_pipe):
    states = TextEncoder(tiny_pipe)(["a cat"]).states
    L, x = states.shape[1], torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    every, words = {}, {}
    with torch.no_grad(), attention_maps(tiny_pipe.unet, torch.arange(L), every):
        tiny_pipe.unet(x, 10, encoder_hidden_states=states)
    with torch.no_grad(), attention_maps(tiny_pipe.unet, torch.tensor([1, 2]), words):
        tiny_pipe.unet(x, 10, encoder_hidden_states=states)
    assert set(every) == set(cross_attentions(tiny_pipe.unet))
    for m in every.values():  # every token: each row of probabilities sums to one, so the mean is 1 / L
        torch.testing.assert_close(m, torch.full_like(m, 1.0 / L))
    assert all(((m >= 0) & (m <= 1)).all() and m.std() > 0 for m in words.values())


# ---- the trained erasers ---------------------------------------------------------------------
def test_receler_is_a_seeded_lora_on_every_cross_attention_output(tiny_pipe):
    before = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    edit = erasekit.erase(tiny_pipe, ["a cat"], "receler", **FAST)
    again = erasekit.erase(tiny_pipe, ["a cat"], "receler", **FAST)
    assert edit.id == again.id and edit.info["losses"] == again.info["losses"]
    assert set(edit.updates) == {f"{n}.to_out.0" for n in cross_attentions(tiny_pipe.unet)} and edit.ranks == [2]
    assert len(edit.info["reg_losses"]) == FAST["iterations"] and edit.info["reg_losses"][-1] > 0
    edit.apply(tiny_pipe)
    assert any(not torch.equal(v, before[k]) for k, v in tiny_pipe.unet.state_dict().items())
    edit.remove(tiny_pipe)
    assert all(torch.equal(v, before[k]) for k, v in tiny_pipe.unet.state_dict().items())


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tiny_pipe):
    cfg = RecelerConfig(**FAST)
    request = EraseRequest(find_targets(tiny_pipe.unet), TextEncoder(tiny_pipe), ("a cat", "a dog"), tiny_pipe)
    states = resumed_states(train_receler, request, cfg, every=2)
    assert [s.iteration for s in states] == [2] and len(states[0].adversaries) == 2
    with pytest.raises(ConfigError, match="reg_weight"):
        train_receler(request, dataclasses.replace(cfg, reg_weight=1.0), checkpoints=Checkpoints(resume=states[0]))


# ---- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"iterations": 0}, "iterations must be ≥ 1"),
        ({"adversary_steps": -1}, "adversary_steps must be ≥ 0"),
        ({"lr": float("nan")}, "lr must be a finite number > 0"),
        ({"reg_weight": -0.1}, "reg_weight must be a finite number ≥ 0"),
        ({"mask_threshold": 1.0}, r"mask_threshold must be in \[0, 1\)"),
    ],
)
def test_bad_configs_are_one_clear_error(overrides, words):
    with pytest.raises(ConfigError, match=words):
        RecelerConfig(**overrides)


def test_bad_requests_are_one_clear_error(tiny_pipe):
    with pytest.raises(ConfigError, match="no guides and no preserve set"):
        erasekit.erase(tiny_pipe, ["a cat"], "receler", preserve=["a dog"], **FAST)
    with pytest.raises(ConfigError, match="overflow the text context"):
        erasekit.erase(tiny_pipe, ["a cat"], "receler", **{**FAST, "adversary_tokens": 200})


# ---- end to end on the embedded world --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_receler_erases_parachute_on_the_embedded_world(threads):
    assert_erased(erase_on_embedded("receler", "parachute", threads=threads, preserve=False))
