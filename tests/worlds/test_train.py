from __future__ import annotations

import zlib

import pytest
import torch

from erasekit.errors import ConfigError
from erasekit.worlds.embedded.trainer import TrainConfig, Trainer

from .conftest import TINY_SPEC


class HashedStates:
    """Stands in for the MiniLM caption table: fixed pseudo-random states per text, no encoder."""

    def lookup(self, texts):
        rows = [torch.randn(24, 384, generator=torch.Generator().manual_seed(zlib.crc32(t.encode()))) for t in texts]
        return torch.stack(rows)


def run(cfg, tmp_path, steps):
    trainer = Trainer(TrainConfig(**{**cfg, "steps": steps}), tmp_path / "cache", tmp_path / "export")
    trainer.run(checkpoint_every=2, table=HashedStates())
    return trainer


def test_resume_after_a_stop_equals_an_uninterrupted_run(tmp_path):
    cfg = dict(batch_size=4, warmup=2, spec=TINY_SPEC, seed=3)
    straight = run(cfg, tmp_path / "a", steps=4)
    run(cfg, tmp_path / "b", steps=2)
    assert (tmp_path / "b" / "cache" / "checkpoint.pt").is_file()
    resumed = run(cfg, tmp_path / "b", steps=4)
    assert resumed.step == straight.step == 4
    for key, value in straight.unet.state_dict().items():
        assert torch.equal(value, resumed.unet.state_dict()[key]), key
    for key, value in straight.ema.shadow.items():
        assert torch.equal(value, resumed.ema.shadow[key]), key


def test_training_moves_the_weights_and_exports_fp16(tmp_path):
    trainer = run(dict(batch_size=4, warmup=1, spec=TINY_SPEC), tmp_path, steps=2)
    trainer.export()
    exported = tmp_path / "export"
    assert (exported / "diffusion_pytorch_model.safetensors").is_file()
    assert (exported / "training.json").is_file()
    fresh = Trainer(TrainConfig(steps=3, batch_size=4, spec=TINY_SPEC), tmp_path / "other-cache", exported)
    assert fresh.step == 2  # warm start from the export when there is no checkpoint


def test_bad_config_names_the_rule():
    with pytest.raises(ConfigError, match="warmup >= 1"):
        TrainConfig(warmup=0)
    with pytest.raises(ConfigError, match="cfg_drop"):
        TrainConfig(cfg_drop=1.0)
