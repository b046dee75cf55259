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


def test_the_preserve_set_is_half_of_what_is_left_of_the_erased_kinds_and_the_rest_is_unseen():
    names = EMBEDDED.concepts()
    sc = compare.scenario("van gogh")
    kept, unseen = compare.preserve_set(sc), compare.unseen_set(sc)
    others = [s for s in names["style"] if s != "van gogh"]
    assert len(kept) == len(others) // 2 and set(kept) < set(others)  # a strict subset: some styles stay unseen
    assert kept == compare.preserve_set(compare.scenario("van gogh"))  # the same half every time
    assert set(unseen) == {c for kind in names.values() for c in kind} - set(kept) - {"van gogh"}
    assert compare.preserve_set(compare.scenario("nudity")) == []
    for name in ("style", "object", "unsafe", "multi10"):
        sc = compare.scenario(name)
        kept, unseen = set(compare.preserve_set(sc)), set(compare.unseen_set(sc))
        assert not kept & unseen and not unseen & set(sc.concepts) and not kept & set(sc.concepts)
        assert {EMBEDDED.concept_kind(c) for c in unseen} >= {"object", "color", "style"} - {sc.kind} - {"unsafe"}


def test_erase_inputs_are_the_preserve_set_its_fit_prompts_and_the_kinds_or_only_the_kinds():
    sc = compare.scenario("multi10")
    given = compare.erase_inputs(sc, 3)
    assert given["preserve"] == compare.preserve_set(sc) != []
    fit = {p for c in given["preserve"] for g, p, _ in EMBEDDED.suite_rows(c, n=3, split="fit") if g == "target"}
    assert given["preserve_prompts"] and set(given["preserve_prompts"]) <= fit
    assert given["kinds"] == {c: EMBEDDED.concept_kind(c) for c in sc.concepts} and given["kinds"]["nudity"] == "unsafe"
    assert compare.erase_inputs(sc, 3, takes_preserve=False) == {"preserve": [], "preserve_prompts": [],
                                                                 "kinds": given["kinds"]}  # fmt: skip


@pytest.mark.parametrize("name", ["style", "object", "unsafe", "multi10"])
def test_unseen_prompts_show_only_concepts_no_method_was_given(name):
    sc = compare.scenario(name)
    told = set(sc.concepts) | set(compare.preserve_set(sc))
    sets = compare.scored_sets(sc, 4)
    unseen = [shown for s in sets if s.score == "specificity_unseen" for _, shown in s.rows]
    kept = {shown for s in sets if s.score == "specificity_kept" for _, shown in s.rows}
    assert unseen and not set(unseen) & told and kept <= set(compare.preserve_set(sc))
    assert {s.attribute for s in sets if s.score == "specificity_unseen"} >= {"object", "color", "style"}


def test_nudity_is_unseen_through_its_neutral_phrasings_clothed_persons():
    for name in ("style", "unsafe"):
        sets = {s.name: s for s in compare.scored_sets(compare.scenario(name), 4)}
        assert {shown for _, shown in sets["unseen_unsafe"].rows} == {"person"}
        assert sets["unseen_unsafe"].attribute == "unsafe"
    assert "kept_unsafe" not in {s.name for s in compare.scored_sets(compare.scenario("unsafe"), 4)}


@pytest.mark.parametrize("name", ["style", "object", "unsafe", "multi10"])
def test_fit_val_and_test_are_disjoint(name):
    sc = compare.scenario(name)
    found = compare.splits(sc, 8, n_tuning=4)
    assert set(found) == {"fit", "val", "test"} and all(found.values())
    assert not set(found["fit"]) & set(found["val"]) and not set(found["fit"]) & set(found["test"])
    assert not set(found["val"]) & set(found["test"])
    assert set(sc.concepts) | set(compare.preserve_set(sc)) <= set(found["fit"])
    assert set(found["test"]) == {p for _, p, _ in compare.prompt_rows(sc, 8)}


def test_a_world_whose_splits_overlap_is_refused_naming_the_scenario_and_the_fix(monkeypatch):
    real = type(EMBEDDED).suite_rows

    def leaky(self, concept, *, n=None, split="test"):
        return real(self, concept, n=n)  # every split is the test split

    monkeypatch.setattr(type(EMBEDDED), "suite_rows", leaky)
    sc = compare.scenarios.make_scenario(EMBEDDED, "leaky", ("van gogh",), ("van gogh",), "embedded-style")
    with pytest.raises(ConfigError, match=r"scenario 'leaky'.*both the fit and the val split.*disjoint splits"):
        compare.splits(sc, 4, n_tuning=4)


def test_multi10_prompt_sets_score_every_concept_and_kept_and_unseen_per_kind():
    sc = compare.scenario("multi10")
    rows = compare.prompt_rows(sc, 3)
    sets: dict[str, list[tuple[str, str]]] = {}
    for group, prompt, shown in rows:
        sets.setdefault(group, []).append((prompt, shown))
    kinds = ("object", "color", "style")
    expected = {f"{g}_{c.replace(' ', '_')}" for c in sc.concepts for g in ("target", "generality")}
    assert set(sets) == expected | {f"{g}_{k}" for g in ("kept", "unseen") for k in kinds}
    assert all(len(v) == 3 for v in sets.values())
    assert {shown for _, shown in sets["target_van_gogh"]} == {"van gogh"}
    specific = [shown for name, v in sets.items() if name.startswith(("kept", "unseen")) for _, shown in v]
    assert not set(specific) & set(sc.concepts)
    protocol = compare.scenario_protocol(sc, "prompts.csv", compare.scored_sets(sc, 3))
    assert {spec.name for spec in protocol.prompts} == set(sets) and protocol.baseline
