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


def test_loading_the_text_encoder_is_quiet_and_restores_transformers_settings(capfd):
    from transformers.utils import logging as transformers_logging

    from erasekit.worlds.embedded.text import load_text_encoder, load_tokenizer

    transformers_logging.set_verbosity_info()
    try:
        load_tokenizer()
        load_text_encoder()
        assert transformers_logging.get_verbosity() == transformers_logging.INFO
        assert transformers_logging.is_progress_bar_enabled()
    finally:
        transformers_logging.set_verbosity_warning()
    assert "Loading weights" not in capfd.readouterr().err


def test_load_lora_weights_does_not_warn_about_the_text_encoder(tiny_pipe, tmp_path):
    import logging

    import erasekit

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    lora_logger = logging.getLogger("diffusers.loaders.lora_base")
    lora_logger.addHandler(handler)
    try:
        tiny_pipe.load_lora_weights(erasekit.erase(tiny_pipe, ["dog"]).save(tmp_path / "dog.safetensors"))
        lora_logger.warning("another warning")  # only that one warning is dropped, and only during the load
    finally:
        lora_logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["another warning"]
    assert hasattr(tiny_pipe.unet, "peft_config")  # the LoRA did load


def test_the_loaded_pipeline_draws_without_a_bar_of_its_own(tiny_unet_dir, capfd):
    # a method that samples inside `erasekit erase` (ACE's latents, MACE's regions) printed bare tqdm bars
    folder, _ = tiny_unet_dir
    pipe = embedded.load_pipeline(weights=folder)
    pipe("a red ball", num_inference_steps=3, output_type="latent", generator=torch.Generator().manual_seed(0))
    assert "3/3" not in capfd.readouterr().err
