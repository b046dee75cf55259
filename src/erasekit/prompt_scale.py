"""A prompt-scaled edit: the whole low-rank update, in every layer, times one multiplier per prompt.

The multiplier ``m`` says how close a prompt is to the erased concepts, read from the token states
``S [L, d]`` the denoiser receives (``encoder_hidden_states``) against each concept's states
``C_k [L, d]`` (the same encoder, the concept alone as the prompt), with ``J_k`` the concept's word
positions (not its start, end or padding tokens):

    cosine(S, C_k) = cos(vec S, vec C_k)                                 the whole padded sequences
    tokens(S, C_k) = |{j ∈ J_k : max_{i ≥ 1} cos(S_i, C_k,j) ≥ τ}| / |J_k|   share of the concept's words found
    m(S)           = max_k max(cosine, tokens)                          (``metric`` picks one or both)
    layer(x)       = W x + b + m · B A x

``tokens`` stands in for a share of shared token *ids*: the denoiser is handed states, not ids (a
pipeline given ``prompt_embeds`` never has any), so a concept word counts as present when some
position of the prompt holds a state within cosine ``τ`` of that word's state. Position 0 (the start
token, whose state is nearly or exactly the same for every prompt) is skipped; the prompt's end and
padding positions cannot be told from its states and are searched too.

Classifier-free guidance asks the denoiser for the same latents under two prompts in one batch,
``[negative; positive]``. When the two halves of a batch hold bit-identical latents, both rows of a
pair take the positive (second-half) row's multiplier, so guidance contrasts the two prompts under
one model, not under two. (A batch without guidance whose halves happen to share their latents is
paired the same way.)

``m B A x`` depends on the prompt, so it cannot be merged into ``W``: :func:`sync_hooks` puts a
forward pre-hook on the U-Net that computes ``m`` per batch row and a forward hook on every adapted
``nn.Linear`` that adds ``m[b] · B A x`` to row ``b``. It composes with merged weights and with the
token gate's processors (they call the same ``nn.Linear``), and removing the last prompt-scaled edit
removes every hook.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError, EditStateError

Metric = Literal["cosine", "tokens", "cosine_tokens"]


def check_settings(metric: str, threshold: float, *, names: tuple[str, str] = ("metric", "threshold")) -> None:
    """Refuse an unknown ``metric`` or a ``threshold`` outside [-1, 1] (a config checks its own fields with it,
    under its own ``names``, before any training).

    Raises:
        ConfigError: naming the field and what it accepts.
    """
    if metric not in get_args(Metric):
        raise ConfigError(f"The prompt-scale {names[0]} must be one of {get_args(Metric)}, got {metric!r}.")
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"The prompt-scale {names[1]} is a cosine, in [-1, 1]; got {threshold}.")


@dataclass(frozen=True)
class PromptScale:
    """``m(S) = max_k max(cosine(S, C_k), tokens(S, C_k))`` (see the module docstring).

    Attributes:
        states: ``[K, L, d]`` the concepts' token states.
        words: ``[K, L]`` bool, the concepts' word positions (at least one per concept).
        metric: ``"cosine"``, ``"tokens"`` or ``"cosine_tokens"`` (the larger of the two).
        threshold: ``τ``, the cosine at which a concept word counts as present in the prompt.
    """

    states: Tensor
    words: Tensor
    metric: Metric = "cosine_tokens"
    threshold: float = 0.7

    def __post_init__(self) -> None:
        check_settings(self.metric, self.threshold)
        if self.states.ndim != 3 or tuple(self.words.shape) != tuple(self.states.shape[:2]):
            raise ConfigError(
                f"A prompt scale needs concept states [K, L, d] and word positions [K, L], got "
                f"{tuple(self.states.shape)} and {tuple(self.words.shape)}."
            )
        if not bool(self.words.bool().any(1).all()):
            raise ConfigError("Every concept of a prompt scale needs at least one word position (words[k].any()).")

    def __call__(self, x: Tensor) -> Tensor:
        """``m [B]`` for prompt states ``x [B, L, d]``, float32 (differentiable through ``cosine``).

        Raises:
            ConfigError: ``x`` is not ``[B, L, d]`` of the concepts' ``L`` and ``d``.
        """
        if x.ndim != 3 or x.shape[1:] != self.states.shape[1:]:
            raise ConfigError(
                f"This edit scales itself by prompt states [B, {self.states.shape[1]}, {self.states.shape[2]}] "
                f"(its concepts' length and width), but the denoiser got {tuple(x.shape)}: it was made for another "
                "text encoder or context length."
            )
        x, C = x.float(), self.states.to(x.device, torch.float32)
        scores = []
        if self.metric in ("cosine", "cosine_tokens"):
            scores.append(F.cosine_similarity(x.flatten(1)[:, None], C.flatten(1)[None], dim=-1))  # [B, K]
        if self.metric in ("tokens", "cosine_tokens"):
            cos = torch.einsum("bid,kjd->bkij", F.normalize(x[:, 1:], dim=-1), F.normalize(C, dim=-1))
            words = self.words.to(x.device).bool()
            found = (cos.amax(2) >= self.threshold) & words  # [B, K, L]: concept word j seen somewhere in the prompt
            scores.append(found.sum(-1) / words.sum(-1))
        return torch.stack(scores).amax(0).amax(-1)

    def tensors(self) -> dict[str, Tensor]:
        return {"states": self.states.float().contiguous(), "words": self.words.float().contiguous()}

    def scalars(self) -> dict[str, Any]:
        return {"metric": self.metric, "threshold": self.threshold}

    def summary(self) -> dict[str, Any]:
        """What ``erasekit info`` shows of it."""
        return {
            **self.scalars(),
            "concepts": self.states.shape[0],
            "note": "Edit.load(path).apply(pipe) keeps the per-prompt multiplier; pipe.load_lora_weights and kohya "
            "exports apply the update at multiplier 1 to every prompt",
        }


def paired_multipliers(scale: PromptScale, sample: Tensor, states: Tensor) -> Tensor:
    """``m [B]`` per batch row; under a guidance pair (bit-identical latent halves) both rows take the second's."""
    m = scale(states)
    n = len(m) // 2
    if len(m) % 2 == 0 and n and torch.equal(sample[:n], sample[n:]):
        m = torch.cat([m[n:], m[n:]])
    return m


