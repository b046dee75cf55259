from __future__ import annotations

import pytest
import torch

from erasekit.errors import ConfigError, MissingWeightsError
from erasekit.pipeline import resolve_device, resolve_dtype
from erasekit.worlds import embedded
from erasekit.worlds.embedded.weights import export_unet, load_unet, training_info

from .conftest import TINY_SPEC


@pytest.fixture
def tiny_unet_dir(tmp_path):
    from erasekit.worlds.embedded.model import build_unet

    torch.manual_seed(0)
    unet = build_unet(TINY_SPEC)
    folder = tmp_path / "unet"
    export_unet(unet, folder, {"step": 3})
    return folder, unet


def test_export_writes_fp16_and_loads_back(tiny_unet_dir):
    folder, unet = tiny_unet_dir
    loaded = load_unet(folder)
    assert training_info(folder) == {"step": 3}
    assert loaded.dtype == torch.float32
    for key, value in unet.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value.half().float())


def test_missing_weights_name_the_path_and_the_retrain_command(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"embedded\.train") as err:
        embedded.load_pipeline(weights=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


def test_corrupt_weights_are_a_clear_error(tiny_unet_dir):
    folder, _ = tiny_unet_dir
    weights = folder / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(MissingWeightsError, match="corrupt") as err:
        load_unet(folder)
    assert str(folder) in str(err.value)


@pytest.mark.parametrize("dtype", [torch.int8, "float64", "fp8", 3])
def test_bad_dtype(dtype):
    with pytest.raises(ConfigError, match="dtype"):
        resolve_dtype(dtype)


def test_good_dtypes():
    assert resolve_dtype(None) is None  # the checkpoint's own dtype
    assert resolve_dtype("float16") == torch.float16 and resolve_dtype("torch.bfloat16") == torch.bfloat16


@pytest.mark.parametrize("device", ["gpu", "cuda:99", 7.5])
def test_bad_device(device):
    with pytest.raises(ConfigError, match="device"):
        resolve_device(device)


def test_bad_dtype_is_checked_before_loading(tmp_path):
    with pytest.raises(ConfigError):
        embedded.load_pipeline(dtype="int4", weights=tmp_path)
