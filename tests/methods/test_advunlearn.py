from __future__ import annotations

import dataclasses

import pytest
import torch

import erasekit
from erasekit.errors import ConfigError
from erasekit.methods import EraseRequest
from erasekit.methods.advunlearn import AdvUnlearnConfig, train_advunlearn
from erasekit.methods.advunlearn.attack import attack_loss, soft_prompt_attack
from erasekit.methods.advunlearn.retain import retain_prompts
from erasekit.methods.advunlearn.train import erase_loss, retain_loss, text_layers
from erasekit.methods.esd import Checkpoints
from erasekit.targets import find_targets
from erasekit.text import TextEncoder
from tests.methods.embedded import assert_erased, erase_on_embedded
from tests.methods.resume import resumed_states

# two iterations of each kind (warmup, then attacked) on the tiny model, a tiny COCO pool
FAST = {"iterations": 3, "warmup": 1, "attack_steps": 1, "ddim_steps": 2, "retain_pool": 4, "retain_batch": 1}


def text_state(pipe):
    return {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()}


# ---- losses, by hand -------------------------------------------------------------------------
def test_erase_loss_is_esds_negatively_guided_target():
    e_0, e_p = torch.full((1, 4, 2, 2), 1.0), torch.full((1, 4, 2, 2), 3.0)
    # target = 1 − η (3 − 1): η = 1 -> −1, η = 0.5 -> 0
    assert erase_loss(torch.zeros(1, 4, 2, 2), e_0, e_p, 1.0).item() == pytest.approx(1.0)
    assert erase_loss(torch.zeros(1, 4, 2, 2), e_0, e_p, 0.5).item() == pytest.approx(0.0)
    assert erase_loss(torch.full((1, 4, 2, 2), -1.0), e_0, e_p, 1.0).item() == pytest.approx(0.0)


def test_retain_and_attack_losses_are_mean_squared_errors():
    a, b = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1.0, 0.0], [3.0, 8.0]])
    assert retain_loss(a, b).item() == pytest.approx((0 + 4 + 0 + 16) / 4)
    assert attack_loss(a, b).item() == pytest.approx(5.0)


def test_the_attack_finds_tokens_that_bring_a_target_back(tiny_pipe):
    """With a fixed latent, the attack's Adam steps lower ‖ε(x, τ([a; c])) − e_p‖² from its start."""
    text = TextEncoder(tiny_pipe)
    slotted = text.slotted(["a cat"], 1)
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(1, 4, 16, 16, generator=g), torch.tensor(500)
    with torch.no_grad():
        e_p = tiny_pipe.unet(x, t, encoder_hidden_states=text.encode_text(["a dog"])).sample

    def predict(x_t, t, states):
        return tiny_pipe.unet(x_t, t, encoder_hidden_states=states).sample

    init = torch.randn(1, text.table.weight.shape[1], generator=g)

    def loss(a):
        with torch.no_grad():
            return attack_loss(predict(x, t, text.encode(slotted.ids, slots=slotted.slots, slot_embeds=a)), e_p).item()

    a = soft_prompt_attack(text, slotted, init, lambda: (x, t, e_p), predict, steps=8, lr=0.1)
    assert a.shape == init.shape and not a.requires_grad
    assert loss(a) < 0.9 * loss(init)


# ---- the trained edit ------------------------------------------------------------------------
def test_text_layers_are_the_blocks_linears_by_component(tiny_pipe):
    every = text_layers(tiny_pipe.text_encoder, "all")
    attn, ffn = text_layers(tiny_pipe.text_encoder, "attn"), text_layers(tiny_pipe.text_encoder, "ffn")
    assert all(n.startswith("text_encoder.") and ".layers." in n for n in every)
    assert set(attn) | set(ffn) == set(every) and not set(attn) & set(ffn)
    assert all(n.rsplit(".", 1)[1] in ("q_proj", "k_proj", "v_proj", "out_proj") for n in attn)
    assert all(n.rsplit(".", 1)[1] in ("fc1", "fc2") for n in ffn)