class _Live:
    """One applied prompt-scaled edit's multipliers for the U-Net call in progress (None between calls)."""

    def __init__(self, scale: PromptScale):
        self.scale, self.m = scale, None


def _inputs(args: tuple, kwargs: dict) -> tuple[Tensor, Tensor]:
    """``(sample, encoder_hidden_states)`` of a U-Net call, by keyword or position."""
    sample = kwargs["sample"] if "sample" in kwargs else args[0]
    states = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
    if states is None:
        raise ConfigError(
            "A prompt-scaled edit is applied, but the U-Net was called without encoder_hidden_states: its "
            "multiplier is read from the prompt's token states. Pass them, or remove the edit."
        )
    return sample, states


def _layer_hook(live: _Live, B: Tensor, A: Tensor):
    def hook(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
        if live.m is None:
            raise EditStateError(
                "A layer of a prompt-scaled edit ran outside a U-Net forward, so there is no prompt to scale it by. "
                "Call the whole U-Net, or remove the edit first."
            )
        x = args[0]
        if x.shape[0] != live.m.shape[0]:
            raise EditStateError(
                f"A prompt-scaled layer got a batch of {x.shape[0]} rows for a U-Net batch of {live.m.shape[0]}: "
                "it cannot tell which prompt each row belongs to."
            )
        m = live.m.to(out.dtype).view(-1, *([1] * (out.ndim - 1)))
        return out + m * (x @ A.to(x.device, x.dtype).T @ B.to(x.device, x.dtype).T)

    return hook


_HOOKS = "_erasekit_prompt_scale_hooks"  # on a U-Net: the handles of the hooks sync_hooks registered


def sync_hooks(unet: nn.Module, scaled: list[tuple[PromptScale, Mapping[str, tuple[Tensor, Tensor]]]]) -> None:
    """Make the U-Net's hooks reflect ``scaled`` (the applied prompt-scaled edits, oldest first).

    Every hook registered before is removed first, so with ``scaled`` empty the U-Net is left exactly
    as it was.
    """
    for handle in unet.__dict__.pop(_HOOKS, []):
        handle.remove()
    if not scaled:
        return
    lives = [_Live(scale) for scale, _ in scaled]

    def compute(module: nn.Module, args: tuple, kwargs: dict) -> None:
        sample, states = _inputs(args, kwargs)
        for live in lives:
            live.m = paired_multipliers(live.scale, sample, states)

    def clear(*_: Any) -> None:
        for live in lives:
            live.m = None

    handles = [
        unet.register_forward_pre_hook(compute, with_kwargs=True),
        unet.register_forward_hook(clear, always_call=True),
    ]
    modules = dict(unet.named_modules())
    for live, (_, updates) in zip(lives, scaled):
        for name, (B, A) in updates.items():
            handles.append(modules[name].register_forward_hook(_layer_hook(live, B, A)))
    unet.__dict__[_HOOKS] = handles
