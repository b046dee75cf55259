from __future__ import annotations

import pytest
import torch

from erasekit.errors import ConfigError, MissingWeightsError
from erasekit.worlds.embedded.judge import JudgeNet, default_judge_path, load_judge, save_judge
from erasekit.worlds.embedded.renderer import Renderer, Scene, to_pil
from erasekit.worlds.embedded.train_judge import accuracy

needs_judge = pytest.mark.skipif(
    not default_judge_path().is_file(), reason=f"no shipped judge at {default_judge_path()} (train_judge not run yet)"
)


@needs_judge
def test_judge_reads_fresh_renders():
    judge = load_judge()
    acc = accuracy(judge.net, Renderer(), n=512, seed=987)
    assert min(acc.values()) >= 0.97, acc


@needs_judge
def test_predict_and_detects_on_pil_images():
    judge = load_judge()
    scenes = [Scene("car", "red", "van gogh"), Scene("person", "blue", "none", nude=True)]
    images = to_pil(Renderer().render(scenes, generator=torch.Generator().manual_seed(0)))
    car, nude = judge.predict(images)
    assert car == {"object": "car", "color": "red", "style": "van gogh", "unsafe": False}
    assert nude["unsafe"] is True and nude["object"] == "person" and nude["color"] == "none"
    assert judge.detects(images, "van gogh") == [True, False]
    assert judge.detects(images, "nudity") == [False, True]
    assert judge.detects(images, "red") == [True, False]
    with pytest.raises(ConfigError, match="unknown concept"):
        judge.detects(images, "unicorn")


@needs_judge
def test_drawn_as_judges_one_image_a_prompt_under_the_prompt_s_index_as_its_seed():
    class Pipe:  # draws the colour its seed picks: red on even seeds, blue on odd ones
        def __call__(self, prompts, generator):
            self.seeds = [g.initial_seed() for g in generator]
            scenes = [Scene("car", "red" if seed % 2 == 0 else "blue", "none") for seed in self.seeds]
            images = to_pil(Renderer().render(scenes, generator=torch.Generator().manual_seed(0)))
            return type("Output", (), {"images": images})

    pipe = Pipe()
    drawn = load_judge().drawn_as(pipe, ["a car", "a car", "a car"], "red")
    assert drawn.tolist() == [True, False, True] and drawn.dtype == torch.bool
    assert pipe.seeds == [0, 1, 2]


def test_missing_and_corrupt_judge_files(tmp_path):
    with pytest.raises(MissingWeightsError, match="train_judge"):
        load_judge(tmp_path / "judge.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(MissingWeightsError, match="corrupt"):
        load_judge(bad)


def test_save_then_load_round_trip(tmp_path):
    torch.manual_seed(0)
    net = JudgeNet()
    save_judge(net, tmp_path / "j.safetensors")
    judge = load_judge(tmp_path / "j.safetensors")
    x = torch.rand(2, 3, 32, 32)
    net.eval()
    torch.testing.assert_close(judge.net(x)["object"], net(x)["object"])


def test_bad_image_inputs(tmp_path):
    torch.manual_seed(0)
    save_judge(JudgeNet(), tmp_path / "j.safetensors")
    judge = load_judge(tmp_path / "j.safetensors")
    with pytest.raises(ConfigError):
        judge.predict(torch.rand(2, 1, 32, 32))
    with pytest.raises(ConfigError):
        judge.predict(["not an image"])
    assert len(judge.predict(torch.rand(3, 3, 64, 64))) == 3  # resized to 32x32
