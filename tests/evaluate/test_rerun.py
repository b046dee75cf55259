"""A refused or failed run never blocks the corrected rerun into the same folder."""

import json

import pytest
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


def test_images_of_a_run_without_an_edit_are_the_models_and_an_older_run_still_resumes(tiny_pipe, tmp_path):
    from PIL import Image

    from erasekit.evaluate import Generation, generate_images, load_rows, user_protocol

    csv = tmp_path / "p.csv"
    csv.write_text("prompt\na red car\na dog\n")
    protocol = user_protocol(csv, Generation(steps=1, guidance=2.0))
    rows = load_rows(protocol, concept=None, prompts_csv=csv)
    kwargs = dict(model="tiny-sd1", protocol=protocol, rows=rows, pipe=tiny_pipe, progress=False)
    store, items, _ = generate_images(out=tmp_path / "new", **kwargs)
    assert sorted(p.relative_to(store.images).as_posix() for p in store.images.rglob("*.png")) == [
        "model/prompts/00000_s0.png", "model/prompts/00001_s0.png"]  # fmt: skip
    assert [line["key"] for line in store.manifest_lines()] == ["model/prompts/00000_s0", "model/prompts/00001_s0"]
    assert {line["variant"] for line in store.manifest_lines()} == {"model"}
    again, _, _ = generate_images(out=tmp_path / "new", **kwargs, on_image=lambda item: pytest.fail("made again"))
    assert len(again.manifest_lines()) == 2

    old = ImageStore(tmp_path / "old", store.run)  # a run of an earlier erasekit: the model's images under edited/
    (old.images / "edited" / "prompts").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(old.images / "edited" / "prompts" / "00000_s0.png")
    ImageStore(tmp_path / "old", store.run).record(items[0], shard=0)
    resumed, _, _ = generate_images(out=tmp_path / "old", **kwargs)
    assert not resumed.model_only and resumed.has(items[1]) and not (old.images / "model").exists()
    assert [line["key"] for line in resumed.manifest_lines()] == ["edited/prompts/00000_s0", "edited/prompts/00001_s0"]
