"""ACE's gate fit (methods/ace/gatefit.py): τ calibrated on held-out captions and on the caller's preserve prompts."""

from __future__ import annotations

import pytest
import torch

from erasekit.gate import TokenGate
from erasekit.methods.ace.config import ACEConfig
from erasekit.methods.ace.gatefit import Tokens, _slice, fit_gate
from erasekit.methods.ace.neutral import CONTEXTS, in_context

D, K, L = 16, 2, 6


def tokens(n: int, toward: float, gen: torch.Generator) -> Tokens:
    """``n`` prompts of ``L`` random token states, each pulled ``toward`` the concept's directions (axes 0, 1)."""
    states = torch.randn(n, L, D, generator=gen)
    states[..., :K] += toward
    return Tokens(states, torch.ones(n, L, dtype=torch.bool))


@pytest.fixture
def sets():
    gen = torch.Generator().manual_seed(0)
    pos, neg = tokens(64, 6.0, gen), tokens(256, 0.0, gen)
    near, nearer = tokens(40, 1.5, gen), tokens(40, 2.5, gen)  # real prompts of preserved concepts
    return pos, neg, near, nearer, torch.eye(D)[:, :K], torch.zeros(D)


def span_open(pos: Tokens, P: torch.Tensor, mu: torch.Tensor, tau: float) -> float:
    """The share of the held-out concept captions' span tokens that open the gate."""
    held = pos.split()[1]
    return float((held.ratios(P, mu)[held.mask] > tau).float().mean())


def test_preserve_prompts_raise_tau_until_at_most_their_rate_opens_the_gate(sets):
    pos, neg, near, _, P0, mu = sets
    cfg = ACEConfig(gate_steps=20, gate_preserve_rate=0.05)
    _, _, tau_alone, alone = fit_gate(pos, neg, P0, mu, cfg)
    P, _, tau, rates = fit_gate(pos, neg, P0, mu, cfg, near)
    opened = float((near.ratios(P, mu).max(1).values > tau).float().mean())
    assert alone.preserve_prompts is None and alone.n_preserve == 0
    assert rates.n_preserve == 40 and rates.preserve_prompts == opened and round(opened * 40) <= 2  # 5% of 40
    # the captions alone leave the gate open on many of the preserve prompts: the calibration is what shuts it
    assert float((near.ratios(P, mu).max(1).values > tau_alone).float().mean()) > 0.2 and tau > tau_alone
    assert span_open(pos, P, mu, tau) >= 0.9  # the ceiling did not bind
    assert rates.info()["gate_preserve_prompts"] == opened and rates.info()["gate_n_preserve"] == 40


def test_preserve_prompts_never_shut_the_gate_on_the_concepts_own_span_tokens(sets):
    pos, neg, _, nearer, P0, mu = sets
    no_ceiling = ACEConfig(gate_steps=20, gate_preserve_rate=0.05, gate_concept_rate=0.05)
    P, _, tau, _ = fit_gate(pos, neg, P0, mu, no_ceiling, nearer)
    assert span_open(pos, P, mu, tau) < 0.8  # these preserve prompts lie too near the concept to shut them all
    P, _, tau, rates = fit_gate(pos, neg, P0, mu, ACEConfig(gate_steps=20, gate_preserve_rate=0.05), nearer)
    assert span_open(pos, P, mu, tau) >= 0.88 and rates.preserve_prompts > 0.05  # 0.9 of 96 tokens, interpolated


def test_a_preserve_set_the_gate_already_shuts_on_leaves_tau_as_the_captions_set_it(sets):
    pos, neg, _, _, P0, mu = sets
    far = tokens(40, 0.0, torch.Generator().manual_seed(1))
    far.states[..., :K] = 0  # nothing of them in the concept's directions
    cfg = ACEConfig(gate_steps=20, gate_preserve_rate=0.05)
    assert fit_gate(pos, neg, P0, mu, cfg, far)[2] == fit_gate(pos, neg, P0, mu, cfg)[2]


def test_by_default_preserve_prompts_are_measured_and_leave_tau_alone(sets):
    pos, neg, _, nearer, P0, mu = sets
    cfg = ACEConfig(gate_steps=20)
    P, _, tau, rates = fit_gate(pos, neg, P0, mu, cfg, nearer)
    assert tau == fit_gate(pos, neg, P0, mu, cfg)[2] and rates.n_preserve == 40
    assert rates.preserve_prompts == float((nearer.ratios(P, mu).max(1).values > tau).float().mean()) > 0.2


def test_the_margin_sets_tau_up_the_log_gap_from_the_negatives_bound_to_the_concepts(sets):
    pos, neg, _, _, P0, mu = sets
    fits = [fit_gate(pos, neg, P0, mu, ACEConfig(gate_steps=20, gate_margin=m)) for m in (0.0, 0.5)]
    P = fits[0][0]
    torch.testing.assert_close(fits[1][0], P)  # the margin moves τ only, not the fitted subspace
    held = pos.split()[1]
    ceiling = float(torch.quantile(held.ratios(P, mu)[held.mask], 0.1))  # 90% of the concept's span tokens above
    low, mid = fits[0][2], fits[1][2]
    assert low < mid < ceiling and mid == pytest.approx((low * ceiling) ** 0.5, rel=1e-5)
    assert span_open(pos, P, mu, mid) >= 0.9
    assert fits[1][3].neutral_prompts <= fits[0][3].neutral_prompts  # fewer held-out negatives open it, not more


def test_each_fit_step_reads_the_next_slice_of_one_shuffle_so_a_pass_sees_every_token_once():
    rows = torch.arange(10)[:, None]
    seen = torch.cat([_slice(rows, step, 4) for step in range(5)]).squeeze(1).tolist()  # two passes of 10
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert _slice(rows, 3, 16) is rows  # a class smaller than the batch: all of it, every step


def test_a_whole_prompt_gate_is_calibrated_on_the_prompts_as_it_reads_them(sets):
    pos, neg, _, _, P0, mu = sets
    spiked = neg.states.clone()
    spiked[1::2, 2, :K] += 6.0  # half the negatives (every held-out one) hold a token as near the concept as its own
    neg = Tokens(spiked, neg.mask)
    per_token = fit_gate(pos, neg, P0, mu, ACEConfig(gate_steps=20))
    P, s, tau, rates = fit_gate(pos, neg, P0, mu, ACEConfig(gate_steps=20, gate_whole_prompt=True))
    held = pos.split()[1]
    assert span_open(pos, *per_token[:1], mu, per_token[2]) < 0.5  # the spikes push τ past the concept's own tokens
    assert float((held.ratios(P, mu, True)[held.mask] > tau).float().mean()) >= 0.9
    gate = TokenGate(P, mu, s, tau, whole_prompt=True)  # the rates are the gate's own on the held-out negatives
    opened = gate.opens(neg.split()[1].states).any(1).float().mean()
    assert rates.neutral_prompts == pytest.approx(float(opened)) and rates.neutral_prompts <= 0.05


def test_the_held_out_quarter_spans_the_caption_forms_and_first_names():
    # every fourth caption names the concept behind a first name and the forms cycle by twelve: holding out every
    # fourth held out three forms, all first-named, which the fit then never saw
    pairs = in_context("church", 96, seed=0, first_names=True)
    held = Tokens.held_out(len(pairs))
    index = held.nonzero().flatten().tolist()
    assert len(index) == 24 and torch.equal(held, Tokens.held_out(len(pairs)))  # a quarter, the same every call
    assert len({i % len(CONTEXTS) for i in index}) >= 10
    first_named = [i for i in index if i % 4 == 3]
    assert 0 < len(first_named) < len(index)
