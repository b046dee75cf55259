"""The neutral rows' moments for ACE's concept subspace (part 2), combined across sets without the rows.

The subspace needs only the count, mean and scatter of the neutral rows. Most of those rows are the
concept-free captions, cached per encoder (:mod:`.prompts`): their moments are computed once with them,
and a request's own negatives are added (and the cached captions that name an erased word taken out) by
Chan, Golub and LeVeque's pairwise update, where multiplying the ~60k rows again cost ~0.15 s a call,

    n = n_a + n_b,   δ = mean_b − mean_a,   M = M_a + M_b + δ δᵀ n_a n_b / n.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...closed_form import F64


@dataclass(frozen=True)
class Moments:
    """``n`` rows' ``mean [d]`` and scatter ``Σ (x − mean)(x − mean)ᵀ [d, d]``, float64."""

    n: int
    mean: Tensor
    scatter: Tensor

    @staticmethod
    def of(X: Tensor) -> Moments:
        """Of the rows ``X [n, d]``."""
        mean = X.mean(0, dtype=F64) if len(X) else torch.zeros(X.shape[1], dtype=F64)
        return Moments(len(X), mean, centred_gram(X, mean))

    def __add__(self, other: Moments) -> Moments:
        """The moments of both sets of rows together."""
        if not other.n:
            return self
        if not self.n:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        return Moments(n, mean, self.scatter + other.scatter + torch.outer(delta, delta) * (self.n * other.n / n))

    def __sub__(self, other: Moments) -> Moments:
        """The moments of these rows without ``other``'s, a subset of them."""
        if not other.n:
            return self
        n = self.n - other.n
        mean = (self.mean * self.n - other.mean * other.n) / n
        delta = other.mean - mean
        return Moments(n, mean, self.scatter - other.scatter - torch.outer(delta, delta) * (n * other.n / self.n))


def centred_gram(X: Tensor, mu: Tensor) -> Tensor:
    """``Σ (x − μ)(x − μ)ᵀ [d, d]`` float64 of the rows ``X [n, d]``: centred and multiplied in float32 (the Gram's
    relative error ~1e-7), returned in float64 (a float64 copy of tens of thousands of rows cost more than the rest
    of the subspace)."""
    Z = X.float() - mu.float()
    return (Z.T @ Z).to(F64)
