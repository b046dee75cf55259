import dataclasses
import json

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

import erasekit
from erasekit import worlds
from erasekit.cli import app as erasekit_app
from erasekit.cli import evaluate as eval_cli
from erasekit.errors import ConfigError, ErasekitError, MissingWeightsError, OutputError
from erasekit.evaluate import AttackExample, AttackRecord, evaluate
from erasekit.metrics import GROUPS, mace_h_o

SCHEMA_KEYS = {"model", "edit", "protocol", "preset", "n_images", "metrics", "timing"}


def test_evaluate_writes_metrics_json_in_the_design_schema(
    tiny_pipe, monet_edit, tiny_preset, stub_judge, tmp_path, monkeypatch
):
    attack = AttackRecord("soft_prompt", 0.25, [AttackExample("<v*> monet", Image.new("RGB", (8, 8)), True, "emb")])
    result = evaluate(
        tiny_preset, model="tiny-sd1", world="embedded", out=tmp_path, edit=monet_edit, pipe=tiny_pipe,
        judge_loader=stub_judge, progress=False, attacks=[attack],
    )  # fmt: skip
    assert SCHEMA_KEYS <= set(result) and list(result["metrics"]) == list(GROUPS)
    assert result["edit"]["method"] == "uce" and result["edit"]["concepts"] == ["monet"]
    assert result["concept"] == "monet" and result["n_images"] == 6 + 2 + 3 + 6 + 2 + 3  # baseline: all originals
    m = result["metrics"]
    assert set(m["efficacy"]) == {"judge_detect_rate_target"} and "judge_acc_specificity" in m["specificity"]
    assert m["quality"]["mace_h_o"] == pytest.approx(
        mace_h_o(
            m["efficacy"]["judge_detect_rate_target"],
            m["specificity"]["judge_acc_specificity"],
            m["generality"]["judge_detect_rate_generality"],
        )
    )
    assert m["asr"] == {"asr_soft_prompt": 0.25}
    assert set(result["baseline"]["efficacy"]) == {"judge_detect_rate_target"}
    assert {"edit_s", "generate_s"} <= set(result["timing"])
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(result))

    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 * (3 + 2 + 3) + 1  # original and edited per prompt; attack
    assert "http://" not in page and "https://" not in page and 'src="images/' not in page
    assert "soft_prompt: ASR 25.0%" in page and "judge_detect_rate_target" in page

    def no_model(*args, **kwargs):
        raise AssertionError("a finished run is scored again without loading the model")

    monkeypatch.setattr(erasekit, "load_pipeline", no_model)
    again = evaluate(tiny_preset, model="tiny-sd1", world="embedded", out=tmp_path, edit=monet_edit,
                     judge_loader=stub_judge, progress=False)  # fmt: skip
    assert again["metrics"] == {**m, "asr": {}} and again["timing"]["generate_s"] == 0.0


