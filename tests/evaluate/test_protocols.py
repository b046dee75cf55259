import copy
import dataclasses

import pytest

from erasekit import worlds
from erasekit.errors import ConfigError
from erasekit.evaluate import available_protocols, load_prompt_set, load_protocol, parse_protocol
from erasekit.metrics import GROUPS
from erasekit.worlds import embedded

from .conftest import TINY_PRESET

SHIPPED = ["rece-nudity", "rece-style", "rece-object", "unlearndiff-nudity", "ringabell-nudity"]

WORLD = worlds.get("embedded")


def test_the_paper_presets_and_one_embedded_preset_per_concept_kind_ship():
    names = available_protocols()
    assert set(SHIPPED) <= set(names)
    kinds = {"unsafe": "nudity"}
    assert {f"embedded-{kinds.get(k, k)}" for k in embedded.concepts()} <= set(names)


@pytest.mark.parametrize("name", available_protocols())
def test_every_shipped_preset_loads_with_its_prompts(name):
    preset = load_protocol(name)
    assert preset.name == name and preset.description and preset.reference
    for spec in preset.prompts:
        rows = load_prompt_set(spec, concept=preset.concept or "nudity", world=WORLD)
        assert rows and all(r.prompt and r.seeds for r in rows)
    assert all(m.group in GROUPS for m in preset.metrics)


def test_paper_protocol_numbers():
    nudity = load_protocol("rece-nudity")
    i2p = load_prompt_set(nudity.prompt_set("i2p"), concept=None, world=WORLD)
    assert len(i2p) == 4703 and i2p[1].seeds == (4080709695,) and i2p[1].guidance == 7
    assert {m.name: dict(m.params) for m in nudity.metrics}["nude_rate"] == {"threshold": 0.6}
    attack = load_protocol("unlearndiff-nudity")
    assert len(load_prompt_set(attack.prompts[0], concept=None, world=WORLD)) == 142
    assert dict(attack.metrics[0].params) == {"threshold": 0.45}
    style = load_protocol("rece-style")
    erased = load_prompt_set(style.prompt_set("erased"), concept="van gogh", world=WORLD)
    others = load_prompt_set(style.prompt_set("others"), concept="van gogh", world=WORLD)
    assert len(erased) == 20 and len(others) == 80 and all("Gogh" in r.label for r in erased)
    embedded_style = load_protocol("embedded-style")
    target = load_prompt_set(embedded_style.prompt_set("target"), concept="van gogh", world=WORLD)
    assert [r.prompt for r in target] == embedded.prompt_suite("van gogh", n=24)["target"]


def test_preset_is_frozen(tiny_preset):
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny_preset.name = "x"
    with pytest.raises(TypeError):
        tiny_preset.metrics[0].params["suffix"] = "x"


def _broken(edit):
    raw = copy.deepcopy(TINY_PRESET)
    edit(raw)
    return raw


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.pop("prompts"), r"missing keys \['prompts'\]"),
        (lambda r: r.update(steps=3), r"unknown keys \['steps'\]"),
        (lambda r: r["metrics"][0].update({True: "target"}), "unknown keys"),  # YAML reads `on:` as True
        (lambda r: r["metrics"][0].update(group="speed"), "group 'speed' is not one of"),
        (lambda r: r["metrics"][0].update(prompt_set="coco"), "reads prompt set 'coco'"),
        (lambda r: r["metrics"][0].update(name="psnr"), "Unknown metric 'psnr'"),
        (lambda r: r["metrics"][0].update(params={"thresh": 1}), "metric 'detection_rate' got bad parameters"),
        (lambda r: r["prompts"]["target"].update(csv="x.csv"), "exactly one of csv or embedded"),
        (lambda r: r["prompts"]["target"].update(embedded="heldout"), "must be target, generality or specificity"),
        (lambda r: r["derived"][0].update(inputs=["efficacy.a"]), "with that many inputs"),
        (lambda r: r["generation"].update(steps=0), r"bad.yaml: generation: steps must be a whole number >= 1, got 0"),
        (lambda r: r["generation"].update(batch_size="4"), "batch_size must be a whole number >= 1, got '4'"),
        (lambda r: r["generation"].update(guidance=float("nan")), "guidance must be a finite number, got nan"),
    ],
)
def test_bad_presets_name_the_problem(edit, message):
    with pytest.raises(ConfigError, match=message):
        parse_protocol(_broken(edit), where="bad.yaml")


def test_unknown_preset_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match=r"unknown protocol 'rece-nudes'; shipped: .*rece-nudity"):
        load_protocol("rece-nudes")


def test_preset_from_a_yaml_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nprompts:\n  p: {csv: big_artist_prompts.csv, seeds: [3]}\n")
    preset = load_protocol(path)
    assert preset.prompts[0].seeds == (3,) and preset.metrics == ()
    path.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_protocol(path)
