"""ACE's kinds (methods/ace/kinds.py): which concepts go on every token beside the gated ones."""

from __future__ import annotations

import dataclasses

import pytest

import erasekit
from erasekit.methods import EraseRequest
from erasekit.methods.ace import kinds
from erasekit.methods.ace.config import ACEConfig
from erasekit.methods.ace.kinds import drawn_fragments, ungated_concepts
from erasekit.methods.ace.mining import render_agreement
from erasekit.targets import find_targets
from erasekit.text import TextEncoder
from tests.methods.test_ace import KV
from tests.test_end_to_end import embedded_pipeline


def request(pipe, concepts, kinds_of=None) -> EraseRequest:
    return EraseRequest(find_targets(pipe.unet), TextEncoder(pipe), tuple(concepts), pipe, kinds=kinds_of or {})


def test_a_name_whose_first_word_piece_the_original_draws_as_it_goes_on_every_token(tiny_pipe):
    # the tiny tokenizer splits "church" ("chur" first) and "gogh", not "a" or "cat"; a bar of -1 lets every r pass
    req = request(tiny_pipe, ["a church", "van gogh", "a cat"], {"van gogh": "style"})
    cfg = ACEConfig(ungated_fragment_render=-1)
    r = float(render_agreement(req, "a church", " ", ["chur"], cfg)[0])
    found = ungated_concepts(req, cfg)
    assert found == {"a church": {"chur": round(r, 3)}, "van gogh": {}}  # a style by its kind, unrendered
    assert list(found) == ["a church", "van gogh"]  # the request's order
    assert ungated_concepts(req, dataclasses.replace(cfg, ungated_fragment_render=r + 1e-3)) == {"van gogh": {}}
    assert ungated_concepts(req, dataclasses.replace(cfg, gated=False)) == {}


def test_without_a_bar_no_first_piece_is_rendered(tiny_pipe, monkeypatch):
    monkeypatch.setattr(kinds, "render_agreement", lambda *a: pytest.fail("rendered"))
    req = request(tiny_pipe, ["a church", "a cat"])
    assert drawn_fragments(req, ACEConfig(), list(req.concepts)) == {}


def test_such_a_concept_goes_on_every_token_and_through_the_gate_and_the_edit_keeps_its_pieces(tiny_pipe):
    edit = erasekit.erase(tiny_pipe, ["a church", "a cat"], "ace", ungated_fragment_render=-1, rank=3, ungated_rank=2,
                          **KV)  # fmt: skip
    assert edit.info["ungated_concepts"] == ["a church"] and list(edit.info["ungated_fragments"]) == ["a church"]
    assert list(edit.info["ungated_fragments"]["a church"]) == ["chur"]
    assert edit.gate.always is not None and edit.gate.always.sum() > 0
    one_gate = erasekit.erase(tiny_pipe, ["a church", "a cat"], "ace", rank=3, **KV)
    assert one_gate.gate.always is None and "ungated_fragments" not in one_gate.info
    alone = erasekit.erase(tiny_pipe, ["a church"], "ace", ungated_fragment_render=-1, rank=3, ungated_rank=2, **KV)
    assert alone.gate.always is not None and list(alone.info["ungated_fragments"]["a church"]) == ["chur"]


def test_on_the_embedded_world_tench_goes_on_every_token_and_nudity_keeps_its_gate():
    # positive control: MiniLM reads "tench" as "ten ##ch", and the original draws "ten" as a tench (r 0.69-0.79 over
    # seeds 0-4); nudity's "nu ##dity" first piece is drawn otherwise (0.26-0.43); church and parachute are one piece
    pipe = embedded_pipeline()
    req = request(pipe, ["tench", "nudity", "church", "parachute"])
    found = drawn_fragments(req, ACEConfig(ungated_fragment_render=0.5), list(req.concepts))
    assert list(found) == ["tench"] and found["tench"]["ten"] >= 0.6
