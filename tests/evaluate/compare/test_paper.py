"""``compare --protocol rece-paper``: RECE's tables on a real model, end to end on tiny-sd1 with stub judges."""

from __future__ import annotations

import dataclasses
import json
from types import MappingProxyType

import numpy as np
import pytest
from typer.testing import CliRunner

import erasekit.metrics as metrics
from erasekit.errors import ConfigError, OutputExistsError, UnknownMetricError
from erasekit.evaluate.compare import paper as paper_mod
from erasekit.evaluate.compare.paper import PaperSettings, PaperTable, check_device, load_paper
from erasekit.evaluate.compare.paper_run import run_paper
from erasekit.metrics.nudenet import NudeRate
from erasekit.registry import Registry

TINY = PaperSettings(n_prompts=2, steps=1, resolution=32, budget=1)


def _bright(image) -> bool:
    return float(np.asarray(image.convert("L")).mean()) > 127


class FakeDetector:
    """NudeNet's interface: an exposed foot in every bright image."""

    def detect(self, path):
        from PIL import Image

        return [{"class": "FEET_EXPOSED", "score": 0.9}] if _bright(Image.open(path)) else []


class Constant:
    """A metric that reads nothing: ``{key: value}``."""

    def __init__(self, key: str, value: float, needs_reference: bool) -> None:
        self.key, self.value, self.needs_reference = key, value, needs_reference

    def reset(self) -> None:
        pass

    def update(self, images, prompts, *, labels=None, references=None) -> None:
        pass

    def compute(self):
        return {self.key: self.value}


class StubJudge:
    def detects(self, images, concept):
        return [_bright(im) for im in images]


@pytest.fixture
def stub_metrics(monkeypatch):
    """The metric registry with NudeNet's detector faked and LPIPS, CLIP, FID, the classifier as constants."""
    registry = Registry("metric", UnknownMetricError)
    entry = metrics.MetricEntry
    registry.add("nude_rate", entry("nude_rate", lambda ctx, threshold=0.6: NudeRate(threshold=threshold,
                                    detector=FakeDetector()), NudeRate))  # fmt: skip
    for name, key, value, ref in (
        ("lpips", "lpips", 0.25, True),
        ("clip_score", "clip_score", 31.0, False),
        ("fid", "fid", 17.0, True),
        ("imagenet_accuracy", "classifier_acc", 0.5, False),
    ):
        cls = type(f"Constant_{name}", (Constant,), {"needs_reference": ref})  # read before a metric is built
        registry.add(name, entry(name, lambda ctx, k=key, v=value, r=ref: Constant(k, v, r), cls))
    monkeypatch.setattr(metrics, "REGISTRY", registry)
    return registry


@pytest.fixture
def published(monkeypatch):
    """rece-paper with one published figure for uce (a stand-in: the bundle ships none it could cite)."""
    bundle = load_paper("rece-paper")
    nudity = dataclasses.replace(bundle.tables[0], paper=MappingProxyType({"uce": {"quality.fid": 99.0}}),
                                 source=MappingProxyType({"uce": "a test's stand-in"}))  # fmt: skip
    return dataclasses.replace(bundle, tables=(nudity, *bundle.tables[1:]))


def test_every_table_runs_on_tiny_sd1_with_the_paper_beside_ours_and_resumes(tmp_path, stub_metrics, published,
                                                                               monkeypatch):  # fmt: skip
    out = tmp_path / "paper"
    rows = run_paper(published, model="tiny-sd1", out=out, methods=["uce"], settings=TINY, judge=StubJudge())
    assert [(r["table"], r["method"]) for r in rows] == [
        (t, "uce") for t in ("nudity", "style", "object", "robustness")
    ]
    nudity, style, obj, robust = rows
    assert nudity["ours"]["efficacy.nudenet_n_images"] == 2  # 2 I2P prompts, one seed each
    assert 0 <= nudity["ours"]["efficacy.nudenet_count_total"] <= 2
    assert style["ours"]["efficacy.lpips_d"] == pytest.approx(0.0)  # lpips_e - lpips_u of the constants
    assert obj["ours"]["efficacy.classifier_acc_target"] == 0.5
    assert set(robust["ours"]) == {"asr.unlearndiff", "asr.p4d", "asr.ringabell"}
    assert all(0.0 <= v <= 1.0 for v in robust["ours"].values()) and robust["attack_n"]["ringabell"] == 2
    assert list((out / "cache" / "ringabell").glob("*.json"))  # its searches are kept for the other methods' rows

    table = json.loads((out / "compare.json").read_text())["tables"][0]
    fid = table["rows"][0]["columns"]["quality.fid"]
    assert fid == {"ours": 17.0, "paper": 99.0} and table["rows"][0]["source"] == "a test's stand-in"
    md = (out / "compare.md").read_text()
    assert "| uce | " in md and "17 | 99" in md and "Reduced run" in md and "a test's stand-in" in md

    # a resume recomputes nothing: every step would fail now
    monkeypatch.setattr("erasekit.evaluate.compare.paper_run._row", lambda *a, **k: pytest.fail("recomputed"))
    again = run_paper(published, model="tiny-sd1", out=out, methods=["uce"], settings=TINY, judge=StubJudge())
    assert again == rows
    with pytest.raises(OutputExistsError, match="differ in \\['n_prompts'\\]"):
        run_paper(published, model="tiny-sd1", out=out, methods=["uce"], settings=dataclasses.replace(TINY,
                  n_prompts=3), judge=StubJudge())  # fmt: skip


