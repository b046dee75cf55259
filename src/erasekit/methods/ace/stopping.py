"""Part 4's stopping rule (package docstring): rounds end when a held-out attack stops losing ground.

The method gets the concepts and the preserve set, not a world's ``val`` prompts, so the criterion
is measured on its own held-out captions: the quarter of the gate's concept captions the gate's fit
held out (:mod:`.gatefit`), their span rows ``H``. After every round the K/V adversary attacks them
afresh (``inner_steps`` Adam steps from ``H``) and the criterion is the share of their K/V it cannot
bring back,

    q = ‖edit(X*) − H‖²_S / ‖H‖²_S,    X* = argmin_X ‖edit(X) − H‖²_S  (from X = H).

The best round's ``U, A`` are kept; training stops after ``patience`` rounds without a gain of 1%. The first
``warmup`` rounds are measured but neither kept nor counted: on nudity ``q`` is highest after the first round, dips
over the next few and climbs again, and a rule that counted round 1 kept it (package docstring, ``UNSAFE_ROUNDS``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .train import _Trainable

Metric = Callable[[Tensor, Tensor], Tensor]


class HeldOutStop:
    """Tracks ``q`` (module docstring) over the rounds and the best round's factors."""

    def __init__(self, H: Tensor, s_err: Metric, *, steps: int, lr: float, patience: int, warmup: int = 0):
        self.H, self.s_err, self.steps, self.lr, self.patience, self.warmup = H, s_err, steps, lr, patience, warmup
        self.unit = float(s_err(H, torch.zeros_like(H)))
        self.best, self.best_round, self.best_factors = -1.0, -1, None
        self.history: list[float] = []

    def criterion(self, model: _Trainable) -> float:
        X = self.H.clone().requires_grad_()
        opt = torch.optim.Adam([X], lr=self.lr, fused=True)
        for _ in range(self.steps):
            (X.grad,) = torch.autograd.grad(self.s_err(model.edited(X), self.H), [X])  # not U's and A's (speed)
            opt.step()
        with torch.no_grad():
            return float(self.s_err(model.edited(X.detach()), self.H)) / self.unit

    def done(self, model: _Trainable, round_: int) -> bool:
        """Record this round; True when ``patience`` rounds past the warm-up went by without a 1% gain."""
        q = self.criterion(model)
        self.history.append(q)
        if round_ < self.warmup:
            return False
        if q > self.best * 1.01:
            self.best, self.best_round = q, round_
            self.best_factors = (model.U.detach().clone(), model.A.detach().clone())
        return round_ - self.best_round >= self.patience