def test_advunlearn_is_a_text_encoder_lora_that_moves_the_concept(tiny_pipe):
    text0, unet0 = text_state(tiny_pipe), tiny_pipe.unet.state_dict()
    before = TextEncoder(tiny_pipe)(["a cat", "a dog"]).states
    edit = erasekit.erase(tiny_pipe, ["a cat"], "advunlearn", preserve=["a dog"], lr=1e-2, rank=2, **FAST)
    assert set(edit.updates) == set(text_layers(tiny_pipe.text_encoder, "all")) and edit.ranks == [2]
    assert edit.preserve == ["a dog"] and edit.info["retain_prompts"] == 1 + FAST["retain_pool"]
    assert edit.fingerprint == find_targets(tiny_pipe.unet).fingerprint()
    edit.apply(tiny_pipe)
    after = TextEncoder(tiny_pipe)(["a cat", "a dog"]).states
    assert (after[0] - before[0]).norm() > 0
    edit.remove(tiny_pipe)
    assert all(torch.equal(v, text0[k]) for k, v in tiny_pipe.text_encoder.state_dict().items())
    assert all(torch.equal(v, unet0[k]) for k, v in tiny_pipe.unet.state_dict().items())


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tiny_pipe):
    cfg = AdvUnlearnConfig(**FAST, retain="reg", retain_set="preserve", lr=1e-2)  # "iter" runs in the test above
    request = EraseRequest(
        find_targets(tiny_pipe.unet), TextEncoder(tiny_pipe), ("a cat",), tiny_pipe, preserve=("a dog",)
    )
    states = resumed_states(train_advunlearn, request, cfg, every=2)  # seeded: the generator state goes on alike
    assert [s.iteration for s in states] == [2] and states[0].adversary is not None
    with pytest.raises(ConfigError, match="rank"):
        train_advunlearn(request, dataclasses.replace(cfg, rank=2), checkpoints=Checkpoints(resume=states[0]))


# ---- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"iterations": 0}, "iterations must be ≥ 1"),
        ({"attack_lr": -1.0}, "attack_lr must be a finite number > 0"),
        ({"component": "mlp"}, "component must be one of"),
        ({"retain": "both"}, "retain must be one of"),
        ({"retain_pool": 0}, "retain_pool is 0"),
        ({"warmup": -1}, "warmup must be ≥ 0"),
    ],
)
def test_bad_configs_are_one_clear_error(overrides, words):
    with pytest.raises(ConfigError, match=words):
        AdvUnlearnConfig(**overrides)


def test_a_retain_set_that_names_a_concept_is_refused(tiny_pipe):
    clash = r"preserve entry 'a red parachute' names the erased concept 'parachute' \(0 more"
    with pytest.raises(ConfigError, match=clash):
        erasekit.erase(tiny_pipe, ["parachute"], "advunlearn", preserve=["a red parachute"], **FAST)
    with pytest.raises(ConfigError, match=r"no preserve set was given"):
        erasekit.erase(tiny_pipe, ["parachute"], "advunlearn", retain_set="preserve", **FAST)
    with pytest.raises(ConfigError, match="takes no guides"):
        erasekit.erase(tiny_pipe, ["parachute"], "advunlearn", guides=["a kite"], **FAST)


def test_coco_retain_captions_never_name_the_concept():
    pool = retain_prompts(["dog", "bus"], ["a cat"], AdvUnlearnConfig(retain_pool=400))
    assert pool[0] == "a cat" and 300 < len(pool) < 401
    assert not any(w in p.lower().replace(".", " ").split() for p in pool for w in ("dog", "bus"))


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_advunlearn_erases_parachute_on_the_embedded_world(threads):
    # at lr 3e-3 the thread count alone decided whether the text-encoder LoRA wrecked every unrelated prompt
    # (1 thread: 1 of 9 kept; 2 threads: 9 of 9)
    assert_erased(erase_on_embedded("advunlearn", "parachute", threads=threads))