def test_an_attack_resumes_inside_its_row(tmp_path, stub_metrics, monkeypatch):
    from erasekit.evaluate.compare import paper_run

    full = load_paper("rece-paper")
    two = MappingProxyType({"unlearndiff": "unlearndiff-nudity", "p4d": "unlearndiff-nudity"})  # enough to resume
    bundle = dataclasses.replace(full, tables=(dataclasses.replace(full.tables[-1], attacks=two),))
    calls = []

    attack = paper_run._attack

    def once(*args, **kw):
        calls.append(args[2])
        if args[2] == "p4d" and len(calls) == 2:
            raise KeyboardInterrupt  # killed in the second attack
        return attack(*args, **kw)

    monkeypatch.setattr(paper_run, "_attack", once)
    kw = dict(model="tiny-sd1", out=tmp_path, methods=["uce"], settings=TINY, tables=["robustness"], judge=StubJudge())
    with pytest.raises(KeyboardInterrupt):
        run_paper(bundle, **kw)
    assert (tmp_path / "rows/robustness/uce/attacks/unlearndiff.json").is_file()
    run_paper(bundle, **kw)
    assert calls == ["unlearndiff", "p4d", "p4d"]  # unlearndiff's outcome was kept


def test_the_embedded_world_is_refused_with_the_fix(tmp_path):
    from erasekit.cli import app

    res = CliRunner().invoke(app, ["compare", "--protocol", "rece-paper", "--model", "embedded", "--methods", "uce",
                                   "-o", str(tmp_path / "c")])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "--model PATH" in res.output and not (tmp_path / "c").exists()


def test_a_gpu_only_option_on_cpu_is_refused(tmp_path, monkeypatch):
    from erasekit.cli import app

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    res = CliRunner().invoke(app, ["compare", "--protocol", "rece-paper", "--model", "tiny-sd1", "--methods", "uce",
                                   "--num-processes", "2", "-o", str(tmp_path / "c")])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "--num-processes 2 needs a CUDA GPU" in res.output and not (tmp_path / "c").exists()
    with pytest.raises(ConfigError, match="--device cuda, --dtype float16 needs a CUDA GPU"):
        check_device("cuda", 1, "float16", cuda=False)
    check_device("cuda:0", 4, "float16", cuda=True)  # a GPU machine takes them


def test_a_table_is_checked_when_the_bundle_loads():
    assert [t.name for t in load_paper("rece-paper").tables] == ["nudity", "style", "object", "robustness"]
    with pytest.raises(ConfigError, match="either a protocol or attacks"):
        PaperTable("t", "T", "nudity", "unsafe", ("asr.p4d",))
    with pytest.raises(ConfigError, match="have no source"):
        PaperTable("t", "T", "nudity", "unsafe", ("asr.p4d",), attacks={"p4d": "unlearndiff-nudity"},
                   paper={"rece": {"asr.p4d": 0.1}})  # fmt: skip
    with pytest.raises(ConfigError, match="unknown paper protocol 'rece'"):
        load_paper("rece")


def test_the_nudenet_judge_reads_exposed_parts_at_045(monkeypatch):
    from PIL import Image

    monkeypatch.setattr(paper_mod.nudenet, "check_detector", lambda: None)
    monkeypatch.setattr(paper_mod.nudenet, "load_detector", FakeDetector)
    judge = paper_mod.NudeNetJudge()
    images = [Image.new("RGB", (8, 8), (255, 255, 255)), Image.new("RGB", (8, 8), (0, 0, 0))]
    assert judge.detects(images, "nudity") == [True, False]
    with pytest.raises(ConfigError, match="nudity only"):
        judge.detects(images, "van gogh")


def test_the_command_passes_its_options_to_the_paper_run(tmp_path, monkeypatch):
    from erasekit.cli import app
    from erasekit.evaluate import compare

    seen = {}
    monkeypatch.setattr(compare, "run_paper", lambda paper, **kw: seen.update(kw, paper=paper.name))
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    args = ["compare", "--protocol", "rece-paper", "--model", "tiny-sd1", "--methods", "uce,rece:epochs=1",
            "--n-prompts", "2", "--steps", "1", "--resolution", "32", "--budget", "1", "-o", str(tmp_path)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert seen["paper"] == "rece-paper" and seen["methods"] == ["uce", "rece:epochs=1"] and seen["device"] == "cpu"
    assert seen["settings"] == TINY and seen["num_processes"] == 1


def test_a_missing_judge_fails_before_any_work(tmp_path, monkeypatch):
    from erasekit.errors import MissingWeightsError

    def missing(name, ctx):
        raise MissingWeightsError(f"no {name} here")

    monkeypatch.setattr("erasekit.evaluate.compare.paper_run.preflight", missing)
    with pytest.raises(MissingWeightsError, match="no nude_rate here"):
        run_paper(load_paper("rece-paper"), model="tiny-sd1", out=tmp_path / "p", methods=["uce"], judge=StubJudge())
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--protocol", "rece-paper", "--model", "tiny-sd1", "--scenarios", "style"], "--scenarios is not taken with"),
        (["--model", "embedded", "--steps", "1", "--num-processes", "2"], "--num-processes, --steps are not taken"),
    ],
)
def test_options_of_the_other_mode_are_refused(tmp_path, args, message):
    from erasekit.cli import app

    res = CliRunner().invoke(app, ["compare", *args, "-o", str(tmp_path / "c")])
    assert res.exit_code == 2 and message in " ".join(res.output.split()), res.output
    assert not (tmp_path / "c").exists()


def test_a_launched_run_is_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="with --num-processes N"):
        run_paper(load_paper("rece-paper"), model="tiny-sd1", out=tmp_path / "p", methods=["uce"], judge=StubJudge())
    assert not (tmp_path / "p").exists()
