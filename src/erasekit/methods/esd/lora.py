"""The LoRA ESD trains: ``ΔW = B A`` on frozen ``nn.Linear`` layers, added by forward hooks; which layers it trains."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from torch import Tensor, nn

from ...errors import ConfigError
from .. import EraseRequest
from .config import Variant


class _LoRA:
    """Trainable ``ΔW = B A`` on frozen ``nn.Linear`` layers, added to their outputs by forward hooks.

    ``A [r, d_in]`` is drawn as peft's ``kaiming_uniform_(a=√5)`` (uniform in ``±1/√d_in``) from
    ``generator``, ``B [d_out, r]`` starts at zero, so training starts from the original model.
    """

    def __init__(self, layers: dict[str, nn.Linear], rank: int, generator: torch.Generator, device: torch.device):
        self.layers = layers
        self.factors: dict[str, tuple[Tensor, Tensor]] = {}
        for name, linear in layers.items():
            d_out, d_in = linear.weight.shape
            A = (torch.rand(rank, d_in, generator=generator) * 2 - 1) / math.sqrt(d_in)
            B = torch.zeros(d_out, rank)
            self.factors[name] = (B.to(device).requires_grad_(), A.to(device).requires_grad_())
        self.enabled = True

    def parameters(self) -> list[Tensor]:
        return [t for pair in self.factors.values() for t in pair]

    @contextmanager
    def hooked(self) -> Iterator[None]:
        """Add ``x Aᵀ Bᵀ`` to every layer's output while inside, removing the hooks on exit."""
        handles = [linear.register_forward_hook(self._hook(name)) for name, linear in self.layers.items()]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """The frozen original model (the teacher θ*) while inside."""
        self.enabled = False
        try:
            yield
        finally:
            self.enabled = True

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...], Tensor], Tensor | None]:
        B, A = self.factors[name]

        def hook(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor | None:
            if not self.enabled:
                return None
            x = args[0].to(A.dtype)
            return output + F.linear(F.linear(x, A), B).to(output.dtype)  # W x + B A x

        return hook

    def updates(self) -> dict[str, tuple[Tensor, Tensor]]:
        """``{layer: (B, A)}`` float32 on CPU, detached."""
        return {
            n: (B.detach().float().cpu().clone(), A.detach().float().cpu().clone())
            for n, (B, A) in self.factors.items()
        }


def trained_layers(request: EraseRequest, unet: nn.Module, variant: Variant) -> dict[str, nn.Linear]:
    """The ``nn.Linear`` layers ESD-``variant`` trains, named by their module path in ``unet``.

    ``"x"``: the cross-attention ``to_k``/``to_v`` of ``request.targets``. ``"u"``: every
    ``nn.Linear`` of the self-attention ``Attention`` and ``FeedForward`` modules.
    """
    if variant == "x":
        return {t.name: t.module for t in request.layers(edit_keys=True)}
    layers: dict[str, nn.Linear] = {}
    for name, module in unet.named_modules():
        if (isinstance(module, Attention) and not module.is_cross_attention) or isinstance(module, FeedForward):
            for sub, linear in module.named_modules():
                if isinstance(linear, nn.Linear):
                    layers[f"{name}.{sub}"] = linear
    if not layers:
        raise ConfigError(
            f"{type(unet).__name__} has no self-attention or feed-forward nn.Linear layers for ESD-u; use variant='x'."
        )
    return layers
