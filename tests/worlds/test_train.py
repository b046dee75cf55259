from __future__ import annotations

import zlib

import pytest
import torch
from safetensors import safe_open

from erasekit.errors import ConfigError
from erasekit.worlds.embedded.model import build_unet
from erasekit.worlds.embedded.trainer import TrainConfig, Trainer, diffusion_loss, make_batch
from erasekit.worlds.embedded.weights import WEIGHTS_FILE, load_unet, training_info

from .conftest import TINY_SPEC


class HashedStates:
    """Stands in for the MiniLM caption table: fixed pseudo-random states per text, no encoder."""

    def lookup(self, texts):
        rows = [torch.randn(24, 384, generator=torch.Generator().manual_seed(zlib.crc32(t.encode()))) for t in texts]
        return torch.stack(rows)


def run(cfg, tmp_path, steps):
    """Trains until ``steps``; returns the trainer, its step when it began, and every step it ran."""
    trainer = Trainer(TrainConfig(**{**cfg, "steps": steps}), tmp_path / "cache", tmp_path / "export")
    began, ran = trainer.step, []
    trainer.run(checkpoint_every=2, table=HashedStates(), progress=lambda step, loss: ran.append(step))
    return trainer, began, ran


def initial_unet(seed):
    """The U-Net a Trainer with ``seed`` starts from (it seeds the initialisation the same way)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_unet(TINY_SPEC)


def test_resume_after_a_stop_equals_an_uninterrupted_run(tmp_path):
    cfg = dict(batch_size=4, warmup=2, spec=TINY_SPEC, seed=3)
    straight, _, _ = run(cfg, tmp_path / "a", steps=4)
    run(cfg, tmp_path / "b", steps=2)
    assert (tmp_path / "b" / "cache" / "checkpoint.pt").is_file()
    resumed, began, ran = run(cfg, tmp_path / "b", steps=4)
    # it did resume: it started at the checkpoint's step and ran only the steps left (a run that ignored
    # the checkpoint and trained from scratch would also end bit-identical, so this is what tells them apart)
    assert (began, ran) == (2, [3, 4])
    assert resumed.step == straight.step == 4
    # ... and the result is bit-identical: weights, EMA and the optimizer's moments
    for key, value in straight.unet.state_dict().items():
        assert torch.equal(value, resumed.unet.state_dict()[key]), key
    for key, value in straight.ema.shadow.items():
        assert torch.equal(value, resumed.ema.shadow[key]), key
    assert straight.ema.updates == resumed.ema.updates == 4
    a, b = straight.opt.state_dict()["state"], resumed.opt.state_dict()["state"]
    assert a.keys() == b.keys()
    for i in a:
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(a[i][name], b[i][name]), (i, name)


def test_training_moves_the_weights_and_exports_fp16(tmp_path):
    trainer, _, ran = run(dict(batch_size=4, warmup=1, spec=TINY_SPEC), tmp_path, steps=2)
    assert ran == [1, 2]
    start = initial_unet(TrainConfig().seed).state_dict()
    trained = trainer.unet.state_dict()
    moved = [k for k, v in trained.items() if v.dtype.is_floating_point and not torch.equal(v, start[k])]
    assert len(moved) > len(trained) // 2, f"only {len(moved)} of {len(trained)} tensors moved"
    assert any(not torch.equal(trainer.ema.shadow[k], start[k]) for k in moved)  # the EMA follows

    trainer.export()
    exported = tmp_path / "export"
    assert (exported / "training.json").is_file() and training_info(exported)["step"] == 2
    with safe_open(str(exported / WEIGHTS_FILE), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys()}
    assert dtypes == {torch.float16}
    # what was exported is the EMA of the weights, rounded to fp16
    ema = trainer.ema_unet().state_dict()
    for key, value in load_unet(exported, dtype=torch.float16).state_dict().items():
        assert torch.equal(value, ema[key].to(torch.float16)), key

    fresh = Trainer(TrainConfig(steps=3, batch_size=4, spec=TINY_SPEC), tmp_path / "other-cache", exported)
    assert fresh.step == 2  # warm start from the export when there is no checkpoint
    for key, value in load_unet(exported).state_dict().items():
        assert torch.equal(fresh.unet.state_dict()[key], value), key


def test_training_lowers_the_loss_on_a_held_out_batch(tmp_path):
    """Five steps from scratch lower the v-loss on a fixed batch the run never sees (measured 0.82 -> 0.71)."""
    trainer = Trainer(TrainConfig(steps=5, batch_size=4, warmup=1, spec=TINY_SPEC), tmp_path / "c", tmp_path / "e")
    x0, states, _ = make_batch(TrainConfig(batch_size=32, spec=TINY_SPEC, seed=99), 0, trainer.renderer, HashedStates())

    def held_out_loss():
        with torch.no_grad():
            g = torch.Generator().manual_seed(7)  # the same timesteps and noise every time
            return float(diffusion_loss(trainer.unet, trainer.scheduler, x0, states, g, min_snr_gamma=None))

    before = held_out_loss()
    trainer.run(checkpoint_every=100, table=HashedStates())
    after = held_out_loss()
    assert after < 0.95 * before, (before, after)


def test_bad_config_names_the_rule():
    with pytest.raises(ConfigError, match="warmup >= 1"):
        TrainConfig(warmup=0)
    with pytest.raises(ConfigError, match="cfg_drop"):
        TrainConfig(cfg_drop=1.0)
