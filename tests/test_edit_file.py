"""Edit files in the LoRA layouts other tools read: kohya out (ComfyUI, AUTOMATIC1111, diffusers),
every U-Net layout ``pipe.load_lora_weights`` reads in, and ``erasekit export``."""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import pytest
import torch
from diffusers.utils.state_dict_utils import convert_state_dict_to_diffusers
from peft import LoraConfig, get_peft_model
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

import erasekit
from erasekit import Edit, edit_file
from erasekit.cli import app
from erasekit.errors import EditFileError
from erasekit.gate import TokenGate
from erasekit.lora_layouts import kohya_layer
from erasekit.worlds.tiny import tiny_pipeline

runner = CliRunner()


def unet_out(unet):
    """The U-Net's output on one fixed random input (SDXL's added conditions included)."""
    g = torch.Generator().manual_seed(0)
    c = unet.config
    x = torch.randn(1, 4, 16, 16, generator=g)
    states = torch.randn(1, 8, c.cross_attention_dim, generator=g)
    kw = {}
    if c.addition_embed_type == "text_time":
        width = c.projection_class_embeddings_input_dim - 6 * c.addition_time_embed_dim
        kw["added_cond_kwargs"] = {
            "text_embeds": torch.randn(1, width, generator=g),
            "time_ids": torch.randn(1, 6, generator=g),
        }
    with torch.no_grad():
        return unet(x, 10, encoder_hidden_states=states, **kw).sample


def relative_error(ours, theirs):
    return ((ours - theirs).abs().max() / ours.abs().max()).item()


