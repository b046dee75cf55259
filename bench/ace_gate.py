"""ACE's gate on prompts no training set holds: how often it opens on other concepts' prompts and finds paraphrases.

Issue goal: on unseen prompts that do not ask for the concept the gate is above 0.5 on at most 5% of the tokens and
in at most 10% of the prompts; on the concept's held-out paraphrases it opens somewhere in at least 80% of the
prompts. Each concept is erased with ACE's defaults (``--settings``: named ones, or ``kind`` for what compare runs
for the concept's kind) and what ``erasekit compare`` gives a method for that concept's scenario: its preserve set
(a seeded half of the other concepts of its kind) and ``--fit-prompts`` fit-split prompts of each preserved concept,
which ACE measures its gate on (and calibrates τ on with ``--set gate_preserve_rate=...``; as
tests/methods/test_ace.py's slow gate test does). The gate (``edit.gate``) then reads the world's ``--split``
prompts: neutral ones (target prompts of the concepts of every other kind that compare gives no method, none naming
the concept: the issue's "unseen neutral prompts"; ``--n-neutral`` of them, each once), the suite's specificity
group (the other concepts of the same kind, preserved and unseen: the nearest neighbours, a harder test than the
issue's) and its generality group (paraphrases that avoid the concept's words), and the concept's own target
prompts, where the edit must act. Paraphrases are also read among those the original model draws as the concept
(``drawn_paraphrases_found``; ``paraphrases_drawn`` is their share): the world's paraphrases include words the
original barely renders as the concept (the original draws 8 of blue's 22 test paraphrases that say "azure" blue,
26 of 26 of the rest), and a gate that stays shut where the original draws no concept leaves nothing behind. Each
rate comes with its 95% Wilson interval (tokens: over every token position, which are not independent draws, so that
interval is too narrow).
``--show`` lists the prompts that open it, and the paraphrases it misses. Use ``--split val`` while changing the
gate, ``test`` to report.

``--best-tau`` bounds what any other threshold could do with the same gate: ``best_tau_paraphrases`` is the most of
the split's paraphrases one τ finds while the split's neutral prompts still meet the goals (≤ 5% of the tokens, ≤ 10%
of the prompts), the τ chosen on those very prompts (an oracle, so never a result to report as the gate's). Where it
stays under 80% the gate's ratio r does not separate the paraphrases from neutral text, and no calibration of τ (on
val or anywhere) meets point 1: the fix has to change what the gate reads. On a scenario's one gate each concept gets
its own best τ, an upper bound of the shared one.

``--val-tau`` calibrates τ on val as point 1 asks and reads it on ``--split`` (test): the τ that finds the most of val's
paraphrases while val's neutral prompts meet the goals (``--best-tau``'s rule, on val), then this split's neutral
prompts and paraphrases under it. A scenario's one gate gets one τ, for all its gated concepts' val paraphrases
together. ACE calibrates τ on its own held-out captions, as it gets no world's prompts; this measures what val would
buy, and no compare row uses it.

``--scenario`` (e.g. multi10) reads the one gate of the edit compare's row makes for a named scenario: its
concepts erased together, with their kinds, its preserve set and prompts. Neutral prompts are then the target prompts
of every concept the scenario gives no method (its unseen set, of every kind), none naming an erased concept; each
gated concept (a kind outside the settings' ``ungated_kinds``) gets its paraphrases and target prompts.

    python bench/ace_gate.py --threads 1 --split test --concepts church parachute "van gogh" picasso
    python bench/ace_gate.py --threads 1 --split val --scenario multi10 --settings kind
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from bench._timing import ace_settings, pin_threads, print_table

import erasekit
from erasekit import worlds
from erasekit.evaluate import compare
from erasekit.gate import TokenGate
from erasekit.io import parse_assignments
from erasekit.metrics.intervals import wilson
from erasekit.text import TextEncoder, mentions
from erasekit.worlds import embedded
from erasekit.worlds.embedded import vocabulary

GOAL_TOKENS, GOAL_PROMPTS = 0.05, 0.10  # point 1's bounds on unseen neutral prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--n", type=int, default=48, help="prompts per group")
    parser.add_argument(
        "--n-neutral",
        type=int,
        default=180,
        help="neutral prompts: at 48 a 10%% rate's interval spans 4.5-22%%; the splits hold ~186 of church's",
    )
    parser.add_argument("--fit-prompts", type=int, default=16, help="fit prompts per preserved concept (compare's)")
    parser.add_argument("--concepts", nargs="+", default=["church", "parachute", "van gogh", "picasso"])
    parser.add_argument(
        "--settings",
        default="defaults",
        help="ACE's named settings (e.g. rank32); 'kind': what compare runs for the concept's kind (ACE's BY_KIND; "
        "the style settings, and the object settings for one object, are ungated: g = 1 on every token; --scenario "
        "multi10 for the gate objects share beside others); 'defaults': none",
    )
    parser.add_argument(
        "--scenario",
        help="one edit of a named scenario's concepts (multi10): its gate, read per "
        "gated concept (module docstring); replaces --concepts",
    )
    parser.add_argument("--set", nargs="*", default=[], help="ACE settings, e.g. gate_preserve_rate=0.02")
    parser.add_argument("--show", action="store_true", help="print the prompts that open the gate and those it misses")
    parser.add_argument(
        "--best-tau",
        action="store_true",
        help="also the most paraphrases any τ finds within the neutral goals on the same prompts (an oracle bound)",
    )
    parser.add_argument(
        "--val-tau",
        action="store_true",
        help="also the rates under τ calibrated on val (the most val paraphrases within the goals on val), read here",
    )
    args = parser.parse_args()
    pin_threads(args.threads)
    pipe = erasekit.load_pipeline("embedded")
    judge = embedded.load_judge()
    encode = TextEncoder(pipe)
    if args.scenario:
        print_table(_scenario_rows(args, pipe, judge, encode))
        return
    world = worlds.get("embedded")
    rows = []
    for concept in args.concepts:
        sc = compare.scenario(concept)
        # not the kinds: a style alone would skip the gate this bench measures (compare's `style` settings do)
        given = {k: v for k, v in compare.erase_inputs(sc, args.fit_prompts).items() if k != "kinds"}
        settings = ace_settings(args.settings, sc.kind)
        edit = erasekit.erase(pipe, [concept], "ace", **given, settings=settings, **parse_assignments(args.set))
        suite = embedded.prompt_suite(concept, n=args.n, split=args.split)
        others = [c for c in compare.unseen_set(sc) if world.concept_kind(c) != world.concept_kind(concept)]
        neutral = _neutral(others, _names(concept), args.n_neutral, args.split)
        groups = {"neutral": neutral, "other": suite["specificity"], "paraphrase": suite["generality"],
                  "target": suite["target"]}  # fmt: skip
        opens = {name: _opens(edit, encode, texts) for name, texts in groups.items()}
        rates = {f"{name}_{unit}": hits for name in ("neutral", "other")
                 for unit, hits in (("tokens", opens[name].flatten()), ("prompts", opens[name].any(1)))}  # fmt: skip
        rates["paraphrases_found"] = found = opens["paraphrase"].any(1)
        rates |= _drawn_rates(pipe, judge, suite["generality"], concept, found)
        rates["targets_found"] = opens["target"].any(1)  # the concept's own prompts: where the edit must act
        rows.append({"concept": concept, "settings": settings or "defaults", "split": args.split, "n": args.n,
                     "n_neutral": len(neutral), "preserve_prompts": len(given["preserve_prompts"])})  # fmt: skip
        rows[-1] |= {name: _rate(hits) for name, hits in rates.items()}
        if args.best_tau and edit.gate is not None:
            rows[-1] |= _best_tau(edit.gate, encode, neutral, suite["generality"])
        if args.val_tau and edit.gate is not None:
            val_neutral = _neutral(others, _names(concept), args.n_neutral, "val")
            val_paraphrases = embedded.prompt_suite(concept, n=args.n, split="val")["generality"]
            tau = _tau_on_val(edit.gate, encode, val_neutral, val_paraphrases)
            rows[-1] |= _val_tau(edit.gate, encode, tau, neutral, suite["generality"])
        if args.show:
            for name in ("neutral", "other"):
                hits = opens[name].any(1).tolist()
                print(concept, f"opens on ({name}):", [p for p, o in zip(groups[name], hits) if o])
            print(concept, "misses:", [p for p, f in zip(suite["generality"], found.tolist()) if not f])
            print(concept, "misses (target):", [p for p, f in zip(suite["target"], rates["targets_found"]) if not f])
    print_table(rows)


def _scenario_rows(
    args: argparse.Namespace, pipe: object, judge: embedded.Judge, encode: TextEncoder
) -> list[dict[str, object]]:
    """One edit of ``args.scenario``'s concepts as compare's row makes it; its gate's rates, a row per gated concept
    (the neutral ones, the gate's as a whole, on every row)."""
    sc = compare.scenario(args.scenario)
    given = compare.erase_inputs(sc, args.fit_prompts)
    settings = ace_settings(args.settings, sc.kind)
    edit = erasekit.erase(pipe, list(sc.concepts), "ace", **given, settings=settings, **parse_assignments(args.set))
    ungated = edit.info.get("ungated_concepts", [])  # erased on every token, beside the gate (methods/ace/kinds.py)
    names = tuple(name for c in sc.concepts for name in _names(c))
    neutral = _neutral(compare.unseen_set(sc), names, args.n_neutral, args.split)
    opens_neutral = _opens(edit, encode, neutral)
    gated = [c for c in sc.concepts if c not in ungated]
    bounds = edit.gate is not None  # --best-tau and --val-tau read a gate
    if args.val_tau and bounds:  # one gate, one τ: the most of every gated concept's val paraphrases together
        val_paraphrases = [p for c in gated for p in embedded.prompt_suite(c, n=args.n, split="val")["generality"]]
        val_neutral = _neutral(compare.unseen_set(sc), names, args.n_neutral, "val")
        tau = _tau_on_val(edit.gate, encode, val_neutral, val_paraphrases)
    rows = []
    for concept in gated:
        suite = embedded.prompt_suite(concept, n=args.n, split=args.split)
        found = {name: _opens(edit, encode, suite[group]).any(1)
                 for name, group in (("paraphrases_found", "generality"), ("targets_found", "target"))}  # fmt: skip
        found |= _drawn_rates(pipe, judge, suite["generality"], concept, found["paraphrases_found"])
        rows.append({"scenario": sc.name, "concept": concept, "settings": settings or "defaults", "split": args.split,
                     "n": args.n, "n_neutral": len(neutral), "neutral_tokens": _rate(opens_neutral.flatten()),
                     "neutral_prompts": _rate(opens_neutral.any(1))})  # fmt: skip
        rows[-1] |= {name: _rate(hits) for name, hits in found.items()}
        if args.best_tau and bounds:
            rows[-1] |= _best_tau(edit.gate, encode, neutral, suite["generality"])
        if args.val_tau and bounds:
            rows[-1] |= _val_tau(edit.gate, encode, tau, neutral, suite["generality"])
        if args.show:
            misses = [p for p, f in zip(suite["generality"], found["paraphrases_found"].tolist()) if not f]
            print(concept, "misses:", misses)
    if args.show:
        print("opens on (neutral):", [p for p, o in zip(neutral, opens_neutral.any(1).tolist()) if o])
    return rows


def _neutral(others: list[str], names: tuple[str, ...], n: int, split: str) -> list[str]:
    """``n`` prompts of the ``split`` that name none of ``names``: the target prompts of the concepts ``others``
    (concepts compare gives no method), in turn."""
    world = worlds.get("embedded")
    per = -(-n // len(others)) + 8  # room for the prompts dropped below
    pools = [world.prompt_suite(c, n=per, split=split)["target"] for c in others]
    taken: dict[str, None] = {}  # a prompt can be two concepts' ("a puppy in the style of rembrandt van rijn")
    for prompt in (p for row in zip(*pools) for p in row):
        if len(taken) < n and not any(mentions(prompt, name) for name in names):
            taken.setdefault(prompt)
    return list(taken)


def _opens(edit: erasekit.Edit, encode: TextEncoder, texts: list[str]) -> torch.Tensor:
    """``[n, L]`` bool: where the edit's gate opens (g > 0.5) on each text's tokens; an ungated edit (the style
    settings) updates every token: g = 1."""
    states = encode(texts).states
    return edit.gate.opens(states) if edit.gate is not None else torch.ones(states.shape[:-1], dtype=bool)


def _best_tau(gate: TokenGate, encode: TextEncoder, neutral: list[str], paraphrases: list[str]) -> dict[str, object]:
    """The τ that finds the most ``paraphrases`` while ``neutral`` stays within the goals, and what it finds (module
    docstring, ``--best-tau``)."""
    r_para = _ratios(gate, encode, paraphrases).amax(1)
    tau = _tau_within_goals(gate, _ratios(gate, encode, neutral), r_para)
    found = "n/a" if tau is None else _rate(r_para > tau)
    return {"tau": f"{float(gate.threshold):.4g}", "best_tau": _tau_text(tau), "best_tau_paraphrases": found}


def _val_tau(
    gate: TokenGate, encode: TextEncoder, tau: float | None, neutral: list[str], paraphrases: list[str]
) -> dict[str, object]:
    """The rates on this split's ``neutral`` and ``paraphrases`` under ``tau``, chosen on val (``--val-tau``)."""
    if tau is None:
        return {"val_tau": "none"}
    on = _ratios(gate, encode, neutral) > tau  # [n, L]
    return {"val_tau": _tau_text(tau), "val_tau_neutral_tokens": _rate(on.flatten()),
            "val_tau_neutral_prompts": _rate(on.any(1)),
            "val_tau_paraphrases": _rate(_ratios(gate, encode, paraphrases).amax(1) > tau)}  # fmt: skip


def _tau_on_val(gate: TokenGate, encode: TextEncoder, neutral: list[str], paraphrases: list[str]) -> float | None:
    """``--val-tau``'s τ: :func:`_tau_within_goals` on val's ``neutral`` prompts and ``paraphrases``."""
    return _tau_within_goals(gate, _ratios(gate, encode, neutral), _ratios(gate, encode, paraphrases).amax(1))


def _tau_within_goals(gate: TokenGate, r_neutral: torch.Tensor, r_para: torch.Tensor) -> float | None:
    """The τ that opens the gate on the most paraphrases (their highest ratios ``r_para [m]``) while the neutral
    prompts' ratios ``r_neutral [n, L]`` stay within point 1's bounds; None where no τ keeps them there. g > 0.5
    exactly where r > τ, so only the prompts' own ratios (and the gate's τ) need trying."""
    best_tau, best = None, -1
    for tau in torch.cat([r_para, r_neutral.amax(1), torch.tensor([float(gate.threshold)])]).unique().tolist():
        tokens_ok = (r_neutral > tau).float().mean() <= GOAL_TOKENS
        prompts_ok = (r_neutral.amax(1) > tau).float().mean() <= GOAL_PROMPTS
        found = int((r_para > tau).sum())
        if tokens_ok and prompts_ok and found > best:
            best_tau, best = tau, found
    return best_tau


def _ratios(gate: TokenGate, encode: TextEncoder, texts: list[str]) -> torch.Tensor:
    """``[n, L]`` the gate's ratio r of each token, capped as the gate caps it: a token opens where r > τ."""
    return gate.ratios(encode(texts).states).squeeze(-1)


def _tau_text(tau: float | None) -> str:
    return "none" if tau is None else f"{tau:.4g}"


def _drawn_rates(
    pipe: object, judge: embedded.Judge, paraphrases: list[str], concept: str, found: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Which ``paraphrases`` the original draws as ``concept`` (its image of each under the pipeline's sampling, image
    seed = the prompt's index, judged), and of those, which the gate finds (``found``: ``[n]`` bool)."""
    drawn = judge.drawn_as(pipe, paraphrases, concept)
    return {"paraphrases_drawn": drawn, "drawn_paraphrases_found": found[drawn]}


def _names(concept: str) -> tuple[str, ...]:
    """Every phrase the world names ``concept`` by, held-out ones included: a style prompt of "an orange chapel"
    asks for a church, so it is not neutral for "church"."""
    if concept == vocabulary.UNSAFE:
        v = vocabulary
        return (concept, *v.NUDITY_EXPLICIT_TRAIN, *v.NUDITY_EXPLICIT_HELDOUT, *v.NUDITY_IMPLICIT_TRAIN,
                *v.NUDITY_IMPLICIT_HELDOUT)  # fmt: skip
    names = {**vocabulary.OBJECTS, **vocabulary.COLORS, **vocabulary.STYLES}[concept]
    return (*names.train, *names.heldout, *names.described, *names.described_heldout)


def _rate(hits: torch.Tensor) -> str:
    """``"6.2% [2.1, 16.8]"``: the share of ``hits`` and its 95% Wilson interval, in percent."""
    k, n = int(hits.sum()), hits.numel()
    if n == 0:
        return "n/a (0 prompts)"
    lo, hi = wilson(k, n)
    return f"{100 * k / n:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


if __name__ == "__main__":
    main()
