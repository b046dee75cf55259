from __future__ import annotations

import dataclasses

import pytest
import torch

import erasekit
from erasekit.errors import ConfigError
from erasekit.methods import EraseRequest
from erasekit.methods.esd import Checkpoints, ESDConfig, train_esd
from erasekit.methods.esd.config import SETTINGS
from erasekit.targets import find_targets
from erasekit.text import TextEncoder
from erasekit.worlds.tiny import tiny_pipeline
from tests.methods.embedded import assert_erased, erase_on_embedded
from tests.methods.resume import resumed_states
from tests.test_edit import assert_loads_in_diffusers, generate

FAST = {"iterations": 8, "ddim_steps": 3, "lr": 1e-2}  # a handful of steps on the tiny U-Net; lr for a visible change


def unet_state(pipe):
    return {k: v.clone() for k, v in pipe.unet.state_dict().items()}


def held_out(pipe, concept, *, n=8):
    """``n`` fixed latents and timesteps, not drawn from ESD's generator, with the concept's and ∅'s states."""
    enc = TextEncoder(pipe)([concept, ""]).states
    c, null = enc[:1], enc[1:]
    g = torch.Generator().manual_seed(123)
    xs = torch.randn(n, 4, 16, 16, generator=g)
    ts = torch.randint(1, 1000, (n,), generator=g)
    return xs, ts, c, null


@pytest.mark.parametrize(("method", "name"), [("esd", "ESD"), ("receler", "Receler"), ("spm", "SPM")])
def test_each_trainer_refuses_sdxl_in_its_own_name(method, name):
    with pytest.raises(ConfigError, match=rf"^{name} supports U-Nets conditioned on text alone .*'text_time'"):
        erasekit.erase(tiny_pipeline("sdxl"), ["a cat"], method)


def test_loss_decreases_on_held_out_latents(tiny_pipe):
    xs, ts, c, null = held_out(tiny_pipe, "van gogh")
    unet = tiny_pipe.unet

    @torch.no_grad()
    def eps(cond):
        return unet(xs, ts, encoder_hidden_states=cond.expand(len(xs), -1, -1)).sample

    e_0, e_p = eps(null), eps(c)
    target = e_0 - 1.0 * (e_p - e_0)  # ESD Eq. 7 with η = 1, from the frozen original
    before = float(((e_p - target) ** 2).mean())
    edit = erasekit.erase(tiny_pipe, ["van gogh"], method="esd", **FAST)
    edit.apply(tiny_pipe)
    after = float(((eps(c) - target) ** 2).mean())
    assert after < 0.8 * before
    assert len(edit.info["losses"]) == FAST["iterations"]


def test_esd_x_touches_only_cross_attention_kv_at_the_configured_rank(tiny_pipe):
    edit = erasekit.erase(tiny_pipe, ["van gogh"], method="esd", rank=3, **FAST)
    assert set(edit.updates) == {t.name for t in find_targets(tiny_pipe.unet)}
    assert all(".attn2.to_k" in n or ".attn2.to_v" in n for n in edit.updates)
    for B, A in edit.updates.values():
        assert B.shape[1] == A.shape[0] == 3
        assert B.dtype == A.dtype == torch.float32 and B.device.type == "cpu"
    assert edit.method == "esd" and edit.config["variant"] == "x"


def test_esd_u_trains_self_attention_and_feed_forward_layers_and_loads_in_diffusers(tiny_pipe, tmp_path):
    edit = erasekit.erase(tiny_pipe, ["van gogh"], method="esd", variant="u", **{**FAST, "iterations": 3, "lr": 5e-2})
    assert edit.updates and not any(".attn2." in n for n in edit.updates)
    assert {n.split(".transformer_blocks.0.")[1] for n in edit.updates} == {
        "attn1.to_q",
        "attn1.to_k",
        "attn1.to_v",
        "attn1.to_out.0",
        "ff.net.0.proj",
        "ff.net.2",
    }
    path = edit.save(tmp_path / "esd_u.safetensors")
    original = generate(tiny_pipe)
    tiny_pipe.load_lora_weights(str(path))
    theirs = generate(tiny_pipe)
    tiny_pipe.unload_lora_weights()
    before = {k: v.clone() for k, v in tiny_pipe.unet.state_dict().items()}
    edit.apply(tiny_pipe)  # self-attention and feed-forward layers too
    ours = generate(tiny_pipe)
    edit.remove(tiny_pipe)
    assert abs(ours - original).max() > 1e-3, "the edit must change the images"
    assert abs(ours - theirs).max() <= 1e-4
    assert all(torch.equal(v, before[k]) for k, v in tiny_pipe.unet.state_dict().items())