def contents(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def assert_same_deltas(a: Edit, b: Edit, tol=1e-6):
    assert set(a.updates) == set(b.updates)
    for name in a.updates:
        torch.testing.assert_close(b.delta(name), a.delta(name), rtol=tol, atol=tol)


def gated(edit: Edit) -> Edit:
    """``edit`` behind a gate that is always open (τ below every ratio)."""
    d = next(iter(edit.updates.values()))[1].shape[1]
    basis = torch.linalg.qr(torch.randn(d, 2, generator=torch.Generator().manual_seed(1)))[0]
    return dataclasses.replace(edit, gate=TokenGate(basis, torch.zeros(d), 1e4, -1.0))


# ---- kohya out -------------------------------------------------------------------------------
def test_kohya_file_in_plain_diffusers_gives_the_edits_outputs(any_pipe, tmp_path):
    edit = erasekit.erase(any_pipe, ["van gogh"], method="uce")
    path = edit.save(tmp_path / "vangogh.safetensors", format="kohya")
    tensors, meta = contents(path)
    for name in edit.updates:
        module = "lora_unet_" + name.replace(".", "_")
        assert {f"{module}.lora_down.weight", f"{module}.lora_up.weight", f"{module}.alpha"} <= set(tensors)
        alpha = tensors[f"{module}.alpha"]
        assert alpha.ndim == 0 and alpha.dtype == torch.float32
    assert len(tensors) == 3 * len(edit.updates)
    assert "erasekit" in meta and "lora_adapter_metadata" not in meta  # diffusers refuses both with kohya alphas
    base = unet_out(any_pipe.unet)
    edit.apply(any_pipe)
    ours = unet_out(any_pipe.unet)
    edit.remove(any_pipe)
    any_pipe.load_lora_weights(str(path))
    theirs = unet_out(any_pipe.unet)
    any_pipe.unload_lora_weights()
    assert torch.equal(unet_out(any_pipe.unet), base)
    assert (ours - base).abs().max() > 1e-3, "the edit must change the output"
    assert relative_error(ours, theirs) <= 1e-4


def test_kohya_file_round_trips_through_edit_load(any_pipe, tmp_path):
    edit = erasekit.erase(any_pipe, ["van gogh"], method="uce", preserve=["monet"], lamb=0.3)
    assert len({B.shape[1] for B, _ in edit.updates.values()}) > 1, "mixed ranks exercise the single alpha"
    loaded = Edit.load(edit.save(tmp_path / "k.safetensors", format="kohya"))
    assert_same_deltas(edit, loaded)
    assert loaded.method == "uce" and loaded.concepts == ["van gogh"] and loaded.preserve == ["monet"]
    assert loaded.config["lamb"] == 0.3 and loaded.fingerprint == edit.fingerprint
    assert loaded.info["erasekit_version"] == erasekit.__version__
    loaded.apply(any_pipe)  # the fingerprint matches: the layer names came back right


def test_kohya_modules_of_other_ranks_keep_scale_one_in_diffusers(tiny_pipe, tmp_path):
    """diffusers applies one alpha to a kohya file: per-module alphas would mis-scale the rare ranks."""
    modules = {n: m for n, m in tiny_pipe.unet.named_modules() if n.endswith("attn2.to_k")}
    g = torch.Generator().manual_seed(0)
    updates = {}
    for i, (name, m) in enumerate(sorted(modules.items())):
        r = 2 if i == 0 else 3
        updates[name] = (torch.randn(m.out_features, r, generator=g), torch.randn(r, m.in_features, generator=g))
    edit = Edit(updates)
    path = edit.save(tmp_path / "r.safetensors", format="kohya")
    alphas = {float(t) for k, t in contents(path)[0].items() if k.endswith(".alpha")}
    assert alphas == {3.0}
    assert_same_deltas(edit, Edit.load(path))
    edit.apply(tiny_pipe)
    ours = unet_out(tiny_pipe.unet)
    edit.remove(tiny_pipe)
    tiny_pipe.load_lora_weights(str(path))
    assert relative_error(ours, unet_out(tiny_pipe.unet)) <= 1e-4


# ---- other layouts in ------------------------------------------------------------------------
@pytest.mark.parametrize("layout", [".lora.down.", "_lora.down."])
def test_diffusers_training_script_layouts_load(tiny_pipe, tmp_path, layout):
    edit = erasekit.erase(tiny_pipe, ["van gogh"], method="uce")
    sd = convert_state_dict_to_diffusers(edit_file.state_dict(edit.updates))  # unet.<layer>.lora.down.weight
    if layout == "_lora.down.":  # the attention-processor keys of the scripts before diffusers 0.21
        sd = {
            k.replace(".to_k.lora.", ".processor.to_k_lora.").replace(".to_v.lora.", ".processor.to_v_lora."): v
            for k, v in sd.items()
        }
    assert sum(layout in k for k in sd) == len(sd) // 2
    save_file(sd, tmp_path / "script.safetensors")
    loaded = Edit.load(tmp_path / "script.safetensors")
    assert_same_deltas(edit, loaded)
    assert loaded.info["layout"] == "diffusers training-script"
    loaded.apply(tiny_pipe)
    ours = unet_out(tiny_pipe.unet)
    loaded.remove(tiny_pipe)
    tiny_pipe.load_lora_weights(str(tmp_path / "script.safetensors"))  # a layout diffusers reads
    assert relative_error(ours, unet_out(tiny_pipe.unet)) <= 1e-4


def test_peft_adapter_model_loads_with_its_alpha(tiny_pipe, tmp_path):
    edit = erasekit.erase(tiny_pipe, ["van gogh"], method="uce")
    ranks = {name: B.shape[1] for name, (B, _) in edit.updates.items()}
    config = LoraConfig(
        r=16, lora_alpha=24, rank_pattern={n: r for n, r in ranks.items() if r != 16}, target_modules=sorted(ranks)
    )
    model = get_peft_model(tiny_pipeline("sd1").unet, config)  # the same base weights as tiny_pipe
    modules = dict(model.base_model.model.named_modules())
    for name, (B, A) in edit.updates.items():
        modules[name].lora_A["default"].weight.data.copy_(A)
        modules[name].lora_B["default"].weight.data.copy_(B)
    model.save_pretrained(tmp_path / "adapter")
    assert next(iter(contents(tmp_path / "adapter" / "adapter_model.safetensors")[0])).startswith("base_model.model.")
    loaded = Edit.load(tmp_path / "adapter" / "adapter_model.safetensors")
    for name, (B, A) in edit.updates.items():
        torch.testing.assert_close(loaded.delta(name), 24 / ranks[name] * (B @ A))
    loaded.apply(tiny_pipe)
    assert relative_error(unet_out(model.base_model.model), unet_out(tiny_pipe.unet)) <= 1e-4


def test_kohya_ldm_block_names_map_to_diffusers_modules():
    """LDM names (sd-scripts' SDXL LoRAs) map with two layers per block, as in every SD 1.x/2.x/XL U-Net."""
    block = "transformer_blocks_0_attn2_to_k"
    assert (
        kohya_layer(f"lora_unet_input_blocks_4_1_{block}")
        == "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k"
    )
    assert kohya_layer(f"lora_unet_middle_block_1_{block}") == "mid_block.attentions.0.transformer_blocks.0.attn2.to_k"
    assert (
        kohya_layer(f"lora_unet_output_blocks_5_1_{block}")
        == "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k"
    )


_FACTOR_KEYS = {"kohya": ".lora_down.weight .lora_up.weight", "peft": ".lora_A.weight .lora_B.weight"}
_FACTOR_KEYS["script"] = ".lora.down.weight .lora.up.weight"


def _pair(module, keys="peft", r_down=2, r_up=2):
    down, up = _FACTOR_KEYS[keys].split()
    return {module + down: torch.randn(r_down, 8), module + up: torch.randn(8, r_up)}


_UNET = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"
_TE = "text_model.encoder.layers.0.self_attn.q_proj"
_KOHYA, _KOHYA_TE = "lora_unet_" + _UNET.replace(".", "_"), "lora_te1_" + _TE.replace(".", "_")
_DORA = {**_pair(f"unet.{_UNET}"), f"unet.{_UNET}.lora_magnitude_vector": torch.ones(8)}
REFUSED = [
    # (what, tensors, words the message must contain)
    ("kohya rank mismatch", _pair(_KOHYA, "kohya", 2, 3), ["kohya", "rank 2", "rank 3"]),
    ("peft rank mismatch", _pair(f"unet.{_UNET}", "peft", 4, 2), ["peft layout", "rank 4"]),
    ("script rank mismatch", _pair(f"unet.{_UNET}", "script", 1, 2), ["training-script", "rank 1"]),
    ("kohya text encoder only", _pair(_KOHYA_TE, "kohya"), ["kohya", "text encoder only"]),
    ("DoRA", _DORA, ["DoRA"]),
    ("a factor alone", {f"{_KOHYA}.lora_down.weight": torch.randn(2, 8)}, ["kohya", "incomplete"]),
]


@pytest.mark.parametrize("what, tensors, words", REFUSED, ids=[r[0] for r in REFUSED])
def test_files_erasekit_cannot_read_are_refused_at_load(tmp_path, what, tensors, words):
    save_file(tensors, tmp_path / "x.safetensors")
    with pytest.raises(EditFileError) as err:
        Edit.load(tmp_path / "x.safetensors")
    assert all(w in str(err.value) for w in words), str(err.value)


def test_a_kohya_text_encoder_part_beside_the_unet_is_ignored_with_a_warning(tmp_path, caplog):
    save_file({**_pair(_KOHYA_TE, "kohya"), **_pair(_KOHYA, "kohya")}, tmp_path / "x.safetensors")
    assert set(Edit.load(tmp_path / "x.safetensors").updates) == {_UNET}
    assert "text-encoder LoRA" in caplog.text


@pytest.mark.parametrize("parts", [["text_encoder"], ["text_encoder", "unet"], ["text_encoder_2"]])
def test_peft_text_encoder_layers_load_under_their_part_with_their_alpha(tmp_path, parts):
    names = {p: _UNET if p == "unet" else f"{p}.{_TE}" for p in parts}  # the edit's layer names
    stems = {p: f"unet.{_UNET}" if p == "unet" else names[p] for p in parts}  # the file's
    tensors = {k: v for p in parts for k, v in _pair(stems[p]).items()}
    meta = {"lora_adapter_metadata": json.dumps({f"{p}.lora_alpha": 4 * (i + 1) for i, p in enumerate(parts)})}
    save_file(tensors, tmp_path / "x.safetensors", meta)
    loaded = Edit.load(tmp_path / "x.safetensors")
    assert set(loaded.updates) == set(names.values())
    for i, p in enumerate(parts):  # alpha 4 (8) over rank 2: scale 2 (4)
        B, A = tensors[f"{stems[p]}.lora_B.weight"], tensors[f"{stems[p]}.lora_A.weight"]
        torch.testing.assert_close(loaded.delta(names[p]), 2 * (i + 1) * B @ A)


def test_a_text_encoder_edit_is_refused_for_kohya_and_warns_where_diffusers_cannot_load_it(tmp_path, caplog):
    B, A = torch.randn(8, 2), torch.randn(2, 8)
    bert = Edit({"text_encoder.encoder.layer.0.attention.self.query": (B, A)}, method="test")
    with pytest.raises(EditFileError, match="format='diffusers'"):
        bert.save(tmp_path / "k.safetensors", format="kohya")
    assert not (tmp_path / "k.safetensors").exists()
    bert.save(tmp_path / "d.safetensors")
    assert "refuses this file" in caplog.text and "Edit.load(path).apply(pipe)" in caplog.text
    tensors, meta = contents(tmp_path / "d.safetensors")
    assert set(tensors) == {f"text_encoder.encoder.layer.0.attention.self.query.lora_{f}.weight" for f in "AB"}
    assert json.loads(meta["lora_adapter_metadata"])["text_encoder.r"] == 2


# ---- gated edits -----------------------------------------------------------------------------
def test_gated_edit_is_refused_for_kohya_unless_ungated(tiny_pipe, tmp_path, caplog):
    plain = erasekit.erase(tiny_pipe, ["van gogh"], method="uce")
    edit = gated(plain)
    with pytest.raises(EditFileError) as err:
        edit.save(tmp_path / "g.safetensors", format="kohya")
    assert all(w in str(err.value) for w in ("Edit.load(path).apply(pipe)", "ungated=True", "--ungated"))
    assert list(tmp_path.iterdir()) == []
    with caplog.at_level(logging.WARNING):
        path = edit.save(tmp_path / "g.safetensors", format="kohya", ungated=True)
    assert "DROPPING THE GATE" in caplog.text and "EVERY token" in caplog.text
    back = Edit.load(path)
    assert back.gate is None and "gate_dropped" in back.info and back.fingerprint == edit.fingerprint
    assert_same_deltas(plain, back)
    assert Edit.load(edit.save(tmp_path / "d.safetensors")).gate is not None  # erasekit's layout keeps it


# ---- erasekit export -------------------------------------------------------------------------
@pytest.fixture
def edit_files(tmp_path):
    plain = erasekit.erase(tiny_pipeline("sd1"), ["dog"], method="uce")
    src = tmp_path / "src"
    src.mkdir()
    return plain, plain.save(src / "dog.safetensors"), gated(plain).save(src / "gated.safetensors")


def test_export_writes_a_kohya_file_and_a_diffusers_one(edit_files, tmp_path):
    plain, path, _ = edit_files
    result = runner.invoke(app, ["export", str(path), "-o", str(tmp_path / "dog_kohya.safetensors")])
    assert result.exit_code == 0, result.output
    assert "models/loras" in result.output and "<lora:dog_kohya:1>" in result.output
    tensors, _ = contents(tmp_path / "dog_kohya.safetensors")
    assert all(k.startswith("lora_unet_") for k in tensors)
    assert_same_deltas(plain, Edit.load(tmp_path / "dog_kohya.safetensors"))
    out = tmp_path / "dog_diffusers.safetensors"
    assert runner.invoke(app, ["export", str(path), "-o", str(out), "--format", "diffusers"]).exit_code == 0
    assert all(k.startswith("unet.") for k in contents(out)[0])


def test_export_ungated_writes_the_update_without_its_gate(edit_files, tmp_path):
    plain, _, gated_path = edit_files
    out = tmp_path / "ungated.safetensors"
    assert runner.invoke(app, ["export", str(gated_path), "-o", str(out), "--ungated"]).exit_code == 0
    assert Edit.load(out).gate is None
    assert_same_deltas(plain, Edit.load(out))


def _missing(tmp, dog, gated_path):
    return [str(tmp / "nope.safetensors"), "-o", str(tmp / "out.safetensors")]


def _exists(tmp, dog, gated_path):
    (tmp / "out.safetensors").write_text("precious")
    return [str(dog), "-o", str(tmp / "out.safetensors")]


def _folder(tmp, dog, gated_path):
    (tmp / "out").mkdir()
    return [str(dog), "-o", str(tmp / "out")]


def _gated(tmp, dog, gated_path):
    return [str(gated_path), "-o", str(tmp / "out.safetensors")]


EXPORT_REFUSED = [
    ("missing EDIT", _missing, "not found"),
    ("OUT exists", _exists, "--overwrite"),
    ("OUT is a folder", _folder, "is a folder"),
    ("gated edit to kohya", _gated, "--ungated"),
]


@pytest.mark.parametrize("what, args, words", EXPORT_REFUSED, ids=[r[0] for r in EXPORT_REFUSED])
def test_export_bad_input_is_one_message_and_exit_code_2(edit_files, tmp_path, what, args, words):
    _, dog, gated_path = edit_files
    argv = args(tmp_path, dog, gated_path)
    before = {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")}
    result = runner.invoke(app, ["export", *argv])
    output = " ".join(result.output.split())  # rich wraps long lines
    assert result.exit_code == 2 and words in output and output.count("error:") == 1, result.output
    assert {p: p.read_bytes() if p.is_file() else None for p in tmp_path.rglob("*")} == before  # nothing written


def test_export_help_says_what_each_format_is_for():
    result = runner.invoke(app, ["export", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert all(w in result.output for w in ("kohya", "ComfyUI", "AUTOMATIC1111", "diffusers", "--ungated"))


@pytest.mark.parametrize("format", ["diffusers", "kohya"])
def test_edit_files_get_the_umask_permissions_not_0600(tiny_pipe, tmp_path, format):
    edit = erasekit.erase(tiny_pipe, ["dog"])
    old = os.umask(0o022)
    try:
        path = edit.save(tmp_path / "e.safetensors", format=format)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def _flip_a_tensor_byte(path):
    data = bytearray(path.read_bytes())
    data[-7] ^= 1  # the end of the file is tensor data; the lowest bit of a mantissa: no NaN, no error otherwise
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("format", ["diffusers", "kohya"])
def test_corrupted_tensor_bytes_are_caught_by_the_stored_sha256(tiny_pipe, tmp_path, format):
    path = erasekit.erase(tiny_pipe, ["dog"]).save(tmp_path / "e.safetensors", format=format)
    assert len(json.loads(contents(path)[1]["erasekit"])["tensors_sha256"]) == 64
    Edit.load(path)
    _flip_a_tensor_byte(path)
    with pytest.raises(EditFileError, match="corrupt: its tensors do not match the sha256"):
        Edit.load(path)


def test_files_without_a_sha256_load_as_before(tiny_pipe, tmp_path):
    edit = erasekit.erase(tiny_pipe, ["dog"])
    tensors, meta = contents(edit.save(tmp_path / "e.safetensors"))
    meta["erasekit"] = json.dumps({k: v for k, v in json.loads(meta["erasekit"]).items() if k != "tensors_sha256"})
    save_file(tensors, tmp_path / "old.safetensors", metadata=meta)  # as erasekit wrote it before the checksum
    _flip_a_tensor_byte(tmp_path / "old.safetensors")
    back = Edit.load(tmp_path / "old.safetensors")
    assert back.fingerprint == edit.fingerprint and back.updates.keys() == edit.updates.keys()
