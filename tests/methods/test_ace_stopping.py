from types import SimpleNamespace

import pytest
import torch

from erasekit.errors import ConfigError
from erasekit.methods.ace.config import ACEConfig
from erasekit.methods.ace.stopping import HeldOutStop

# nudity's held-out criterion at training seed 0 (stop 47): highest after round 1, a dip, then a climb to round 8
DIP = [0.2007, 0.1637, 0.1453, 0.1434, 0.1569, 0.1765, 0.1868, 0.1884, 0.1824, 0.17, 0.16, 0.15]


def run(curve, *, patience, warmup=0):
    """The rounds a rule ran and the round (0-based) whose factors it kept, on a scripted criterion."""
    stop = HeldOutStop(torch.ones(2, 3), lambda a, b: (a - b).pow(2).sum(), steps=1, lr=0.1, patience=patience,
                       warmup=warmup)  # fmt: skip
    values = iter(curve)
    stop.criterion = lambda model: next(values)
    for round_ in range(len(curve)):
        model = SimpleNamespace(U=torch.full((1,), float(round_)), A=torch.zeros(1))
        if stop.done(model, round_):
            break
    return len(stop.history), stop.best_round, int(stop.best_factors[0])


def test_without_a_warm_up_the_rule_keeps_the_first_round_of_a_dip():
    assert run(DIP, patience=8) == (9, 0, 0)


def test_the_warm_up_rounds_are_neither_kept_nor_counted():
    rounds, best, kept = run(DIP, patience=4, warmup=3)
    assert (best, kept) == (6, 6)  # the climb, not round 1 (round 7's 0.1884 is no 1% gain on 0.1868)
    assert rounds == 11  # patience counts from there: rounds 8-11 without a gain


def test_a_warm_up_as_long_as_the_rounds_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"warmup_rounds.*Lower it or raise epochs"):
        ACEConfig(epochs=3, warmup_rounds=3)
    assert ACEConfig(epochs=3, warmup_rounds=2).warmup_rounds == 2
