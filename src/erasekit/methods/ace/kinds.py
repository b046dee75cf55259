"""Concepts of an ungated kind (styles) erased on every token, the others through the gate, in one edit.

A style is asked for by descriptions ("the man who painted the sunflowers") whose token states the
gate, fitted on the style's name in captions, does not find; on the embedded world's val prompts van
gogh's H_o went from 0.77 gated to 0.95-0.99 ungated (package docstring, the ``style`` settings). In a
request that mixes kinds, a gate shared by all concepts misses the styles' paraphrases the same way:
on the ten-concept scenario the three artists' paraphrases were detected on 1.00, 0.94 and 0.31 of the
test prompts through the gated edit. So when the caller says which concepts are of a kind in
``cfg.ungated_kinds`` (``erase(kinds=...)``; ``erasekit compare`` passes the world's), those are
erased as the ``style`` settings erase a style (no gate, no perturbed rows, ``ungated_rank`` each; ``ungated_ensemble``
trainings averaged, two in the ``object`` settings since stop 56, :mod:`.ensemble`), and
then the rest as ``cfg`` says, on the model with the first part merged; the edit holds both, the ungated
part's rows first::

    ΔW_l = [B_u  B_g] [A_u; A_g],   to_k'(c) = W c + B_u A_u c + g(c) B_g A_g c

(``TokenGate.always`` marks the first rows). The second part learns on top of the first because, learnt
side by side, the styles' update (on every token) undid the gated part's on nudity: on multi10's test
prompts nudity came back on 0.62-0.81 of its prompts over four training seeds against 0.12-0.25 with one
gate, while the gated part alone erased it (0.19). Chosen on val (``erasekit tune ace --scenario multi10
--settings object --grid seed=0,1``, which passes the world's kinds; 16 prompts per group; efficacy /
paraphrases / unseen specificity / H_o): seed 0 0.26 / 0.37 / 0.94 / 0.75 and seed 1 0.24 / 0.34 / 0.88 /
0.75, against one gate's 0.17 / 0.49 / 0.94 / 0.71 and 0.30 / 0.56 / 0.94 / 0.63 (side by side: H_o 0.75 and
0.78, but nudity undone on test). On top or not, the styles' update made nudity's paraphrases more explicit
where the gate stays shut (val: 0.56 detected under the original, 0.69 under the edit), so ACE's ``object``
settings, what compare runs for multi10, put nudity on every token too (``ungated_kinds=("style", "unsafe")``:
val H_o 0.78 and 0.79; bench/ACE_MEASUREMENTS.md).

**Fragments.** A gated concept also goes on every token for its name alone: where the tokenizer splits a word of it
and the original draws the first piece as the concept (``ungated_fragment_render``, mining's ``mine_render`` bar of
0.5 in the ``object`` settings; off by default). A causal encoder's state at the "ten" of "a ten ##ch" has not read
the "##ch": it is the state of "a ten", the number, so the gate cannot open there without opening on every "ten", and
the embedded world's original draws "ten" as a tench (r 0.69-0.79 over seeds 0-4; nudity's "nu" of "nu ##dity"
0.26-0.43; no other object or colour is split). Through multi10's gate alone tench stayed on about half of its val
prompts. Such a concept joins the ungated part and stays in the gated one: taken out of the gate, the gate fitted on
the other five concepts changed (test, ``bench/ace_gate.py --split test --scenario multi10 --settings kind``, seed 0:
open on 24.8% of the unseen concepts' prompts against 3.5%, church's paraphrases found 83.3% against 91.7%); kept in
it, seed 0's gate gives the rates it gave without the rule, to the digit. Chosen on val (``erasekit tune ace
--scenario multi10 --grid seed=0,1,2,3,4``, 16 prompts a group), H_o: without the rule 0.832 0.826 0.806 0.817 0.833
(mean 0.823); tench on every token only 0.839 0.833 0.822 0.848 0.833 (0.835), tench's efficacy 0.12-0.44 against
0.44-0.69; on every token and in the gate 0.849 0.839 0.833 0.845 0.821 (0.837), tench's efficacy 0.19-0.50. Unseen
specificity 0.94 on every seed each way. Tench's paraphrases ("green carp from a freshwater pond") stay on 0.88-1.00
either way. An update on every token that erases "ten" in tench's prompts moves "ten" in any prompt too: the embedded
world asks for no numbers, so that cost is not measured. The pieces and their r are in ``info["ungated_fragments"]``.

The gated part's words and siblings (:mod:`.mining`) are mined on the original model, before the first part
is merged (``ace(...)``): they are what the original reads and draws as the concepts. Mined on the merged
model, once the rank became per word piece (the ungated part twice as wide: 8 pieces for 4 names), the
ten-concept gate changed what it found ("trash" became "junk" at training seed 1, "purple" left its siblings)
and opened on 17.6% of val's neutral prompts; mined on the original, on 0.9-6.5% over seeds 0-4
(bench/ACE_MEASUREMENTS.md, stop 46).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor
from torch.nn.functional import pad

from ...diffusion import check_text_only
from ...edit import Edit
from ...targets import denoiser, find_targets
from .. import EraseRequest
from .config import STYLE, ACEConfig
from .mining import render_agreement
from .prompts import tokenizer_of

UNGATED_INFO = ("rank", "rounds", "best_round", "mined_words")  # the ungated part's, in info["ungated"]
MEMBER_INFO = ("seed", "rounds", "best_round")  # of each of its trainings, where it averages several


def ungated_concepts(request: EraseRequest, cfg: ACEConfig) -> dict[str, dict[str, float]]:
    """The concepts erased on every token, in the request's order (none when ``cfg`` is ungated): those the caller says
    are of a kind in ``cfg.ungated_kinds`` (``{}`` each) and those whose first piece of a word the original draws as
    the concept (``{piece: r}``, :func:`drawn_fragments`), which stay in the gated part too (module docstring)."""
    if not cfg.gated:
        return {}
    by_kind = {c for c in request.concepts if request.kinds.get(c) in cfg.ungated_kinds}
    found = drawn_fragments(request, cfg, [c for c in request.concepts if c not in by_kind])
    return {c: found.get(c, {}) for c in request.concepts if c in by_kind or c in found}


def drawn_fragments(request: EraseRequest, cfg: ACEConfig, concepts: list[str]) -> dict[str, dict[str, float]]:
    """The ``concepts`` whose name holds a word the tokenizer splits ("tench": "ten ##ch") whose first piece the
    original draws as the concept by ``r ≥ cfg.ungated_fragment_render`` (:func:`.mining.render_agreement`), each with
    those pieces and their r (module docstring, "Fragments")."""
    if cfg.ungated_fragment_render is None or request.pipe is None or not concepts:
        return {}
    tokenizer = tokenizer_of(request)
    found = {}
    for concept, guide in zip(request.concepts, request.guides_or(cfg.guide)):
        if concept not in concepts:
            continue
        pieces = [tokenizer(word, add_special_tokens=False).input_ids for word in concept.split()]
        firsts = [tokenizer.decode(ids[:1]).strip() for ids in pieces if len(ids) > 1]  # each split word's first piece
        if not firsts:
            continue
        fix = "Pass ungated_fragment_render=None."
        check_text_only(denoiser(request.pipe), "ACE's check of a name's first pieces", fix)
        r = render_agreement(request, concept, guide, firsts, cfg).tolist()
        drawn = {piece: round(a, 3) for piece, a in zip(firsts, r) if a >= cfg.ungated_fragment_render}
        if drawn:
            found[concept] = drawn
    return found


def part(request: EraseRequest, concepts: tuple[str, ...]) -> EraseRequest:
    """``request`` for ``concepts`` alone (their own guides; the same preserve set and prompts)."""
    guides = None if request.guides is None else tuple(g for c, g in zip(request.concepts, request.guides)
                                                        if c in concepts)  # fmt: skip
    kinds = {c: k for c, k in request.kinds.items() if c in concepts}
    return dataclasses.replace(request, concepts=concepts, guides=guides, kinds=kinds)


@contextmanager
def applied(edit: Edit, request: EraseRequest) -> Iterator[EraseRequest]:
    """``request`` on its U-Net with ``edit`` merged, for the gated part to train on, then ``edit`` removed
    (exactly). Its targets are found again: a :class:`Targets` caches its Gram for the weights it first saw."""
    edit.apply(request.pipe)
    try:
        yield dataclasses.replace(request, targets=find_targets(denoiser(request.pipe)))
    finally:
        edit.remove(request.pipe)


def ungated_config(cfg: ACEConfig, *, mixed: bool = False) -> ACEConfig:
    """How an ungated kind is erased: the ``style`` settings at ``ungated_rank``, averaging the caller's ``ensemble``
    trainings in a request of ungated kinds alone and ``ungated_ensemble`` beside a gated part (``mixed``)."""
    ensemble = cfg.ungated_ensemble if mixed else cfg.ensemble
    return dataclasses.replace(cfg, **STYLE, rank=cfg.ungated_rank, ensemble=ensemble)


def noted(edit: Edit, ungated: dict[str, dict[str, float]]) -> Edit:
    """``edit`` with the first word pieces that put concepts on every token (:func:`ungated_concepts`) in
    ``info["ungated_fragments"]``, where there are any."""
    if any(ungated.values()):
        edit.info["ungated_fragments"] = {c: pieces for c, pieces in ungated.items() if pieces}
    return edit


def joined(request: EraseRequest, cfg: ACEConfig, ungated: Edit, gated: Edit) -> Edit:
    """One edit of both parts: the ungated part's rows first, open on every token (``TokenGate.always``)."""
    assert gated.gate is not None and set(ungated.updates) == set(gated.updates), "two parts of one ACE edit"
    r_u, r_g = ungated.info["rank"], gated.info["rank"]
    updates = {}
    for name in gated.updates:
        B_u, A_u = _rows(ungated.updates[name], r_u)
        B_g, A_g = _rows(gated.updates[name], r_g)
        updates[name] = (torch.cat([B_u, B_g], dim=1), torch.cat([A_u, A_g], dim=0))  # [d_out, r], [r, d_in]
    always = torch.cat([torch.ones(r_u), torch.zeros(r_g)])
    info = {
        **gated.info,  # the gate's rates and the rounds are the gated part's (make_edit adds the request's kinds)
        "rank": r_u + r_g,
        "ungated_concepts": list(ungated.concepts),
        "ungated": _summary(ungated.info),
        "mined_words": [*ungated.info["mined_words"], *gated.info["mined_words"]],
        "mined_render_agreement": {**ungated.info["mined_render_agreement"], **gated.info["mined_render_agreement"]},
    }
    edit = request.make_edit("ace", cfg, updates, guides=request.guides_or(cfg.guide), info=info)
    return dataclasses.replace(edit, gate=dataclasses.replace(gated.gate, always=always))


def _summary(info: dict[str, Any]) -> dict[str, Any]:
    """The ungated part's ``info`` as the joined edit keeps it: an averaged part (``ungated_ensemble``) has no one best
    round, and gives each member's seed and rounds instead (their losses stay out, as one training's do)."""
    summary = {k: info[k] for k in UNGATED_INFO if k in info}
    if "ensemble" in info:
        summary["ensemble"] = [{k: member[k] for k in MEMBER_INFO} for member in info["ensemble"]]
    return summary


def _rows(pair: tuple[Tensor, Tensor], r: int) -> tuple[Tensor, Tensor]:
    """A layer's ``(B, A)`` with exactly ``r`` rows in ``A``: a layer narrower than the part's rank stores its
    dense ``ΔW`` with an identity factor (``closed_form.layer_updates``), ``min(d_out, d_in) ≤ r`` rows, and
    zero rows make up the rest (the same ``ΔW``), so that ``always`` marks the same rows in every layer."""
    B, A = pair
    missing = r - A.shape[0]
    assert missing >= 0, (A.shape, r)
    return pad(B, (0, missing)), pad(A, (0, 0, 0, missing))
