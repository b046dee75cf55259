"""Bad input: every row gets an error that names the problem and the fix, and nothing is lost."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import erasekit
from erasekit import Edit
from erasekit.errors import (
    ConfigError,
    EditFileError,
    EditStateError,
    ErasekitError,
    MissingWeightsError,
    NoTargetsError,
    NumericalError,
    OutputError,
    OutputExistsError,
    UnknownMethodError,
)
from erasekit.targets import find_targets
from tests.paths import unwritable_folder


def _erase(**kw):
    return lambda pipe, tmp: erasekit.erase(pipe, **{"concepts": ["dog"], **kw})


def _nan_weights(pipe, tmp):
    find_targets(pipe.unet).items[0].module.weight.data[0, 0] = float("nan")
    erasekit.erase(pipe, ["dog"])


def _nan_embeddings(pipe, tmp):
    pipe.text_encoder.final_layer_norm.bias.data[0] = float("inf")
    erasekit.erase(pipe, ["dog"])


def _no_cross_attention(pipe, tmp):
    from diffusers import UNet2DModel

    pipe.unet = UNet2DModel(  # self-attention only
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    erasekit.erase(pipe, ["dog"])


def _saved(pipe, tmp):
    return erasekit.erase(pipe, ["dog"]).save(tmp / "e.safetensors")


def _truncated(pipe, tmp):
    path = _saved(pipe, tmp)
    path.write_bytes(path.read_bytes()[:-100])
    Edit.load(path)


def _corrupted_bytes(pipe, tmp):
    path = _saved(pipe, tmp)
    data = bytearray(path.read_bytes())
    data[-7] ^= 1  # one bit of the last tensor's data
    path.write_bytes(bytes(data))
    Edit.load(path)


def _not_safetensors(pipe, tmp):
    (tmp / "x.safetensors").write_text("hello, I am not a tensor file")
    Edit.load(tmp / "x.safetensors")


def _no_lora_keys(pipe, tmp):
    save_file({"weight": torch.zeros(2, 2)}, tmp / "w.safetensors")
    Edit.load(tmp / "w.safetensors")


def _nan_in_file(pipe, tmp):
    edit = erasekit.erase(pipe, ["dog"])
    name = next(iter(edit.updates))
    edit.updates[name][0][0, 0] = float("nan")
    Edit.load(edit.save(tmp / "nan.safetensors"))


def _for_another_model(pipe, tmp):
    from erasekit.worlds.tiny import tiny_pipeline

    Edit.load(_saved(tiny_pipeline("sd1", seed=3), tmp)).apply(pipe)


def _other_architecture(pipe, tmp):
    from erasekit.worlds.tiny import tiny_pipeline

    Edit.load(_saved(tiny_pipeline("sdxl"), tmp)).apply(pipe)


def _output_exists(pipe, tmp):
    (tmp / "e.safetensors").write_text("precious")
    _saved(pipe, tmp)


def _output_folder_missing(pipe, tmp):
    erasekit.erase(pipe, ["dog"]).save(tmp / "no" / "such" / "dir" / "e.safetensors")


def _output_folder_unwritable(pipe, tmp):
    erasekit.erase(pipe, ["dog"]).save(unwritable_folder(tmp) / "e.safetensors")


def _output_is_a_folder(pipe, tmp):
    (tmp / "out").mkdir()
    erasekit.erase(pipe, ["dog"]).save(tmp / "out", overwrite=True)


def _applied_twice(pipe, tmp):
    edit = erasekit.erase(pipe, ["dog"])
    edit.apply(pipe)
    edit.apply(pipe)


def _applied_to_none(pipe, tmp):
    erasekit.erase(pipe, ["dog"]).apply(None)


def _applied_over_lora_adapters(pipe, tmp):
    pipe.load_lora_weights(_saved(pipe, tmp))
    Edit.load(tmp / "e.safetensors").apply(pipe)


def _removed_unapplied(pipe, tmp):
    erasekit.erase(pipe, ["dog"]).remove(pipe)


def _missing_model(pipe, tmp):
    erasekit.load_pipeline(str(tmp / "no-such-model"))


def _model_folder_missing(pipe, tmp):
    erasekit.load_pipeline("./no/such-model")


def _model_folder_without_index(pipe, tmp):
    erasekit.load_pipeline(str(tmp))


def _model_index_not_json(pipe, tmp):
    (tmp / "model_index.json").write_text('{"unet": ["diffusers", "UNet2DConditionModel"]')
    erasekit.load_pipeline(str(tmp))


def _missing_edit_file(pipe, tmp):
    Edit.load(tmp / "nope.safetensors")


def _edit_file_is_a_folder(pipe, tmp):
    _saved(pipe, tmp)
    Edit.load(tmp)


def _gated_to_kohya(pipe, tmp):
    from erasekit.gate import TokenGate

    edit = erasekit.erase(pipe, ["dog"])
    d = next(iter(edit.updates.values()))[1].shape[1]
    edit.gate = TokenGate(torch.eye(d)[:, :1], torch.zeros(d), 10.0, 0.5)
    edit.save(tmp / "k.safetensors", format="kohya")


def _rank_mismatch(pipe, tmp):
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
    tensors = {f"{name}.lora_down.weight": torch.randn(2, 32), f"{name}.lora_up.weight": torch.randn(8, 3)}
    save_file(tensors, tmp / "r.safetensors")
    Edit.load(tmp / "r.safetensors")


def _kohya_text_encoder_only(pipe, tmp):
    name = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"
    save_file({f"{name}.lora_down.weight": torch.randn(2, 32), f"{name}.lora_up.weight": torch.randn(32, 2)},
              tmp / "t.safetensors")  # fmt: skip
    Edit.load(tmp / "t.safetensors")


def _text_encoder_update_to_kohya(pipe, tmp):
    Edit({"text_encoder.text_model.encoder.layers.0.self_attn.q_proj": (torch.ones(4, 1), torch.ones(1, 4))}).save(
        tmp / "t.safetensors", format="kohya"
    )


def _kohya_cannot_name_it(pipe, tmp):
    Edit({"add_embedding.linear_1": (torch.ones(4, 1), torch.ones(1, 4))}).save(tmp / "k.safetensors", format="kohya")


CASES = [
    # (what, call, error type, words the message must contain)
    ("empty concept list", _erase(concepts=[]), ConfigError, "at least one"),
    ("concept with no token", _erase(concepts=["   "]), ConfigError, "tokenises to nothing"),
    ("concept longer than the context", _erase(concepts=["dog " * 80]), ConfigError, "context holds 75"),
    ("unknown method", _erase(method="rcee"), UnknownMethodError, "Did you mean 'rece'"),
    ("unknown hyper-parameter", _erase(method="uce", lamda=0.1), ConfigError, "Did you mean 'lamb'"),
    ("ill-typed hyper-parameter", _erase(method="uce", lamb="abc"), ConfigError, "expects float"),
    ("bad choice", _erase(method="uce", tokens="first"), ConfigError, "one of 'span', 'last'"),
    ("negative lambda", _erase(method="uce", lamb=-1.0), ConfigError, "must be > 0"),
    ("negative RECE lambda", _erase(method="rece", reg_lamb=-0.1), ConfigError, "reg_lamb must be > 0"),
    ("unknown settings", _erase(method="rece", settings="nudes"), ConfigError, "Did you mean 'reference-nudity'"),
    ("guides do not match", _erase(concepts=["a", "b", "c"], guides=["x", "y"]), ConfigError, "3 concepts but 2"),
    ("ill-conditioned system", _erase(method="uce", lamb=1e-30), NumericalError, "Raise λ"),
    (
        "preserve set spans everything",
        _erase(method="nullspace", preserve=["cat"], rank_tol=1e-9),
        ConfigError,
        "keep_energy",
    ),
    ("model without cross-attention", _no_cross_attention, NoTargetsError, "no cross-attention"),
    ("NaN in weights", _nan_weights, NumericalError, "NaN or Inf"),
    ("Inf in embeddings", _nan_embeddings, NumericalError, "NaN/Inf embeddings"),
    ("edit for another base model", _for_another_model, ErasekitError, "--force"),
    ("edit for another architecture", _other_architecture, EditFileError, "another architecture"),
    ("truncated file", _truncated, EditFileError, "truncated"),
    ("corrupted tensor bytes", _corrupted_bytes, EditFileError, "do not match the sha256"),
    ("not a safetensors file", _not_safetensors, EditFileError, "not a readable safetensors"),
    ("safetensors without LoRA keys", _no_lora_keys, EditFileError, "no LoRA pairs"),
    ("NaN in an edit file", _nan_in_file, NumericalError, "NaN or Inf"),
    ("output exists", _output_exists, OutputExistsError, "overwrite"),
    ("output folder missing", _output_folder_missing, OutputError, "mkdir -p"),
    ("output folder unwritable", _output_folder_unwritable, OutputError, "writable"),
    ("output is a folder, overwrite asked", _output_is_a_folder, OutputError, "is a folder"),
    ("edit applied twice", _applied_twice, EditStateError, "already applied"),
    ("edit applied to None", _applied_to_none, ConfigError, "needs a pipeline, got None"),
    ("edit applied over LoRA adapters", _applied_over_lora_adapters, EditStateError, "pipe.unload_lora_weights()"),
    ("remove an edit not applied", _removed_unapplied, EditStateError, "not applied"),
    ("model not available locally", _missing_model, MissingWeightsError, "never downloads"),
    ("model folder missing", _model_folder_missing, MissingWeightsError, "Model folder ./no/such-model does not exist"),
    ("model folder without model_index.json", _model_folder_without_index, MissingWeightsError, "no model_index.json"),
    (
        "model_index.json not JSON",
        _model_index_not_json,
        MissingWeightsError,
        "model_index.json is not valid JSON (Exp",
    ),
    ("edit file missing", _missing_edit_file, MissingWeightsError, "erasekit erase"),
    ("edit file is a folder", _edit_file_is_a_folder, EditFileError, "is a folder, not an edit file; it holds e."),
    ("gated edit to kohya", _gated_to_kohya, EditFileError, "ungated=True"),
    ("LoRA factors of different ranks", _rank_mismatch, EditFileError, "must share the rank"),
    ("kohya LoRA of the text encoder only", _kohya_text_encoder_only, EditFileError, "text encoder only"),
    ("text-encoder edit to kohya", _text_encoder_update_to_kohya, EditFileError, "format='diffusers'"),
    ("layer kohya cannot name", _kohya_cannot_name_it, EditFileError, "format='diffusers'"),
]


@pytest.mark.parametrize("what, call, error, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(tiny_pipe, tmp_path, what, call, error, words):
    with pytest.raises(error) as info:
        call(tiny_pipe, tmp_path)
    assert isinstance(info.value, ErasekitError)
    assert words in str(info.value), str(info.value)


def test_refused_output_is_left_untouched(tiny_pipe, tmp_path):
    with pytest.raises(OutputExistsError):
        _output_exists(tiny_pipe, tmp_path)
    assert (tmp_path / "e.safetensors").read_text() == "precious"


def test_failed_save_leaves_no_temp_file(tiny_pipe, tmp_path, monkeypatch):
    import erasekit.edit_file as edit_module

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(edit_module, "save_file", boom)
    with pytest.raises(OSError):
        erasekit.erase(tiny_pipe, ["dog"]).save(tmp_path / "e.safetensors")
    assert list(tmp_path.iterdir()) == []
