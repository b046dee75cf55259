"""The denoising loss the optimisation attacks minimise, in plain sight.

For an image latent ``x0``, noise ``ε`` and a training timestep ``t`` with ``ᾱ_t`` the cumulative
product of the scheduler's alphas (DDPM Eq. 4):

    x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε

and the U-Net's target is what it was trained to predict: ``ε`` (``prediction_type="epsilon"``,
Stable Diffusion 1.x), ``v = √ᾱ_t ε − √(1 − ᾱ_t) x0`` (``"v_prediction"``, SD 2.x 768 and the
embedded world) or ``x0`` (``"sample"``). The U-Net sees ``x_t`` unscaled, as in training.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .errors import ConfigError


def alphas_cumprod(scheduler: Any) -> Tensor:
    """``[T]`` float64 ᾱ of the scheduler's training schedule."""
    values = getattr(scheduler, "alphas_cumprod", None)
    if values is None:
        raise ConfigError(
            f"{type(scheduler).__name__} has no alphas_cumprod: the denoising attacks need a DDPM-family scheduler "
            "(DDIM, PNDM, LMS, Euler, DPM-Solver)."
        )
    return torch.as_tensor(values, dtype=torch.float64)


def noisy(x0: Tensor, noise: Tensor, t: Tensor, abar: Tensor) -> Tensor:
    """``x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε``; ``t`` is ``[B]``, the rest ``[B, C, h, w]``."""
    a = abar.to(x0.device)[t].to(x0.dtype).view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def target(x0: Tensor, noise: Tensor, t: Tensor, abar: Tensor, prediction_type: str) -> Tensor:
    """What the U-Net is trained to predict from ``x_t`` (see the module docstring)."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return x0
    if prediction_type == "v_prediction":
        a = abar.to(x0.device)[t].to(x0.dtype).view(-1, 1, 1, 1)
        return a.sqrt() * noise - (1 - a).sqrt() * x0
    raise ConfigError(f"Unknown prediction_type {prediction_type!r}: expected epsilon, v_prediction or sample.")


def check_text_only(unet: Any, who: str, fix: str) -> None:
    """Raises ConfigError for a U-Net that needs more than text, as SDXL's needs its added time and pooled-text
    conditioning, which :func:`predict` and :func:`draw_latents` do not supply; ``who`` is what cannot run and
    ``fix`` what the caller can do instead."""
    kind = getattr(unet.config, "addition_embed_type", None)
    if kind is not None:
        raise ConfigError(
            f"{who} supports U-Nets conditioned on text alone (SD 1.x/2.x); this one also needs {kind!r} "
            f"conditioning (SDXL). {fix}"
        )


def predict(unet: Any, x_t: Tensor, t: Tensor, states: Tensor) -> Tensor:
    """The U-Net's output ``[B, C, h, w]`` float32, on the U-Net's device, for ``x_t`` at timesteps ``t`` under token
    states ``[B, L, d]``, wherever each of them lives (methods keep their rows on the CPU)."""
    device, dtype = unet.device, unet.dtype
    out = unet(x_t.to(device, dtype), t.to(device), encoder_hidden_states=states.to(device, dtype), return_dict=False)
    return out[0].float()


@torch.no_grad()
def draw_latents(pipe: Any, states: Tensor, negative: Tensor, steps: int, seed: int) -> Tensor:
    """``[n, C, h, w]`` float32 latents the pipeline draws under token states ``[n, L, d]`` (``negative``: the
    unconditional states ``[n, L, d]``), with ``steps`` sampler steps from a generator seeded ``seed``."""
    out = pipe(
        prompt_embeds=states.to(pipe.device, pipe.unet.dtype),
        negative_prompt_embeds=negative.to(pipe.device, pipe.unet.dtype),
        num_inference_steps=steps,
        output_type="latent",
        generator=torch.Generator().manual_seed(seed),
    )
    return out.images.float()


def paper_timesteps(n: int, num_train_timesteps: int) -> list[int]:
    """``n`` evenly spread timesteps, UnlearnDiff's grid (``classifier_.py``: start ``T//n//2``, stride ``T//n``).

    ``n = 50`` of ``T = 1000`` gives 10, 30, ..., 990.
    """
    stride = max(num_train_timesteps // n, 1)
    return list(range(stride // 2, num_train_timesteps, stride))[:n]


def split_steps(steps: int, per_timestep: int) -> list[int]:
    """Adam steps at each timestep: ``ceil(steps / per_timestep)`` timesteps sharing ``steps`` evenly."""
    n = math.ceil(steps / per_timestep)
    return [steps // n + (1 if i < steps % n else 0) for i in range(n)]
