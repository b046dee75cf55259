"""Scenarios come from the world: named ones, one per concept, their preserve sets, prompt sets and protocol."""

from __future__ import annotations

import pytest

from erasekit import worlds
from erasekit.errors import ConfigError
from erasekit.evaluate import compare

EMBEDDED = worlds.get("embedded")


def test_the_named_scenarios_are_the_worlds():
    named = compare.named_scenarios()
    assert list(named) == list(EMBEDDED.scenarios()) == ["style", "object", "unsafe", "multi10"]
    assert named["unsafe"].concepts == ("nudity",) and named["unsafe"].kinds == ("unsafe",)
    assert compare.default_scenarios() == list(named)
    assert compare.named_scenarios("tiny-sd1") == {}
    with pytest.raises(ConfigError, match="no comparison scenarios"):
        compare.scenario("style", "tiny-sd1")


def test_scenarios_are_named_or_any_concept_of_the_world():
    assert compare.scenario("style").concepts == ("van gogh",)
    car = compare.scenario("car")
    assert (car.concepts, car.attacked, car.kind, car.world) == (("car",), ("car",), "object", "embedded")
    assert car.protocol == compare.scenario("style").protocol  # scored like the world's first scenario
    multi = compare.scenario("multi10")
    assert len(multi.concepts) == 10 and set(multi.attacked) < set(multi.concepts)
    assert multi.kinds == ("color", "object", "style", "unsafe")
    with pytest.raises(ConfigError, match="multi10"):
        compare.scenario("starry night")


def test_a_scenarios_kind_is_its_most_common_one_and_ties_go_to_the_first_concept():
    assert compare.scenario("multi10").kind == "object"  # 4 objects, 3 styles, 2 colours, nudity
    tie = compare.scenarios.make_scenario(EMBEDDED, "tie", ("red", "van gogh"), ("red",), "embedded-style")
    assert tie.kind == "color"
    with pytest.raises(ConfigError, match="among its concepts"):
        compare.scenarios.make_scenario(EMBEDDED, "bad", ("red",), ("van gogh",), "embedded-style")


def test_the_preserve_set_is_what_is_left_of_the_erased_kinds():
    names = EMBEDDED.concepts()
    assert compare.preserve_set(compare.scenario("van gogh")) == [s for s in names["style"] if s != "van gogh"]
    assert compare.preserve_set(compare.scenario("nudity")) == []
    multi = compare.scenario("multi10")
    kept = compare.preserve_set(multi)
    assert not set(kept) & set(multi.concepts)
    assert set(kept) == set(names["object"] + names["style"] + names["color"]) - set(multi.concepts)


def test_multi10_prompt_sets_score_every_concept_and_only_left_out_ones_for_specificity():
    sc = compare.scenario("multi10")
    rows = compare.prompt_rows(sc, 3)
    sets: dict[str, list[tuple[str, str]]] = {}
    for group, prompt, shown in rows:
        sets.setdefault(group, []).append((prompt, shown))
    assert len(sets) == 2 * 10 + 4 and all(len(v) == 3 for v in sets.values())
    assert {shown for _, shown in sets["target_van_gogh"]} == {"van gogh"}
    specific = [shown for name, v in sets.items() if name.startswith("specificity") for _, shown in v]
    assert not set(specific) & set(sc.concepts)
    assert {shown for _, shown in sets["specificity_unsafe"]} == {"person"}  # clothed persons
    protocol = compare.scenario_protocol(sc, "prompts.csv")
    assert {spec.name for spec in protocol.prompts} == set(sets) and protocol.baseline
