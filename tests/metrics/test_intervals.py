"""Wilson intervals against published values, their edge cases, pooling and the no-overlap verdict."""

from __future__ import annotations

import pytest

from erasekit.errors import ConfigError
from erasekit.metrics.intervals import Rate, clearly_below, wilson


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (0, 10, 0.0, 0.2775),  # Brown, Cai & DasGupta (2001); the normal interval would be [0, 0]
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),  # Newcombe (1998), Table I
    ],
)
def test_wilson_matches_known_values(k, n, lo, hi):
    assert wilson(k, n) == pytest.approx((lo, hi), abs=1e-4)


def test_no_trials_is_the_whole_unit_interval_and_no_value():
    assert wilson(0, 0) == (0.0, 1.0)
    assert Rate(0, 0).as_json() == {"value": None, "ci": [0.0, 1.0], "n": 0}


@pytest.mark.parametrize(("k", "n"), [(-1, 4), (5, 4), (0, -1)])
def test_impossible_counts_are_refused(k, n):
    with pytest.raises(ConfigError, match="0 <= k <= n"):
        Rate(k, n)


def test_rates_round_trip_and_pool_by_their_trials():
    rate = Rate.of(0.25, 64)
    assert (rate.k, rate.n) == (16, 64) and Rate.from_json(rate.as_json()) == rate
    assert Rate.pooled([Rate(1, 4), Rate(3, 12)]) == Rate(4, 16)


def test_below_only_where_the_intervals_do_not_overlap():
    assert clearly_below(Rate(0, 32), Rate(20, 32))
    assert not clearly_below(Rate(0, 8), Rate(4, 8))  # 0.00 vs 0.50 on 8 prompts: the intervals overlap
    assert not clearly_below(Rate(20, 32), Rate(0, 32)) and not clearly_below(Rate(0, 0), Rate(8, 8))


def test_runs_that_agree_keep_wilsons_interval_and_runs_that_disagree_widen_it():
    agree = Rate.clustered([[Rate(16, 32), Rate(16, 32), Rate(16, 32)]])
    assert agree == Rate(48, 96) and agree.ci == wilson(48, 96)
    # soft_prompt on one ACE edit of church, attack seeds 0-4 (32 prompts each; metrics/intervals.py)
    runs = [Rate(29, 32), Rate(29, 32), Rate(13, 32), Rate(27, 32), Rate(12, 32)]
    spread = Rate.clustered([runs])
    assert (spread.k, spread.n) == (110, 160)
    # by hand: Var = 5/4 · Σ (1/5)² (p_j − p̂)² = 0.014844, binomial p̂(1 − p̂)/160 = 0.0013428
    assert spread.design_effect == pytest.approx(11.05, abs=0.01)
    lo, hi = spread.ci
    assert lo < wilson(110, 160)[0] - 0.1 and hi > wilson(110, 160)[1] + 0.05
    assert Rate.from_json(spread.as_json()) == spread and spread.as_json()["design_effect"] == spread.design_effect


def test_a_stratum_of_one_run_counts_as_binomial_and_strata_do_not_widen_each_other():
    assert Rate.clustered([[Rate(3, 8)], [Rate(8, 8)]]) == Rate(11, 16)  # one seed per concept: conditional on it
    # two concepts far apart, each with seeds that agree: the concepts' difference is no spread
    assert Rate.clustered([[Rate(0, 8), Rate(0, 8)], [Rate(8, 8), Rate(8, 8)]]).design_effect == 1.0
    assert Rate.clustered([[Rate(0, 8), Rate(0, 8)]]).design_effect == 1.0  # no success at all: nothing to widen
    assert Rate.clustered([[Rate(0, 8), Rate(8, 8)]]).design_effect == 16.0  # all or nothing by seed: n_eff = 1
    with pytest.raises(ConfigError, match="design effect"):
        Rate(1, 2, 0.5)
