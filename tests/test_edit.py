from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import erasekit
from erasekit import Edit, edit_file
from erasekit.errors import EditFileError, EditStateError, FingerprintMismatchError
from erasekit.targets import find_targets
from erasekit.text import TextEncoder
from erasekit.worlds.tiny import tiny_pipeline


def unet_state(pipe):
    return {k: v.clone() for k, v in pipe.unet.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def generate(pipe, prompt="a painting by van gogh", **kw):
    kw = {"num_inference_steps": 2, "output_type": "np", "height": 32, "width": 32, **kw}
    return pipe(prompt, generator=torch.Generator().manual_seed(0), **kw).images


def assert_loads_in_diffusers(pipe, edit, path, **kw):
    """``edit``, saved at ``path`` and loaded by plain diffusers (``load_lora_weights``), draws what ``edit.apply``
    draws, and that differs from the original's images (``generate(pipe, **kw)``); the file stays loaded."""
    original = generate(pipe, **kw)
    edit.apply(pipe)
    ours = generate(pipe, **kw)
    edit.remove(pipe)
    pipe.load_lora_weights(str(path))
    theirs = generate(pipe, **kw)
    assert abs(ours - original).max() > 1e-3, "the edit must change the images"
    assert abs(ours - theirs).max() <= 1e-4


@pytest.mark.parametrize("method", ["uce", "rece", "nullspace"])
def test_apply_then_remove_is_bit_identical(tiny_pipe, method):
    before = unet_state(tiny_pipe)
    edit = erasekit.erase(tiny_pipe, ["van gogh"], method=method)
    assert same(before, unet_state(tiny_pipe)), "erase() must not touch the pipeline"
    edit.apply(tiny_pipe)
    assert not same(before, unet_state(tiny_pipe))
    edit.remove(tiny_pipe)
    assert same(before, unet_state(tiny_pipe))


def test_apply_adds_the_delta(tiny_pipe):
    edit = erasekit.erase(tiny_pipe, ["dog"], method="uce")
    modules = dict(tiny_pipe.unet.named_modules())
    name = next(iter(edit.updates))
    W0 = modules[name].weight.detach().clone()
    edit.apply(tiny_pipe)
    torch.testing.assert_close(modules[name].weight.detach(), W0 + edit.delta(name))


def test_edits_compose_and_remove_in_any_order(tiny_pipe):
    before = unet_state(tiny_pipe)
    a = erasekit.erase(tiny_pipe, ["van gogh"], method="uce")
    b = erasekit.erase(tiny_pipe, ["a church"], method="uce")
    a.apply(tiny_pipe)
    only_a = unet_state(tiny_pipe)
    b.apply(tiny_pipe)
    both = unet_state(tiny_pipe)
    assert not same(only_a, both)
    a.remove(tiny_pipe)  # the older one first: b stays applied, on the base weights
    b_alone = unet_state(tiny_pipe)
    b.remove(tiny_pipe)
    assert same(before, unet_state(tiny_pipe))
    b.apply(tiny_pipe)
    assert same(b_alone, unet_state(tiny_pipe))


def test_saved_file_loads_in_plain_diffusers_with_the_same_outputs(any_pipe, tmp_path):
    edit = erasekit.erase(any_pipe, ["van gogh"], method="rece", epochs=1)
    path = edit.save(tmp_path / "vangogh.safetensors")
    size = {"height": 64, "width": 64} if hasattr(any_pipe, "text_encoder_2") else {}
    assert_loads_in_diffusers(any_pipe, edit, path, **size)


def test_save_load_round_trip_keeps_updates_and_metadata(tiny_pipe, tmp_path):
    edit = erasekit.erase(tiny_pipe, ["van gogh"], method="uce", preserve=["monet"], lamb=0.3)
    loaded = Edit.load(edit.save(tmp_path / "e.safetensors"))
    assert loaded.method == "uce" and loaded.concepts == ["van gogh"] and loaded.preserve == ["monet"]
    assert loaded.config["lamb"] == 0.3 and loaded.fingerprint == edit.fingerprint
    assert loaded.info["erasekit_version"] == erasekit.__version__
    for name in edit.updates:
        torch.testing.assert_close(loaded.delta(name), edit.delta(name))
    assert loaded.id == Edit.load(tmp_path / "e.safetensors").id


def test_a_reloaded_edit_is_refused_while_the_same_edit_is_applied(tiny_pipe, tmp_path):
    edit = erasekit.erase(tiny_pipe, ["dog"], method="uce")
    edit.apply(tiny_pipe)
    with pytest.raises(EditStateError, match="already applied"):
        Edit.load(edit.save(tmp_path / "e.safetensors")).apply(tiny_pipe)


def test_fingerprint_mismatch_is_refused_unless_forced(tmp_path):
    edit = erasekit.erase(tiny_pipeline("sd1", seed=0), ["dog"], method="uce")
    other = tiny_pipeline("sd1", seed=1)
    with pytest.raises(FingerprintMismatchError) as err:
        edit.apply(other)
    assert edit.fingerprint in str(err.value) and "force=True" in str(err.value)
    edit.apply(other, force=True)


def test_fingerprint_of_an_edited_pipeline_is_still_the_base(tiny_pipe):
    a = erasekit.erase(tiny_pipe, ["dog"], method="uce")
    a.apply(tiny_pipe)
    b = erasekit.erase(tiny_pipe, ["cat"], method="uce")
    assert b.fingerprint == a.fingerprint
    b.apply(tiny_pipe)  # no mismatch although the weights differ from the base


def test_fp16_model_is_solved_in_fp32_and_cast_back():
    pipe32, pipe16 = tiny_pipeline("sd1"), tiny_pipeline("sd1").to(dtype=torch.float16)
    e32 = erasekit.erase(pipe32, ["dog"], method="uce")
    pipe16.text_encoder.to(torch.float32)  # same embeddings, so only the U-Net's dtype differs
    e16 = erasekit.erase(pipe16, ["dog"], method="uce")
    assert e16.fingerprint == e32.fingerprint
    name = next(iter(e32.updates))
    rel = (e16.delta(name) - e32.delta(name)).abs().max() / e32.delta(name).abs().max()
    assert rel < 2e-3  # fp16 base weights, but no fp16 arithmetic in the solve
    before = unet_state(pipe16)
    e16.apply(pipe16)
    assert next(iter(pipe16.unet.parameters())).dtype == torch.float16
    e16.remove(pipe16)
    assert same(before, unet_state(pipe16))


def test_plain_lora_without_erasekit_metadata_loads_with_a_warning(tiny_pipe, tmp_path, caplog):
    edit = erasekit.erase(tiny_pipe, ["dog"], method="uce")
    save_file(edit_file.state_dict(edit.updates), tmp_path / "plain.safetensors")
    loaded = Edit.load(tmp_path / "plain.safetensors")
    assert "without erasekit metadata" in caplog.text
    assert loaded.fingerprint is None and loaded.info["metadata_missing"]
    loaded.apply(tiny_pipe)  # applied unchecked


def test_lora_alpha_is_honoured(tiny_pipe, tmp_path):
    edit = erasekit.erase(tiny_pipe, ["dog"], method="uce")
    name, (B, A) = next(iter(edit.updates.items()))
    meta = {"lora_adapter_metadata": json.dumps({"unet.r": A.shape[0], "unet.lora_alpha": 2 * A.shape[0]})}
    save_file({f"unet.{name}.lora_A.weight": A, f"unet.{name}.lora_B.weight": B}, tmp_path / "a.safetensors", meta)
    torch.testing.assert_close(Edit.load(tmp_path / "a.safetensors").delta(name), 2 * B @ A)


def test_low_rank_edit_with_a_shared_factor_saves_and_loads(tiny_pipe, tmp_path):
    edit = erasekit.erase(tiny_pipe, ["dog", "cat"], method="uce", tokens="last")  # rank 2: layers share one A
    assert len({A.data_ptr() for _, A in edit.updates.values()}) < len(edit.updates)
    loaded = Edit.load(edit.save(tmp_path / "e.safetensors"))
    for name in edit.updates:
        torch.testing.assert_close(loaded.delta(name), edit.delta(name))


def test_a_pipeline_holding_lora_adapters_is_refused_with_how_to_unload(tiny_pipe, tmp_path):
    before = unet_state(tiny_pipe)
    edit = erasekit.erase(tiny_pipe, ["dog"])
    path = edit.save(tmp_path / "dog.safetensors")
    tiny_pipe.load_lora_weights(path)  # the README's last line: peft wraps every K/V (layer.base_layer)
    with pytest.raises(EditStateError, match=r"LoRA adapters .* pipe\.unload_lora_weights\(\)"):
        edit.apply(tiny_pipe)
    tiny_pipe.unload_lora_weights()
    edit.apply(tiny_pipe)
    tiny_pipe.load_lora_weights(path)  # adapters loaded while the edit is applied
    with pytest.raises(EditStateError, match=r"unload_lora_weights\(\)"):
        edit.remove(tiny_pipe)
    tiny_pipe.unload_lora_weights()
    edit.remove(tiny_pipe)
    assert same(unet_state(tiny_pipe), before)


def test_repr_is_short_and_names_what_made_the_edit(tiny_pipe):
    edit = erasekit.erase(tiny_pipe, ["dog", "cat"], method="uce")
    text = repr(edit)
    assert len(text) < 200 and "tensor" not in text, text
    ranks = sorted({B.shape[1] for B, _ in edit.updates.values()})
    assert text == f"Edit(method='uce', concepts=['dog', 'cat'], layers=14, rank={ranks}, id={edit.id!r})"
    one = Edit(
        {k: edit.updates[k] for k in list(edit.updates)[:1]}, method="uce", concepts=[f"c{i}" for i in range(1000)]
    )
    assert len(repr(one)) < 200 and "1000 in all" in repr(one) and "rank=[" not in repr(one)


# ---- text-encoder layers ---------------------------------------------------------------------
def text_encoder_edit(pipe, *, unet_too=False):
    """An edit of two text-encoder layers (and one U-Net layer), random factors of rank 2."""
    g = torch.Generator().manual_seed(3)
    linears = {n: m for n, m in pipe.text_encoder.named_modules() if isinstance(m, torch.nn.Linear)}
    layers = [n for n in linears if n.endswith(("layers.0.self_attn.q_proj", "layers.0.mlp.fc1"))]
    names = [f"text_encoder.{n}" for n in layers]
    assert len(names) == 2  # CLIP's names: diffusers' loader reads a text-encoder LoRA that has q/k/v/out_proj
    shapes = {name: linears[name.removeprefix("text_encoder.")].weight.shape for name in names}
    if unet_too:
        target = find_targets(pipe.unet).items[0]
        shapes[target.name] = target.weight.shape
    updates = {
        n: (torch.randn(d_out, 2, generator=g) * 0.3, torch.randn(2, d_in, generator=g))
        for n, (d_out, d_in) in shapes.items()
    }
    return Edit(updates, method="test", fingerprint=find_targets(pipe.unet).fingerprint())


def text_state(pipe):
    return {k: v.clone() for k, v in pipe.text_encoder.state_dict().items()}


def test_a_text_encoder_edit_adds_its_delta_and_removes_bit_identically(tiny_pipe):
    text0, unet0 = text_state(tiny_pipe), unet_state(tiny_pipe)
    edit = text_encoder_edit(tiny_pipe, unet_too=True)
    edit.apply(tiny_pipe)
    modules = dict(tiny_pipe.text_encoder.named_modules())
    for name in edit.updates:
        if name.startswith("text_encoder."):
            layer = name.removeprefix("text_encoder.")
            torch.testing.assert_close(modules[layer].weight.detach(), text0[f"{layer}.weight"] + edit.delta(name))
    assert not same(unet0, unet_state(tiny_pipe))
    other = erasekit.erase(tiny_pipe, ["dog"], method="uce")  # composes with a U-Net edit
    other.apply(tiny_pipe)
    edit.remove(tiny_pipe)
    other.remove(tiny_pipe)
    assert same(text0, text_state(tiny_pipe)) and same(unet0, unet_state(tiny_pipe))


def test_a_text_encoder_edit_saved_loads_in_plain_diffusers_with_the_same_outputs(tiny_pipe, tmp_path):
    edit = text_encoder_edit(tiny_pipe)
    path = edit.save(tmp_path / "te.safetensors")
    assert_loads_in_diffusers(tiny_pipe, edit, path)
    loaded = Edit.load(path)
    assert set(loaded.updates) == set(edit.updates)
    for name in edit.updates:
        torch.testing.assert_close(loaded.delta(name), edit.delta(name))


def test_cached_prompt_states_follow_an_applied_and_removed_text_encoder_edit(tiny_pipe):
    text = TextEncoder(tiny_pipe)
    before = text(["a cat"]).states
    edit = text_encoder_edit(tiny_pipe).apply(tiny_pipe)
    after = text(["a cat"]).states
    assert not torch.allclose(after, before), "a stale cache would hide the edit"
    torch.testing.assert_close(after, TextEncoder(tiny_pipe)(["a cat"]).states)
    edit.remove(tiny_pipe)
    assert torch.equal(text(["a cat"]).states, before)


def test_a_text_encoder_edit_on_a_bare_unet_is_refused(tiny_pipe):
    with pytest.raises(EditFileError, match="text_encoder"):
        text_encoder_edit(tiny_pipe).apply(tiny_pipe.unet)
