"""Part 4's optional adversaries of ACE (package docstring): soft tokens and the denoising term.

:class:`_SoftTokens` is the second adversary, the ``soft_prompt`` attack itself: learned input
embeddings in front of every target prompt, through the text encoder (``soft_tokens > 0``).
:class:`_Denoiser` adds the denoising loss of the gated U-Net on the original model's images of the
concept (``loss="denoise"``), with :func:`_live_gate` installing the trainable gated update in the
U-Net so that gradients flow into the outer loop's parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...diffusion import alphas_cumprod, draw_latents, noisy, predict
from ...edit import applied_gates
from ...errors import ConfigError
from ...gate import sync_processors
from ...text import TextEncoder
from .. import EraseRequest
from ..frozen import frozen
from .config import ACEConfig
from .prompts import Rows, prompt_sets

GOAL_BATCH = 32  # latents per batched pass of the original (memory on a large model)

if TYPE_CHECKING:
    from .train import _Trainable


class _SoftTokens:
    """The second adversary (package docstring, part 4): learned input embeddings through the encoder."""

    def __init__(self, request: EraseRequest, rows: Rows, cfg: ACEConfig):
        pipe = request.pipe
        if pipe is None:
            raise ConfigError("ACE's soft-token adversary needs the pipeline's text encoder; or pass soft_tokens=0.")
        self.text, self.k, self.lr = TextEncoder(pipe), cfg.soft_tokens, cfg.soft_lr
        n_base = len(request.concepts + cfg.synonyms) * len(cfg.templates)  # the un-augmented target prompts
        base = prompt_sets(request, cfg)[0][:n_base]
        self.slotted = self.text.slotted(base, self.k)
        prompt, pos = rows.where
        keep = (prompt < n_base) & (pos + self.k < rows.states.shape[1])
        self.where = (prompt[keep], pos[keep] + self.k)  # the span rows, shifted behind the slots
        self.goal, self.guide = rows.C[keep], rows.G[keep]
        ids = self.text.tokenizer(request.concepts[0], add_special_tokens=False).input_ids or [0]
        table = self.text.table.weight.detach()
        self.v = table[torch.tensor([ids[i % len(ids)] for i in range(self.k)], device=table.device)].float().clone()

    def attack(self, model: _Trainable, s_err: Any, steps: int) -> Tensor:
        """``steps`` Adam steps on the soft tokens; the rows they produce, detached."""
        v = self.v.requires_grad_()
        opt = torch.optim.Adam([v], lr=self.lr)
        for _ in range(steps):
            x = self._rows(v)
            (v.grad,) = torch.autograd.grad(s_err(model.edited(x), self.goal), [v])
            opt.step()
        self.v = v.detach()
        with torch.no_grad():
            return self._rows(self.v)

    def _rows(self, v: Tensor) -> Tensor:
        states = self.text.encode(self.slotted.ids, slots=self.slotted.slots, slot_embeds=v).float().cpu()
        return states[self.where]


class _Denoiser:
    """Part 4's objective: the gated U-Net under the concept (with the adversary's rows) towards the frozen
    original under the guide, on latents the original draws of the concept (package docstring)."""

    def __init__(self, request: EraseRequest, rows: Rows, cfg: ACEConfig, gen: torch.Generator):
        pipe = request.pipe
        if pipe is None:
            raise ConfigError(
                "ACE's loss='denoise' needs the pipeline: call erasekit.erase(pipe, ...) with no encoder, "
                "or pass loss='kv'."
            )
        self.pipe, self.rows, self.batch = pipe, rows, cfg.denoise_batch
        self.abar = alphas_cumprod(pipe.scheduler)
        n_base = len(request.concepts + cfg.synonyms) * len(cfg.templates)  # the un-augmented target prompts
        self.prompts = torch.linspace(0, n_base - 1, min(cfg.denoise_images, n_base)).round().long()
        n = len(self.prompts)
        empty = request.encoder([""]).states.expand(n, -1, -1)
        # [n, C, h, w] latents of the concept by the original model
        x0 = draw_latents(pipe, rows.states[self.prompts], empty, cfg.denoise_steps, cfg.seed)
        # every round's draws up front, and the frozen original's goals GOAL_BATCH draws at a time: one batched
        # pass of the original costs what a few per-round calls did (a small U-Net's call is mostly per-call
        # overhead), and the chunks past the round the stopping rule ends at are never computed
        n_draws = cfg.epochs * self.batch
        which = torch.randint(n, (n_draws,), generator=gen)  # [n_draws] each draw's image
        self.t = torch.randint(len(self.abar), (n_draws,), generator=gen)
        noise = torch.randn((n_draws, *x0.shape[1:]), generator=gen).to(x0.device)  # the CPU's stream on any device
        self.pick, self.x_t = self.prompts[which], noisy(x0[which], noise, self.t, self.abar)
        # ε_orig(x_t, guide) [m, C, h, w] of the first m draws, grown by goal()
        self._goals = self.x_t.new_empty((0, *self.x_t.shape[1:]))

    @torch.no_grad()
    def goal(self, draws: slice) -> Tensor:
        """``ε_orig(x_t, guide)`` of ``draws`` (``[b, C, h, w]``), GOAL_BATCH more computed whenever a round passes the
        ones computed so far."""
        while len(self._goals) < draws.stop:
            chunk = slice(len(self._goals), len(self._goals) + GOAL_BATCH)
            guides = self.rows.guide_states[self.pick[chunk]]
            self._goals = torch.cat([self._goals, predict(self.pipe.unet, self.x_t[chunk], self.t[chunk], guides)])
        return self._goals[draws]

    def original_loss(self, derived: Tensor, gen: torch.Generator) -> Tensor:
        """``mean ‖ε_orig(x_t, c') − ε_orig(x_t, guide)‖²``: the frozen original's reading of token states ``derived
        [b, L, d]`` (no update, as where the gate stays shut), each on a noisy latent drawn from every round's pool,
        against the guide's on the same latent (:mod:`.inverse`, the shut cases' term)."""
        n = len(self.x_t)
        pick = torch.randint(n, (len(derived),), generator=gen)
        goal = self.goal(slice(0, n))[pick]
        with frozen(self.pipe.unet):
            pred = predict(self.pipe.unet, self.x_t[pick], self.t[pick], derived)
        return F.mse_loss(pred, goal)

    def loss(self, model: _Trainable, E: Tensor, layers: list, round_: int) -> Tensor:
        """``mean ‖ε_edit(x_t, concept with E) − ε_orig(x_t, guide)‖²`` over round ``round_``'s ``denoise_batch``
        draws."""
        draws = slice(round_ * self.batch, (round_ + 1) * self.batch)
        x_t, t, prompts, goal = self.x_t[draws], self.t[draws], self.pick[draws], self.goal(draws)
        states = self.rows.states[prompts].clone()  # [b, L, d]
        for b, p in enumerate(prompts.tolist()):
            mine = self.rows.where[0] == p
            states[b, self.rows.where[1][mine]] = E[mine]  # the adversarial rows in the prompt's sequence
        unet = self.pipe.unet
        # the U-Net's own weights stay out of the graph: its backward then computes no weight gradient and
        # accumulates none into the frozen original
        with frozen(unet), _live_gate(unet, model, layers):
            pred = predict(unet, x_t, t, states)
        return F.mse_loss(pred, goal)


@contextmanager
def _live_gate(unet: torch.nn.Module, model: _Trainable, layers: list) -> Iterator[None]:
    """``unet`` with the trainable gated update installed (gradients flow into ``model``)."""
    applied = applied_gates(unet)
    # U, A stay on the CPU with the K/V rows; their copies on the U-Net's device pass the gradient back
    live = {
        t.name: (t.weight.detach().float() @ model.U.to(t.weight.device), model.A.to(t.weight.device)) for t in layers
    }
    sync_processors(unet, [*applied, (model.token_gate, live)])
    try:
        yield
    finally:
        sync_processors(unet, applied)
