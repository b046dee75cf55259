"""A refused or failed run never blocks the corrected rerun into the same folder."""

import json

from typer.testing import CliRunner

from erasekit.cli import app
from erasekit.evaluate import ImageStore
from erasekit.worlds.tiny import tiny_pipeline

RUN = {"model": "tiny-sd1", "steps": 2}


def _generate(tmp_path, *extra):
    csv = tmp_path / "p.csv"
    csv.write_text("prompt\na red car\na dog\n")
    args = ["generate", "--model", "tiny-sd1", "--prompts", str(csv), "-o", str(tmp_path / "g"), *extra]
    return CliRunner().invoke(app, args)


def test_a_run_refused_for_its_settings_leaves_no_folder_and_the_corrected_one_runs(tmp_path):
    refused = _generate(tmp_path, "--steps", "0")
    assert refused.exit_code == 2 and "steps must be a whole number >= 1, got 0" in refused.output
    assert not (tmp_path / "g").exists()
    fixed = _generate(tmp_path, "--steps", "1")
    assert fixed.exit_code == 0, fixed.output
    assert len(list((tmp_path / "g" / "images").rglob("*.png"))) == 2


def test_a_run_refused_for_its_edit_writes_no_run_json_and_the_right_edit_runs(tmp_path, monet_edit):
    import erasekit

    wrong = erasekit.erase(tiny_pipeline("sd1", seed=3), ["monet"], method="uce").save(tmp_path / "wrong.safetensors")
    right = monet_edit.save(tmp_path / "right.safetensors")
    refused = _generate(tmp_path, "--steps", "1", "--edit", str(wrong))
    assert refused.exit_code == 2 and "made for base model" in refused.output
    assert not (tmp_path / "g" / "run.json").exists()
    fixed = _generate(tmp_path, "--steps", "1", "--edit", str(right))
    assert fixed.exit_code == 0, fixed.output
    assert json.loads((tmp_path / "g" / "run.json").read_text())["edit"] == monet_edit.id


def test_a_folder_whose_run_json_matches_no_image_is_taken_over(tmp_path):
    ImageStore(tmp_path, RUN)  # run.json written, then the run stopped before its first image
    (tmp_path / "manifest" / "shard-0.jsonl").write_text('{"key": "edited/p/00000_s0"}\n')
    store = ImageStore(tmp_path, {**RUN, "steps": 5})  # no --overwrite needed: no image would be lost
    assert json.loads((tmp_path / "run.json").read_text())["steps"] == 5 and store.manifest_lines() == []
