"""ESD's training loop (ESD Eq. 7): sample ``x_t`` with the model being trained, regress onto the negatively
guided prediction of the frozen original, checkpoint and resume bit for bit."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from torch import Tensor, nn

from ...edit import Edit
from ...errors import ConfigError
from .. import EraseRequest
from ..frozen import frozen
from .config import ESDConfig, ESDState
from .lora import trained_layers
from .run import Checkpoints, LoRARun


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


def train_esd(request: EraseRequest, cfg: ESDConfig, *, checkpoints: Checkpoints[ESDState] = Checkpoints()) -> Edit:
    """An ESD-x or ESD-u edit of ``request.concepts``, trained as a LoRA (ESD Eq. 7).

    Args:
        request: the concepts, the pipeline (for its U-Net) and ``progress``, called after every iteration.
        cfg: the hyper-parameters.
        checkpoints: where the run's :class:`ESDState` goes, and the state it resumes from.
    Returns:
        The edit, ``info["losses"]`` the loss of every iteration.
    Raises:
        ConfigError: no pipeline behind the request, guides or a preserve set given, an SDXL U-Net,
            or a state to resume from another config or other layers.
    """
    if request.guides is not None or request.preserve:
        raise ConfigError(
            "ESD erases towards the unconditional prediction and has no preserve term: it takes no guides and "
            "no preserve set. Drop them, or use uce/rece/nullspace."
        )
    run = LoRARun(request, cfg, partial(trained_layers, request, variant=cfg.variant), cfg.ddim_steps, checkpoints)
    run.resume()
    unet, scheduler, lora = run.unet, run.scheduler, run.lora

    emb = request.encoder([*request.concepts, ""]).states.to(run.device, run.dtype)  # [n + 1, L, d]
    C, null = emb[:-1], emb[-1:]  # [n, L, d] concepts, [1, L, d] the empty prompt ∅
    with frozen(unet), lora.hooked():
        for _ in run.remaining():
            k = int(torch.randint(len(C), (1,), generator=run.generator))  # one concept per iteration
            n = int(torch.randint(cfg.ddim_steps, (1,), generator=run.generator))  # DDIM steps taken from noise
            c = C[k : k + 1]
            x_t = _sample_till(unet, scheduler, run.noise(), c, null, n, cfg.start_guidance)  # by the model trained
            t = scheduler.timesteps[n]  # the timestep x_t is at
            with torch.no_grad(), lora.disabled():  # teacher: the frozen original θ*
                e_0, e_p = unet(torch.cat([x_t, x_t]), t, encoder_hidden_states=torch.cat([null, c])).sample.chunk(2)
            e_n = unet(x_t, t, encoder_hidden_states=c).sample  # the model being trained, with grad
            target = e_0 - cfg.negative_guidance * (e_p - e_0)  # ESD Eq. 7
            loss = F.mse_loss(e_n.float(), target.float())
            run.step(loss)
            if run.done(loss):
                run.save(ESDState)
    info = {"variant": cfg.variant, "rank": cfg.rank, "losses": run.losses}
    return request.make_edit("esd", cfg, lora.updates(), guides=[""] * len(request.concepts), info=info)
