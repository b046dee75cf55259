"""Counts are >= 1 and numbers finite, checked before any work; every JSON file erasekit writes is strict JSON."""

import json
import math

import pytest

from erasekit.errors import ConfigError
from erasekit.evaluate import Generation, ImageStore, evaluate, write_json


def _strict(text):
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"steps": 0}, "steps must be a whole number >= 1, got 0"),
        ({"batch_size": 0}, "batch_size must be a whole number >= 1, got 0"),
        ({"height": -8}, "height must be a whole number >= 1"),
        ({"steps": 2.5}, "steps must be a whole number"),
        ({"guidance": math.nan}, "guidance must be a finite number, got nan"),
        ({"guidance": -math.inf}, "guidance must be a finite number, got -inf"),
    ],
)
def test_generation_settings_are_checked_when_made(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Generation(**kwargs)


def test_json_files_are_strict(tmp_path):
    write_json({"fid": math.nan, "asr": [math.inf, 0.5]}, tmp_path / "m.json")
    assert _strict((tmp_path / "m.json").read_text()) == {"fid": None, "asr": [None, 0.5]}
    with pytest.raises(ConfigError, match="NaN or an infinity"):
        ImageStore(tmp_path / "run", {"guidance": math.nan})
    assert not (tmp_path / "run").exists()


def test_evaluate_refuses_zero_processes_before_any_work(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("prompt\na car\n")
    with pytest.raises(ConfigError, match="--num-processes must be a whole number >= 1, got 0"):
        evaluate(None, model="tiny-sd1", out=tmp_path / "run", prompts_csv=csv, num_processes=0)
    assert not (tmp_path / "run").exists()


def test_metrics_json_of_a_run_is_strict(tiny_pipe, tiny_preset, stub_judge, tmp_path):
    evaluate(tiny_preset, model="tiny-sd1", world="embedded", out=tmp_path, pipe=tiny_pipe, judge_loader=stub_judge,
             progress=False)  # fmt: skip
    for name in ("metrics.json", "run.json"):
        _strict((tmp_path / name).read_text())
    for line in (tmp_path / "manifest" / "shard-0.jsonl").read_text().splitlines():
        _strict(line)