def test_user_prompts_without_a_preset_make_images_only(tiny_pipe, tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("prompt,seed\na red car,3\na dog,4\n")
    result = evaluate(
        None, model="tiny-sd1", world="embedded", out=tmp_path / "run", prompts_csv=csv, pipe=tiny_pipe, progress=False
    )
    assert result["n_images"] == 2 and all(not v for v in result["metrics"].values())
    assert (tmp_path / "run" / "images" / "model" / "prompts" / "00001_s4.png").is_file()  # no edit: the model's
    assert not (tmp_path / "run" / "images" / "edited").exists()
    with pytest.raises(ConfigError, match=r"--protocol NAME.*--prompts FILE"):
        evaluate(None, out=tmp_path / "x")


def _app():
    app = typer.Typer()
    for command in (eval_cli.evaluate, eval_cli.generate):
        app.command()(command)
    return app


def test_cli_generate_then_evaluate_json(monet_edit, tmp_path):
    edit_path = monet_edit.save(tmp_path / "monet.safetensors")
    csv = tmp_path / "p.csv"
    csv.write_text("prompt\na red car\na dog\n")
    runner = CliRunner()
    out = runner.invoke(
        _app(), ["generate", "--model", "tiny-sd1", "--edit", str(edit_path), "--prompts", str(csv), "-o",
                 str(tmp_path / "gen"), "--steps", "1", "--seed", "0", "--seed", "1", "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    manifest = json.loads(out.stdout)
    assert [(e["prompt"], e["seed"]) for e in manifest] == [
        ("a red car", 0),
        ("a red car", 1),
        ("a dog", 0),
        ("a dog", 1),
    ]

    out = runner.invoke(
        _app(), ["evaluate", "--model", "tiny-sd1", "--edit", str(edit_path), "--prompts", str(csv), "-o",
                 str(tmp_path / "eval"), "--n-prompts", "1", "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["n_images"] == 1 and result["edit"]["concepts"] == ["monet"]


def test_limit_is_a_hidden_deprecated_alias_of_n_prompts(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("prompt\na red car\na dog\n")
    args = ["generate", "--model", "tiny-sd1", "--prompts", str(csv), "--steps", "1", "-o", str(tmp_path / "g")]
    out = CliRunner().invoke(erasekit_app, [*args, "--limit", "1"])  # the real app: it prints the warning
    assert out.exit_code == 0, out.output
    assert "warning: --limit is now --n-prompts" in out.output and len(list((tmp_path / "g").rglob("*.png"))) == 1
    for command in ("evaluate", "generate"):
        page = CliRunner().invoke(_app(), [command, "--help"]).output
        assert "--n-prompts" in page and "--limit" not in page


def test_cli_errors_are_erasekit_errors(tmp_path):
    with pytest.raises(ErasekitError, match="--weights expects NAME="):
        eval_cli.parse_weights(["clip"])
    assert eval_cli.parse_weights(["clip=/m/clip"]) == {"clip": "/m/clip"}
    csv = tmp_path / "p.csv"
    csv.write_text("text\nhello\n")
    out = CliRunner().invoke(_app(), ["evaluate", "--model", "tiny-sd1", "--prompts", str(csv), "-o", str(tmp_path)])
    assert isinstance(out.exception, ConfigError) and "['prompt']" in str(out.exception)


def test_scoring_reports_progress_and_reads_only_stored_images(tiny_pipe, tiny_preset, stub_judge, tmp_path):
    from erasekit.evaluate import ImageStore, load_rows, score
    from erasekit.metrics import MetricContext

    evaluate(
        tiny_preset,
        model="tiny-sd1",
        world="embedded",
        out=tmp_path,
        pipe=tiny_pipe,
        judge_loader=stub_judge,
        progress=False,
    )
    rows = load_rows(tiny_preset, concept="monet", world=worlds.get("embedded"))
    calls = []
    store = ImageStore.open(tmp_path)  # scoring again needs the folder only, no model
    scores, baseline = score(
        tiny_preset, rows, store,
        MetricContext(concept="monet", judge_loader=stub_judge, concept_kind=lambda c: "style"), references="edited",
        progress=lambda done, total: calls.append((done, total)),
    )  # fmt: skip
    assert calls[-1] == (6 + 2 + 3, 6 + 2 + 3) and baseline is None
    assert scores["efficacy"]["judge_detect_rate_target"] in (0.0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1.0)
    with pytest.raises(OutputError, match="holds no erasekit run"):
        ImageStore.open(tmp_path / "images")


def test_a_missing_judge_fails_before_any_image_is_made(tiny_pipe, tmp_path, monkeypatch):
    from erasekit.evaluate import parse_protocol

    monkeypatch.delenv("ERASEKIT_CLIP", raising=False)
    preset = parse_protocol(
        {"name": "clip", "prompts": {"p": {"csv": "big_artist_prompts.csv"}},
         "metrics": [{"name": "clip_score", "group": "quality", "prompt_set": "p"}]}
    )  # fmt: skip
    with pytest.raises(MissingWeightsError, match="CLIP"):
        evaluate(
            preset,
            model="tiny-sd1",
            world="embedded",
            out=tmp_path,
            pipe=tiny_pipe,
            weights={"clip": str(tmp_path / "none")},
        )
    assert not (tmp_path / "images").exists()


def test_concept_comes_from_the_option_then_the_edit_then_the_preset(monet_edit):
    from erasekit.evaluate import load_protocol, resolve_concept

    style = load_protocol("embedded-style")
    assert resolve_concept(style, None, None) == "van gogh"
    assert resolve_concept(style, monet_edit, None) == "monet"
    assert resolve_concept(style, monet_edit, "picasso") == "picasso"
    with pytest.raises(ConfigError, match="embedded-style evaluates style concepts but 'church' is an object"):
        resolve_concept(style, None, "church", worlds.get("embedded"))
    with pytest.raises(ConfigError, match="--protocol embedded-nudity"):
        resolve_concept(style, None, "nudity", worlds.get("embedded"))
    assert resolve_concept(load_protocol("rece-style"), monet_edit, None) == "monet"  # no embedded sets: no check


def test_concepts_are_matched_to_the_worlds_names_whatever_their_case(tiny_pipe, tiny_preset, stub_judge, tmp_path):
    from erasekit.evaluate import load_protocol, resolve_concept
    from erasekit.evaluate.compare.run import _spelled
    from erasekit.worlds import canonical_concept

    embedded = worlds.get("embedded")
    assert canonical_concept(embedded, "Van  GOGH") == "van gogh" and canonical_concept(embedded, "NUDITY") == "nudity"
    assert canonical_concept(embedded, "Van Gog") == "Van Gog" and canonical_concept(None, "Van Gogh") == "Van Gogh"
    assert resolve_concept(load_protocol("embedded-style"), None, "Van Gogh", embedded) == "van gogh"
    assert _spelled("Van Gogh", embedded) == "van gogh" and _spelled("STYLE", embedded) == "style"
    result = evaluate(tiny_preset, model="tiny-sd1", world="embedded", out=tmp_path, concept="Monet", pipe=tiny_pipe,
                      judge_loader=stub_judge, progress=False)  # fmt: skip
    assert result["concept"] == "monet"


def test_a_run_of_another_edit_gives_its_original_images_and_nothing_else(
    tiny_pipe, monet_edit, tiny_preset, stub_judge, tmp_path
):
    other = erasekit.erase(tiny_pipe, ["monet"], method="uce", erase_scale=0.5)  # same concept, same prompts
    kw = dict(model="tiny-sd1", world="embedded", pipe=tiny_pipe, judge_loader=stub_judge, progress=False)
    first = evaluate(tiny_preset, out=tmp_path / "a", edit=monet_edit, **kw)
    drawn = []
    second = evaluate(tiny_preset, out=tmp_path / "b", edit=other, originals_from=[tmp_path / "a"],
                      on_image=lambda item: drawn.append(item.variant), **kw)  # fmt: skip
    assert drawn and set(drawn) == {"edited"}  # every original image was taken, none drawn
    assert second["baseline"] == first["baseline"]
    for path in (tmp_path / "a" / "images" / "original").rglob("*.png"):
        assert (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes() == path.read_bytes()
    # a run under other sampling gives nothing: its originals are other images
    changed = dataclasses.replace(tiny_preset, generation=dataclasses.replace(tiny_preset.generation, steps=1))
    drawn.clear()
    evaluate(changed, out=tmp_path / "c", edit=other, originals_from=[tmp_path / "a"],
             on_image=lambda item: drawn.append(item.variant), **kw)  # fmt: skip
    assert "original" in drawn
