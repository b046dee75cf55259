"""methods/frozen.py: a module's weights leave the graph while inside, and each flag comes back after."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from erasekit.methods.frozen import frozen


def test_inside_no_weight_takes_a_gradient_and_every_flag_comes_back_even_after_an_error():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    net[1].bias.requires_grad_(False)  # a flag that was already off stays off
    flags = [p.requires_grad for p in net.parameters()]
    x = torch.randn(5, 3, requires_grad=True)
    with frozen(net):
        net(x).sum().backward()
    assert x.grad is not None and all(p.grad is None for p in net.parameters())
    assert [p.requires_grad for p in net.parameters()] == flags
    with pytest.raises(RuntimeError), frozen(net):
        raise RuntimeError("inside")
    assert [p.requires_grad for p in net.parameters()] == flags
