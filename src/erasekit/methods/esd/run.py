"""The run every LoRA trainer (ESD, SPM, Receler, AdvUnlearn) wraps around its own loss: U-Net and scheduler,
a seeded LoRA and its optimizer, resume, progress (``request.progress``) and checkpoints.

One ``torch.Generator`` seeded with ``cfg.seed`` draws the LoRA's ``A`` and then everything random in the run
(never the global RNG), so a state (:class:`ESDState`, or a trainer's subclass that appends its own fields)
that puts back factors, optimizer and generator makes a resumed run end bit for bit as the uninterrupted one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

import torch
from diffusers import DDIMScheduler
from torch import Tensor, nn

from ...diffusion import check_text_only
from ...errors import ConfigError
from .. import EraseRequest
from .config import ESDState
from .lora import _LoRA

S = TypeVar("S", bound=ESDState)


@dataclass(frozen=True)
class Checkpoints(Generic[S]):
    """Where a LoRA trainer hands its run's state, and the state it goes on from.

    Attributes:
        save: called with the run's state (:class:`ESDState` or the trainer's subclass of it) every ``every``
            iterations; the caller keeps it, or writes it with ``torch.save(dataclasses.asdict(state), path)``.
        every: iterations between two states.
        resume: a state from ``save``: the run goes on from it and ends as the uninterrupted run would have,
            bit for bit. Its config must be this run's but for ``iterations``.
    """

    save: Callable[[S], None] | None = None
    every: int = 100
    resume: S | None = None


class LoRARun(Generic[S]):
    """A trainer's run: ``cfg`` is its config dataclass (``seed``, ``rank``, ``lr`` and ``iterations`` read here).

    Args:
        request: the pipeline (for its U-Net and scheduler).
        cfg: the trainer's config.
        layers: the layers to train, given the U-Net (ESD, SPM and Receler adapt its layers; AdvUnlearn's
            function ignores it and returns the text encoder's).
        timesteps: the DDIM schedule's length.
        checkpoints: where the state goes (:meth:`save`) and what it resumes from (:meth:`resume`).
        optimizer: its class, built on the LoRA factors with ``lr=cfg.lr``.
    Raises:
        ConfigError: no pipeline behind the request, or an SDXL U-Net.
    """

    def __init__(
        self,
        request: EraseRequest,
        cfg: Any,
        layers: Callable[[nn.Module], dict[str, nn.Linear]],
        timesteps: int,
        checkpoints: Checkpoints[S] = Checkpoints(),
        *,
        optimizer: type[torch.optim.Optimizer] = torch.optim.Adam,
    ):
        self.cfg, self.progress, self.checkpoints = cfg, request.progress, checkpoints
        self.unet, self.scheduler = _pipeline_parts(request, type(cfg).__name__.removesuffix("Config"))
        self.scheduler.set_timesteps(timesteps)
        param = next(self.unet.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.lora = _LoRA(layers(self.unet), cfg.rank, self.generator, self.device)
        self.optimizer = optimizer(self.lora.parameters(), lr=cfg.lr)
        self.losses: list[float] = []
        size = self.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else size
        self.latent = (self.unet.config.in_channels, h, w)  # one sample's [C, h, w]

    def noise(self, batch: int = 1) -> Tensor:
        """``x_T [batch, C, h, w]`` drawn from the run's generator (on CPU, so it does not depend on the device)."""
        return torch.randn((batch, *self.latent), generator=self.generator).to(self.device, self.dtype)

    def remaining(self) -> range:
        """The iterations still to run: all of them, or those after the resumed state's."""
        return range(len(self.losses), self.cfg.iterations)

    def step(self, objective: Tensor, max_grad_norm: float = 0.0) -> None:
        """One optimizer step on ``objective``, its gradient's norm clipped to ``max_grad_norm`` when > 0."""
        self.optimizer.zero_grad()
        objective.backward()
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.lora.parameters(), max_grad_norm)
        self.optimizer.step()

    def done(self, loss: Tensor) -> bool:
        """Record an iteration's ``loss``, report ``request.progress(done, total)``; whether a state is due (then
        call :meth:`save`)."""
        self.losses.append(float(loss.detach()))
        if self.progress is not None:
            self.progress(len(self.losses), self.cfg.iterations)
        return self.checkpoints.save is not None and len(self.losses) % self.checkpoints.every == 0

    def save(self, state: type[S], *extra: Any) -> None:
        """Hand ``state(<ESDState's fields>, *extra)`` to ``checkpoints.save``: ``extra`` are a subclass's fields."""
        assert self.checkpoints.save is not None
        optimizer = copy.deepcopy(self.optimizer.state_dict())
        base = (asdict(self.cfg), len(self.losses), self.lora.updates(), optimizer, self.generator.get_state())
        self.checkpoints.save(state(*base, list(self.losses), *extra))

    @torch.no_grad()
    def resume(self) -> S | None:
        """Put ``checkpoints.resume``, if any, into this fresh run's LoRA factors, optimizer, generator and losses;
        that state (for the trainer's own fields), or None.

        Raises:
            ConfigError: the state's config differs (but for ``iterations``), or it trains other layers.
        """
        state = self.checkpoints.resume
        if state is None:
            return None
        ours, theirs = asdict(self.cfg), dict(state.config)
        changed = sorted(k for k in ours if k != "iterations" and ours[k] != theirs.get(k))
        if changed:
            raise ConfigError(
                f"Cannot resume: the checkpoint's config differs in {', '.join(changed)} "
                f"({', '.join(f'{k}={theirs.get(k)!r}' for k in changed)}). Only iterations may change on resume."
            )
        if set(state.factors) != set(self.lora.factors) or state.iteration != len(state.losses):
            raise ConfigError(
                "Cannot resume: the checkpoint trains other layers than this U-Net has, or is inconsistent. "
                "Resume on the pipeline it was made from."
            )
        for name, (B, A) in self.lora.factors.items():
            B.copy_(state.factors[name][0])
            A.copy_(state.factors[name][1])
        self.optimizer.load_state_dict(copy.deepcopy(state.optimizer))
        self.generator.set_state(state.generator)
        self.losses = list(state.losses)
        return state


def _pipeline_parts(request: EraseRequest, method: str) -> tuple[nn.Module, DDIMScheduler]:
    """The U-Net and a fresh DDIM scheduler of the request's pipeline (``method``: the trainer's name, for errors)."""
    unet, scheduler = getattr(request.pipe, "unet", None), getattr(request.pipe, "scheduler", None)
    if unet is None or scheduler is None:
        raise ConfigError(
            f"{method} trains against the U-Net, so it needs the pipeline, but the request carries none. "
            "Call erasekit.erase(pipe, ...)."
        )
    check_text_only(unet, method, "Use a closed-form method for it.")
    return unet, DDIMScheduler.from_config(scheduler.config)  # our own copy: the pipeline's is left alone
