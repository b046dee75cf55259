"""Rates with their 95% Wilson score interval and sample size, as every table of a comparison prints them.

Wilson (1927) rather than the normal approximation: it stays inside [0, 1] and keeps its coverage at
the 0/n and n/n rates erasure produces all the time (0/10 -> [0, 0.278], where the normal interval
collapses to [0, 0]). With ``p̂ = k/n`` and ``z`` the 97.5th normal percentile:

    centre = (p̂ + z²/2n) / (1 + z²/n),   half = z / (1 + z²/n) · sqrt(p̂(1-p̂)/n + z²/4n²)

A verdict that one rate is below another is :func:`clearly_below`: the intervals do not overlap.
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
    p, z2 = k / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n`` images (or prompts): the value, its 95% Wilson interval and ``n``."""

    k: int
    n: int

    def __post_init__(self) -> None:
        wilson(self.k, self.n)  # checks k and n

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
    def from_json(cls, data: Mapping[str, Any]) -> Rate:
        """The inverse of :meth:`as_json`."""
        return cls.of(data["value"] or 0.0, data["n"])

    @property
    def value(self) -> float | None:
        """``k / n``; None when there were no trials."""
        return self.k / self.n if self.n else None

    @property
    def ci(self) -> tuple[float, float]:
        return wilson(self.k, self.n)

    def as_json(self) -> dict[str, Any]:
        """``{"value": v, "ci": [lo, hi], "n": n}``, compare.json's shape of a rate."""
        return {"value": self.value, "ci": list(self.ci), "n": self.n}


def clearly_below(a: Rate, b: Rate) -> bool:
    """Whether ``a`` is below ``b`` with 95% intervals that do not overlap (False if either has no trials)."""
    return a.n > 0 and b.n > 0 and a.ci[1] < b.ci[0]