def test_bit_identical_under_a_seed_and_different_across_seeds(tiny_pipe):
    a = erasekit.erase(tiny_pipe, ["van gogh", "a church"], method="esd", seed=7, **FAST)
    b = erasekit.erase(tiny_pipe, ["van gogh", "a church"], method="esd", seed=7, **FAST)
    c = erasekit.erase(tiny_pipe, ["van gogh", "a church"], method="esd", seed=8, **FAST)
    assert all(torch.equal(a.updates[n][i], b.updates[n][i]) for n in a.updates for i in (0, 1))
    assert a.info["losses"] == b.info["losses"]
    assert not all(torch.equal(a.updates[n][0], c.updates[n][0]) for n in a.updates)


def test_pipeline_untouched_by_training(tiny_pipe):
    before = unet_state(tiny_pipe)
    flags = [p.requires_grad for p in tiny_pipe.unet.parameters()]
    hooks = [len(m._forward_hooks) for m in tiny_pipe.unet.modules()]
    erasekit.erase(tiny_pipe, ["van gogh"], method="esd", **FAST)
    assert all(torch.equal(v, before[k]) for k, v in tiny_pipe.unet.state_dict().items())
    assert [p.requires_grad for p in tiny_pipe.unet.parameters()] == flags
    assert all(p.grad is None for p in tiny_pipe.unet.parameters())
    assert [len(m._forward_hooks) for m in tiny_pipe.unet.modules()] == hooks


def test_saved_file_loads_in_plain_diffusers_with_the_same_outputs(tiny_pipe, tmp_path):
    edit = erasekit.erase(tiny_pipe, ["van gogh"], method="esd", **{**FAST, "lr": 5e-2})
    assert_loads_in_diffusers(tiny_pipe, edit, edit.save(tmp_path / "esd.safetensors"))


def test_progress_is_reported_every_iteration(tiny_pipe):
    seen = []
    request = EraseRequest(
        targets=find_targets(tiny_pipe.unet),
        encoder=TextEncoder(tiny_pipe),
        concepts=("dog",),
        pipe=tiny_pipe,
        progress=lambda i, n: seen.append((i, n)),
    )
    train_esd(request, ESDConfig(**{**FAST, "iterations": 3}))
    assert seen == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize(
    "bad", [{"lr": -1e-5}, {"lr": 0.0}, {"iterations": 0}, {"iterations": -3}, {"variant": "z"}, {"rank": 0}]
)
def test_bad_config_is_refused(tiny_pipe, bad):
    with pytest.raises(ConfigError):
        ESDConfig(**bad)
    with pytest.raises(ConfigError):
        erasekit.erase(tiny_pipe, ["dog"], method="esd", **bad)


def test_request_without_a_pipeline_is_refused(tiny_pipe):
    request = EraseRequest(targets=find_targets(tiny_pipe.unet), encoder=TextEncoder(tiny_pipe), concepts=("dog",))
    with pytest.raises(ConfigError, match="needs the pipeline"):
        train_esd(request, ESDConfig(**FAST))
    with pytest.raises(ConfigError, match="no guides"):
        erasekit.erase(tiny_pipe, ["dog"], method="esd", guides=["cat"], **FAST)


def test_defaults_are_the_references():
    cfg = ESDConfig()
    assert dataclasses.asdict(cfg) == {
        "variant": "x",
        "iterations": 1000,
        "lr": 1e-5,
        "negative_guidance": 1.0,
        "start_guidance": 3.0,
        "ddim_steps": 50,
        "rank": 4,
        "seed": 0,
    }


def test_resumed_run_ends_bit_identical_to_the_uninterrupted_one(tiny_pipe):
    request = EraseRequest(
        targets=find_targets(tiny_pipe.unet), encoder=TextEncoder(tiny_pipe), concepts=("dog",), pipe=tiny_pipe
    )
    cfg = ESDConfig(**{**FAST, "iterations": 6})
    states = resumed_states(train_esd, request, cfg, every=3)
    assert [s.iteration for s in states] == [3, 6]
    with pytest.raises(ConfigError, match="differs in lr"):
        train_esd(request, dataclasses.replace(cfg, lr=1e-3), checkpoints=Checkpoints(resume=states[0]))


def test_lora_preset_raises_the_learning_rate(tiny_pipe):
    edit = erasekit.erase(tiny_pipe, ["dog"], method="esd", settings="lora", iterations=1, ddim_steps=1)
    assert edit.config["lr"] == SETTINGS["lora"]["lr"] and edit.info["settings"] == "lora"


# ---- end to end on the embedded world --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_esd_erases_parachute_on_the_embedded_world(threads):
    # the settings compare runs (lora), ESD-x's cross-attention K/V; the preserve set is not ESD's input
    assert_erased(erase_on_embedded("esd", "parachute", threads=threads, settings="lora", preserve=False))
