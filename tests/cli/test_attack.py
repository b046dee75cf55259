from __future__ import annotations

import json
import os

import pytest
import torch
import typer
from safetensors import safe_open
from typer.testing import CliRunner

import erasekit
from erasekit import attacks, worlds
from erasekit.cli import attack as attack_cli
from erasekit.cli._common import errors_as_messages
from erasekit.cli.info import list_attacks
from erasekit.worlds.tiny import tiny_pipeline
from tests.attacks.conftest import BrightJudge
from tests.paths import unwritable_folder


@pytest.fixture
def app():
    """The command registered as erasekit.cli registers it."""
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("attack")(errors_as_messages(attack_cli.attack))
    app.command("attacks")(errors_as_messages(list_attacks))
    return app


@pytest.fixture
def edit_file(tmp_path):
    path = tmp_path / "cat.safetensors"
    erasekit.erase(erasekit.load_pipeline("tiny-sd1"), ["cat"], method="uce").save(path)
    return path


def test_attack_writes_images_embeddings_and_result_json(app, edit_file, tmp_path, monkeypatch):
    monkeypatch.setattr(attack_cli, "judge_for", lambda model: BrightJudge(always=False))
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("prompt,evaluation_seed\na cat,11\na cat on a mat,12\n")
    out = tmp_path / "run"
    args = [
        "attack",
        "soft-prompt",
        "--model",
        "tiny-sd1",
        "--edit",
        str(edit_file),
        "--concept",
        "cat",
        "-o",
        str(out),
        "--prompts",
        str(prompts),
        "--budget",
        "2",
        "--quick",
        "--steps",
        "2",
        "--set",
        "k=2",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary == json.loads((out / "result.json").read_text())
    assert summary["attack"] == "soft_prompt" and summary["asr"] == 0.0 and summary["config"]["k"] == 2
    assert summary["quick"] is True and summary["config"]["steps"] == 2  # --budget wins over the quick tier
    assert summary["config"]["train_images"] == attacks.QUICK["soft_prompt"]["train_images"]
    assert [c["seed"] for c in summary["cases"]] == [11, 12] and summary["edit_file"] == str(edit_file)
    assert sorted(p.name for p in (out / "pre").iterdir()) == ["0000.png", "0001.png"]
    assert sorted(p.name for p in (out / "attack").iterdir()) == ["0000.png", "0001.png"]
    with safe_open(str(out / "embeds.safetensors"), "pt") as f:
        assert sorted(f.keys()) == ["case_0000.prompt_embeds", "case_0001.prompt_embeds", "run.soft_tokens"]
        assert tuple(f.get_tensor("run.soft_tokens").shape) == (2, 32)
    assert not list(out.rglob("*.tmp"))

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_attack_cli_errors_are_messages(app, edit_file, tmp_path):
    run = lambda *extra: CliRunner().invoke(  # noqa: E731
        app, ["attack", *extra, "--model", "tiny-sd1", "--concept", "cat", "-o", str(tmp_path / "o")]
    )
    result = run("ringbell")
    assert result.exit_code == 2 and "Did you mean 'ringabell'" in result.output
    result = run("derived")  # no judge is known for tiny-sd1 on the command line
    assert result.exit_code == 2 and "no judge" in result.output
    result = run("derived", "--edit", str(tmp_path / "missing.safetensors"))
    assert result.exit_code == 2 and "not found" in result.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["unlearndiff", "--budget", "0"], "whole number of steps ≥ 1, got 0: pass e.g. --budget 50, --quick"),
        (["soft-prompt", "--budget", "-2"], "got -2"),
        (["p4d", "--set", "steps=0"], "PrefixSearchConfig.steps must be a whole number ≥ 1, got 0: give a budget"),
        (["derived", "--budget", "5"], "closed form and has no budget"),
    ],
)
def test_a_bad_budget_exits_2_before_anything_loads(app, tmp_path, monkeypatch, args, words):
    def boom(*a, **k):
        raise AssertionError("work started before the budget was checked")

    monkeypatch.setattr(erasekit, "load_pipeline", boom)
    monkeypatch.setattr(attack_cli, "judge_for", boom)
    result = CliRunner().invoke(app, ["attack", *args, "--concept", "van gogh", "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and words in " ".join(result.output.split()), result.output
    assert not (tmp_path / "o").exists()


def test_attacks_lists_the_registry_with_defaults(app):
    result = CliRunner().invoke(app, ["attacks", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert sorted(rows) == attacks.available()
    assert rows["unlearndiff"]["defaults"]["k"] == 5 and rows["unlearndiff"]["defaults"]["lr"] == 0.01
    assert rows["ringabell"]["defaults"]["eta"] is None and rows["ringabell"]["quick"] == attacks.QUICK["ringabell"]
    assert rows["derived"]["white_box"] and not rows["soft_prompt"]["white_box"] and rows["derived"]["quick"] == {}


def test_the_embedded_world_brings_its_judge_and_prompts(edited):
    pipe, _ = edited
    judge = attack_cli.judge_for("embedded")
    images = pipe(["a cat", "a dog"], num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images
    assert [type(v) for v in judge.detects(images, "van gogh")] == [bool, bool]
    prompts = attack_cli.default_prompts("embedded", "van gogh", 3)
    assert prompts == worlds.get("embedded").default_prompts("van gogh", n=3) and len(prompts) == 3
    assert attack_cli.default_prompts("tiny-sd1", "cat", None) == ["cat"]


@pytest.mark.parametrize(
    "where, words",
    [("in a read-only folder", "writable folder"), ("a file", "is a file"), ("under a file", "is a file")],
)
def test_output_is_checked_before_anything_loads(app, edit_file, tmp_path, monkeypatch, where, words):
    def boom(*a, **k):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(erasekit, "load_pipeline", boom)
    monkeypatch.setattr(erasekit.Edit, "load", boom)
    monkeypatch.setattr(attack_cli, "judge_for", boom)
    (tmp_path / "f").write_text("a file")
    out = {
        "in a read-only folder": unwritable_folder(tmp_path) / "run",
        "a file": tmp_path / "f",
        "under a file": tmp_path / "f" / "run",
    }[where]
    args = ["attack", "derived", "--model", "tiny-sd1", "--edit", str(edit_file), "--concept", "cat", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and words in " ".join(result.output.split()), result.output
    assert (tmp_path / "f").read_text() == "a file"


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_attack_outputs_get_the_umask_permissions(umask_022, tmp_path):
    from PIL import Image

    from erasekit.attacks.base import AttackResult, Case, CaseResult, Outcome
    from erasekit.attacks.save import save_result

    image = Image.new("RGB", (4, 4))
    outcome = Outcome(torch.zeros(3, 2), image, success=False)
    cases = [CaseResult(Case("a cat", 0), True, image), CaseResult(Case("a cat", 1), False, image, outcome)]
    save_result(AttackResult("derived", "cat", {}, 0, cases, tensors={"x": torch.ones(2)}), tmp_path / "run")
    files = ["result.json", "embeds.safetensors", "pre/0000.png", "pre/0001.png", "attack/0001.png"]
    assert {f: (tmp_path / "run" / f).stat().st_mode & 0o777 for f in files} == dict.fromkeys(files, 0o644)


def test_concepts_match_the_worlds_names_whatever_the_case(app, tmp_path, monkeypatch):
    assert worlds.canonical_concept(worlds.find("embedded"), "Van Gogh") == "van gogh"
    assert worlds.canonical_concept(worlds.find("embedded"), " GARBAGE   Truck ") == "garbage truck"
    assert worlds.canonical_concept(worlds.find("embedded"), "Dali") == "Dali"  # not the world's: left for it to refuse
    assert worlds.canonical_concept(worlds.find("tiny-sd1"), "Cat") == "Cat"  # no world names: as given

    judge = BrightJudge(always=False)
    monkeypatch.setattr(attack_cli, "judge_for", lambda model: judge)
    monkeypatch.setattr(erasekit, "load_pipeline", lambda *a, **k: tiny_pipeline("sd1"))  # the world's prompts, fast
    out = tmp_path / "run"
    args = ["attack", "derived", "--concept", "Van Gogh", "--n-prompts", "1", "--steps", "1", "-o", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["concept"] == "van gogh" and "gogh" in summary["cases"][0]["prompt"]


def test_the_worlds_concept_kind_sets_ring_a_bells_eta(app, tmp_path, monkeypatch):
    monkeypatch.setattr(attack_cli, "judge_for", lambda model: BrightJudge(always=False))
    monkeypatch.setattr(erasekit, "load_pipeline", lambda *a, **k: tiny_pipeline("sd1"))
    args = ["attack", "ringabell-embed", "--concept", "van gogh", "--n-prompts", "1", "--steps", "1", "--json", "-o"]
    result = CliRunner().invoke(app, [*args, str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["info"]["eta"] == 0.9 and summary["quick"] is False  # "van gogh" is a style: RECE's 0.9


def test_attacking_a_concept_the_edit_did_not_erase_warns(app, edit_file, tmp_path, monkeypatch):
    monkeypatch.setattr(attack_cli, "judge_for", lambda model: BrightJudge(always=False))
    args = ["attack", "derived", "--model", "tiny-sd1", "--edit", str(edit_file), "--n-prompts", "1", "--steps", "1"]
    result = CliRunner().invoke(app, [*args, "--concept", "dog", "-o", str(tmp_path / "dog")])
    assert result.exit_code == 0, result.output
    assert "warning: the edit erased 'cat', not 'dog'" in " ".join(result.output.split())
    result = CliRunner().invoke(app, [*args, "--concept", "Cat", "-o", str(tmp_path / "cat")])
    assert result.exit_code == 0 and "warning" not in result.output, result.output


def test_ctrl_c_during_an_attack_says_nothing_was_written(app, edit_file, tmp_path, monkeypatch):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(attack_cli, "judge_for", lambda model: BrightJudge(always=False))
    monkeypatch.setattr(attacks, "attack", ctrl_c)
    args = ["attack", "derived", "--model", "tiny-sd1", "--edit", str(edit_file), "--concept", "cat"]
    result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "run")])
    output = " ".join(result.output.split())
    assert result.exit_code == 130 and "Traceback" not in output, output
    assert "nothing was written" in output and "does not resume" in output and not (tmp_path / "run").exists()
