from __future__ import annotations

import json
import warnings

import pytest
from typer.testing import CliRunner

from erasekit import Edit
from erasekit.cli import app
from tests.paths import unwritable_folder

runner = CliRunner()


def test_erase_writes_an_edit_and_reports_json(tmp_path):
    out = tmp_path / "dog.safetensors"
    result = runner.invoke(
        app, ["erase", "dog", "--model", "tiny-sd1", "--method", "rece", "--set", "epochs=1",
              "--preserve", "cat", "-o", str(out), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["method"] == "rece" and summary["concepts"] == ["dog"] and summary["preserve"] == ["cat"]
    assert summary["config"]["epochs"] == 1
    edit = Edit.load(out)
    assert edit.fingerprint == summary["fingerprint"] and edit.info["model"] == "tiny-sd1"


def test_erase_refuses_to_overwrite_and_keeps_the_file(tmp_path):
    out = tmp_path / "e.safetensors"
    out.write_text("precious")
    result = runner.invoke(app, ["erase", "dog", "--model", "tiny-sd1", "-o", str(out)])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert out.read_text() == "precious"
    assert runner.invoke(app, ["erase", "dog", "--model", "tiny-sd1", "-o", str(out), "--overwrite"]).exit_code == 0
    assert Edit.load(out).concepts == ["dog"]


def test_errors_are_messages_with_exit_code_2(tmp_path):
    result = runner.invoke(app, ["erase", "dog", "--model", "tiny-sd1", "--method", "ucee", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "Did you mean 'uce'" in result.output
    result = runner.invoke(app, ["erase", "dog", "--model", "tiny-sd1", "--set", "lamb", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "NAME=VALUE" in result.output
    result = runner.invoke(app, ["erase", "dog", "--model", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "never downloads" in result.output


def test_erase_settings_and_the_deprecated_preset_name(tmp_path):
    out = tmp_path / "r.safetensors"
    args = ["erase", "dog", "--model", "tiny-sd1", "--method", "rece", "-o", str(out), "--json"]
    result = runner.invoke(app, [*args, "--settings", "reference-style"])
    assert result.exit_code == 0 and json.loads(result.stdout)["info"]["settings"] == "reference-style"
    result = runner.invoke(app, [*args, "--preset", "reference-style", "--overwrite"])
    assert result.exit_code == 0 and "--preset is now --settings" in result.stderr


def test_unknown_names_are_one_message_with_exit_code_2(tmp_path):
    out = str(tmp_path / "x.safetensors")
    for args, words in [
        (["erase", "dog", "--model", "embeded", "-o", out], "Unknown world 'embeded'. Did you mean 'embedded'"),
        (["erase", "dog", "--model", "tiny-sd1", "--method", "rec", "-o", out], "Unknown method 'rec'"),
        (["attack", "ring-a-bel", "--concept", "dog", "-o", out], "Unknown attack 'ring-a-bel'"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and words in " ".join(result.output.split()), result.output
        assert "Traceback" not in result.output


def test_version_prints_the_version():
    from erasekit import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == __version__


@pytest.mark.parametrize(
    "where, overwrite, words",
    [
        ("missing folder", False, "mkdir -p"),
        ("read-only folder", False, "writable folder"),
        ("a folder", True, "is a folder"),
        ("exists", False, "--overwrite"),
    ],
)
def test_output_is_checked_before_the_model_loads(tmp_path, monkeypatch, where, overwrite, words):
    import erasekit

    def boom(*a, **k):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(erasekit, "load_pipeline", boom)
    (tmp_path / "dir").mkdir()
    (tmp_path / "e.safetensors").write_text("precious")
    out = {
        "missing folder": tmp_path / "nodir" / "e.safetensors",
        "read-only folder": unwritable_folder(tmp_path) / "e.safetensors",
        "a folder": tmp_path / "dir",
        "exists": tmp_path / "e.safetensors",
    }[where]
    args = ["erase", "van gogh", "--method", "esd", "--set", "iterations=40", "-o", str(out)]
    result = runner.invoke(app, args + ["--overwrite"] * overwrite)
    assert result.exit_code == 2 and words in " ".join(result.output.split()), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert (tmp_path / "e.safetensors").read_text() == "precious" and not list((tmp_path / "dir").iterdir())


def test_a_bad_model_folder_is_one_clear_message_and_no_warning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline",, }')
    outputs = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for model in ("./sd-v1-4", "./broken", "org/not-in-the-cache"):
            result = runner.invoke(app, ["erase", "dog", "--model", model, "-o", "e.safetensors"])
            assert result.exit_code == 2 and "Traceback" not in result.output
            outputs[model] = " ".join(result.output.split())
    assert not [str(w.message) for w in caught]  # e.g. diffusers' torch_dtype FutureWarning
    missing = outputs["./sd-v1-4"]
    assert f"Model folder ./sd-v1-4 does not exist ({tmp_path / 'sd-v1-4'})" in missing
    assert "hf download" not in missing and "huggingface-cli" not in missing and "HFValidationError" not in missing
    broken = outputs["./broken"]
    assert "broken/model_index.json is not valid JSON (Expecting property name" in broken and "line 1 column" in broken
    assert broken.endswith("copy the model again."), broken
    assert "`hf download org/not-in-the-cache`" in outputs["org/not-in-the-cache"]


def test_preserve_prompts_are_read_from_a_csv_and_checked(tmp_path):
    args = ["erase", "dog", "--model", "tiny-sd1", "-o", str(tmp_path / "e.safetensors"), "--preserve-prompts"]
    (tmp_path / "clash.csv").write_text("prompt\na cat\na dog in the snow\n")
    (tmp_path / "no_column.csv").write_text("text\na cat\n")
    # the error is wrapped to the terminal's width, which a long temporary path moves: compare on words
    result = runner.invoke(app, [*args, str(tmp_path / "clash.csv")])
    clash = "preserve_prompts entry 'a dog in the snow' names the erased concept 'dog'"
    assert result.exit_code == 2 and clash in " ".join(result.output.split()), result.output
    result = runner.invoke(app, [*args, str(tmp_path / "no_column.csv")])
    assert result.exit_code == 2 and "lacks the column(s) ['prompt']" in " ".join(result.output.split()), result.output
    (tmp_path / "kept.csv").write_text("prompt\na cat\na cat on a sofa\n")
    assert runner.invoke(app, [*args, str(tmp_path / "kept.csv")]).exit_code == 0


def test_kinds_are_given_as_concept_equals_kind_and_checked(tmp_path):
    out = tmp_path / "e.safetensors"
    args = ["erase", "dog", "--model", "tiny-sd1", "-o", str(out), "--json"]
    result = runner.invoke(app, [*args, "--kind", "dog=object"])
    assert result.exit_code == 0 and json.loads(result.stdout)["info"]["kinds"] == {"dog": "object"}, result.output
    result = runner.invoke(app, [*args, "--kind", "dog", "--overwrite"])
    assert result.exit_code == 2 and "--kind expects NAME=VALUE" in result.output
    result = runner.invoke(app, [*args, "--kind", "cat=object", "--overwrite"])
    assert result.exit_code == 2 and "given for 'cat', which is not erased" in " ".join(result.output.split())
    result = runner.invoke(app, [*args, "--kind", "dog=stile", "--overwrite"])
    assert result.exit_code == 2 and "Unknown kind 'stile' for 'dog'" in " ".join(result.output.split())


def test_an_old_settings_name_warns_on_the_command_line(tmp_path):
    # Python hides DeprecationWarning outside __main__: the command line prints the library's own
    args = ["erase", "dog", "--method", "rece", "--model", "tiny-sd1", "-o", str(tmp_path / "e.safetensors")]
    result = runner.invoke(app, [*args, "--settings", "style"])
    assert result.exit_code == 0, result.output
    assert "warning: rece settings 'style' are now 'reference-style'" in " ".join(result.output.split())
