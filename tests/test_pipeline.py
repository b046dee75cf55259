from __future__ import annotations

import pytest
import torch

from erasekit.errors import ConfigError, MissingWeightsError
from erasekit.pipeline import load_local, resolve_device, resolve_dtype


def test_dtype_names():
    assert resolve_dtype("fp16") is torch.float16 and resolve_dtype("torch.bfloat16") is torch.bfloat16
    assert resolve_dtype(None) is None
    with pytest.raises(ConfigError, match="Unknown dtype 'int8'"):
        resolve_dtype("int8")


def test_devices():
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="Invalid device"):
        resolve_device("gpu!")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_a_missing_local_model_says_erasekit_never_downloads(tmp_path):
    with pytest.raises(MissingWeightsError, match="never downloads"):
        load_local(str(tmp_path / "sd-v1-4"))
