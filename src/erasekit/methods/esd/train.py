"""ESD's training loop (ESD Eq. 7): sample ``x_t`` with the model being trained, regress onto the negatively
guided prediction of the frozen original, checkpoint and resume bit for bit."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from torch import Tensor, nn

from ...edit import Edit
from ...errors import ConfigError
from ...progress import Progress
from .. import EraseRequest
from .config import ESDConfig, ESDState
from .lora import _LoRA, trained_layers


def _pipeline_parts(request: EraseRequest) -> tuple[nn.Module, DDIMScheduler]:
    """The U-Net and a fresh DDIM scheduler of the request's pipeline."""
    unet, scheduler = getattr(request.pipe, "unet", None), getattr(request.pipe, "scheduler", None)
    if unet is None or scheduler is None:
        raise ConfigError(
            "ESD fine-tunes the U-Net, so it needs the pipeline, but the request carries none. "
            "Call erasekit.erase(pipe, ...)."
        )
    if getattr(unet.config, "addition_embed_type", None) is not None:
        raise ConfigError(
            f"ESD supports U-Nets conditioned on text alone (SD 1.x/2.x); this one also needs "
            f"{unet.config.addition_embed_type!r} conditioning (SDXL). Use a closed-form method for it."
        )
    return unet, DDIMScheduler.from_config(scheduler.config)  # our own copy: the pipeline's is left alone


@contextmanager
def _frozen(unet: nn.Module) -> Iterator[None]:
    """``unet`` without gradients while inside; every parameter's ``requires_grad`` restored on exit."""
    flags = [(p, p.requires_grad) for p in unet.parameters()]
    unet.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@torch.no_grad()
def _sample_till(
    unet: nn.Module, scheduler: DDIMScheduler, x_T: Tensor, c: Tensor, null: Tensor, n_steps: int, guidance: float
) -> Tensor:
    """``x_t`` after ``n_steps`` DDIM steps (η = 0) from ``x_T [1, C, h, w]`` with CFG on ``c [1, L, d]``."""
    x = x_T * scheduler.init_noise_sigma
    cond = torch.cat([null, c])
    for t in scheduler.timesteps[:n_steps]:
        x_in = scheduler.scale_model_input(torch.cat([x, x]), t)
        e_null, e_c = unet(x_in, t, encoder_hidden_states=cond).sample.chunk(2)
        x = scheduler.step(e_null + guidance * (e_c - e_null), t, x).prev_sample
    return x


def train_esd(
    request: EraseRequest,
    cfg: ESDConfig,
    *,
    progress: Progress | None = None,
    checkpoint: Callable[[ESDState], None] | None = None,
    checkpoint_every: int = 100,
    resume: ESDState | None = None,
) -> Edit:
    """An ESD-x or ESD-u edit of ``request.concepts``, trained as a LoRA (ESD Eq. 7).

    Args:
        request: the concepts and the pipeline (for its U-Net).
        cfg: the hyper-parameters.
        progress: called as ``progress(done, total)`` after every iteration.
        checkpoint: called with the run's :class:`ESDState` every ``checkpoint_every`` iterations
            (the caller keeps or saves it, e.g. ``torch.save``).
        resume: a state from ``checkpoint``; the run goes on from it and ends as the uninterrupted
            run would have, bit for bit.
    Returns:
        The edit, ``info["losses"]`` the loss of every iteration.
    Raises:
        ConfigError: no pipeline behind the request, guides or a preserve set given, an SDXL U-Net,
            or a ``resume`` state from another config or other layers.
    """
    if request.guides is not None or request.preserve:
        raise ConfigError(
            "ESD erases towards the unconditional prediction and has no preserve term: it takes no guides and "
            "no preserve set. Drop them, or use uce/rece/nullspace."
        )
    unet, scheduler = _pipeline_parts(request)
    scheduler.set_timesteps(cfg.ddim_steps)
    param = next(unet.parameters())
    device, dtype = param.device, param.dtype
    generator = torch.Generator().manual_seed(cfg.seed)
    lora = _LoRA(trained_layers(request, unet, cfg.variant), cfg.rank, generator, device)
    optimizer = torch.optim.Adam(lora.parameters(), lr=cfg.lr)
    losses: list[float] = []
    if resume is not None:
        _restore(resume, cfg, lora, optimizer, generator)
        losses = list(resume.losses)

    emb = request.encoder([*request.concepts, ""]).states.to(device, dtype)  # [n + 1, L, d]
    C, null = emb[:-1], emb[-1:]  # [n, L, d] concepts, [1, L, d] the empty prompt ∅
    size = unet.config.sample_size
    h, w = (size, size) if isinstance(size, int) else size
    shape = (1, unet.config.in_channels, h, w)
    with _frozen(unet), lora.hooked():
        for i in range(len(losses), cfg.iterations):
            k = int(torch.randint(len(C), (1,), generator=generator))  # one concept per iteration
            n = int(torch.randint(cfg.ddim_steps, (1,), generator=generator))  # DDIM steps taken from noise
            x_T = torch.randn(shape, generator=generator).to(device, dtype)
            c = C[k : k + 1]
            x_t = _sample_till(unet, scheduler, x_T, c, null, n, cfg.start_guidance)  # by the model being trained
            t = scheduler.timesteps[n]  # the timestep x_t is at
            with torch.no_grad(), lora.disabled():  # teacher: the frozen original θ*
                e_0, e_p = unet(torch.cat([x_t, x_t]), t, encoder_hidden_states=torch.cat([null, c])).sample.chunk(2)
            e_n = unet(x_t, t, encoder_hidden_states=c).sample  # the model being trained, with grad
            target = e_0 - cfg.negative_guidance * (e_p - e_0)  # ESD Eq. 7
            loss = F.mse_loss(e_n.float(), target.float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(i + 1, cfg.iterations)
            if checkpoint is not None and (i + 1) % checkpoint_every == 0:
                checkpoint(
                    ESDState(
                        asdict(cfg),
                        i + 1,
                        lora.updates(),
                        copy.deepcopy(optimizer.state_dict()),
                        generator.get_state(),
                        list(losses),
                    )
                )
    info = {"variant": cfg.variant, "rank": cfg.rank, "losses": losses}
    return request.make_edit("esd", cfg, lora.updates(), guides=[""] * len(request.concepts), info=info)


@torch.no_grad()
def _restore(
    state: ESDState, cfg: ESDConfig, lora: _LoRA, optimizer: torch.optim.Optimizer, generator: torch.Generator
) -> None:
    """Put ``state`` into a fresh run's LoRA factors, optimizer and generator."""
    ours, theirs = asdict(cfg), dict(state.config)
    changed = sorted(k for k in ours if k != "iterations" and ours[k] != theirs.get(k))
    if changed:
        raise ConfigError(
            f"Cannot resume: the checkpoint's config differs in {', '.join(changed)} "
            f"({', '.join(f'{k}={theirs.get(k)!r}' for k in changed)}). Only iterations may change on resume."
        )
    if set(state.factors) != set(lora.factors) or state.iteration != len(state.losses):
        raise ConfigError(
            "Cannot resume: the checkpoint trains other layers than this U-Net has, or is inconsistent. "
            "Resume on the pipeline it was made from."
        )
    for name, (B, A) in lora.factors.items():
        B.copy_(state.factors[name][0])
        A.copy_(state.factors[name][1])
    optimizer.load_state_dict(copy.deepcopy(state.optimizer))
    generator.set_state(state.generator)
