"""A module whose own weights take no gradient for a while: what every trained method runs its frozen original in.

Trained methods backpropagate through the original U-Net (or text encoder) into their own small factors. With
the module's weights requiring gradients, every backward would also compute, and keep, a gradient for each of
them; :func:`frozen` leaves them out of the graph and restores each parameter's flag afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """``module`` without gradients while inside; every parameter's ``requires_grad`` restored on exit."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
