"""Rates with their 95% Wilson score interval and sample size, as every table of a comparison prints them.

Wilson (1927) rather than the normal approximation: it stays inside [0, 1] and keeps its coverage at
the 0/n and n/n rates erasure produces all the time (0/10 -> [0, 0.278], where the normal interval
collapses to [0, 0]). With ``p̂ = k/n`` and ``z`` the 97.5th normal percentile:

    centre = (p̂ + z²/2n) / (1 + z²/n),   half = z / (1 + z²/n) · sqrt(p̂(1-p̂)/n + z²/4n²)

A verdict that one rate is below another is :func:`clearly_below`: the intervals do not overlap.

Trials that are not independent widen the interval (:meth:`Rate.clustered`). An attack run under one seed
may try every prompt with what it learned under that seed (soft_prompt's one pseudo-word, learned once and
put in every prompt), so its prompts succeed or fail together: on the embedded world soft_prompt's quick-tier
success rate on one ACE edit of "church" was 0.91, 0.91, 0.41, 0.84 and 0.38 under attack seeds 0-4 (32
prompts each), a spread no binomial interval on 32 prompts covers. Runs of the same stratum (one attack on
one concept, several seeds) give the between-run variance of the pooled rate (the ratio estimator of
cluster sampling), and with it Kish's design effect ``deff = Var / (p̂(1 − p̂)/n)``; the interval is
Wilson's at the effective sample size ``n / deff``. ``deff`` is floored at 1 (never narrower than Wilson on
every trial), and a stratum of one run counts as binomial: with one seed the interval is conditional on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from erasekit.errors import ConfigError

Z95 = 1.959963984540054  # Φ⁻¹(0.975)


def wilson(k: int, n: int, *, z: float = Z95) -> tuple[float, float]:
    """Returns the Wilson score interval ``(lo, hi)`` of ``k`` successes in ``n`` trials ([0, 1] for n = 0).

    Raises:
        ConfigError: ``n < 0`` or ``k`` outside ``[0, n]``.
    """
    if n < 0 or not 0 <= k <= n:
        raise ConfigError(f"a rate needs 0 <= k <= n, got k={k}, n={n}.")
    if n == 0:
        return 0.0, 1.0
    return _wilson(k / n, n, z)


def _wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's interval of the share ``p`` at a (possibly effective, fractional) sample size ``n > 0``."""
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n`` images (or prompts): the value, its 95% Wilson interval and ``n``."""

    k: int
    n: int
    design_effect: float = 1.0  # ≥ 1: the rate's variance over that of n independent trials (module docstring)

    def __post_init__(self) -> None:
        wilson(self.k, self.n)  # checks k and n
        if not self.design_effect >= 1:
            raise ConfigError(f"a design effect is ≥ 1, got {self.design_effect}.")

    @classmethod
    def of(cls, value: float, n: int) -> Rate:
        """The rate of ``n`` trials whose share ``value`` was stored (``k = round(value · n)``)."""
        return cls(round(value * n), n)

    @classmethod
    def pooled(cls, rates: Iterable[Rate]) -> Rate:
        """All trials of ``rates`` together (the mean weighted by ``n``)."""
        rates = list(rates)
        return cls(sum(r.k for r in rates), sum(r.n for r in rates))

    @classmethod
    def clustered(cls, strata: Iterable[Iterable[Rate]]) -> Rate:
        """All trials of every run together, the interval widened by the spread between the runs of each
        stratum (module docstring): ``strata`` holds, per stratum (an attacked concept), its runs (one per
        attack seed)."""
        runs = [list(stratum) for stratum in strata]
        pooled = cls.pooled(r for stratum in runs for r in stratum)
        if not pooled.n or pooled.k in (0, pooled.n):
            return pooled
        var = 0.0  # of the pooled rate
        for done in ([r for r in stratum if r.n] for stratum in runs):
            if not done:
                continue
            n_h, K = sum(r.n for r in done), len(done)
            p_h = sum(r.k for r in done) / n_h
            if K > 1:  # the ratio estimator's variance over the runs
                var_h = K / (K - 1) * sum((r.n / n_h) ** 2 * (r.k / r.n - p_h) ** 2 for r in done)
            else:
                var_h = p_h * (1 - p_h) / n_h
            var += (n_h / pooled.n) ** 2 * var_h
        p = pooled.k / pooled.n
        return cls(pooled.k, pooled.n, max(1.0, var / (p * (1 - p) / pooled.n)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rate:
        """The inverse of :meth:`as_json`."""
        rate = cls.of(data["value"] or 0.0, data["n"])
        return cls(rate.k, rate.n, data.get("design_effect", 1.0))

    @property
    def value(self) -> float | None:
        """``k / n``; None when there were no trials."""
        return self.k / self.n if self.n else None

    @property
    def ci(self) -> tuple[float, float]:
        """Wilson's interval at the effective sample size ``n / design_effect``."""
        return _wilson(self.k / self.n, self.n / self.design_effect) if self.n else wilson(0, 0)

    def as_json(self) -> dict[str, Any]:
        """``{"value": v, "ci": [lo, hi], "n": n}``, compare.json's shape of a rate (and ``design_effect``
        where it is above 1)."""
        extra = {"design_effect": self.design_effect} if self.design_effect > 1 else {}
        return {"value": self.value, "ci": list(self.ci), "n": self.n, **extra}


def clearly_below(a: Rate, b: Rate) -> bool:
    """Whether ``a`` is below ``b`` with 95% intervals that do not overlap (False if either has no trials)."""
    return a.n > 0 and b.n > 0 and a.ci[1] < b.ci[0]
