"""``unlearndiff`` and ``p4d``: a search for ``k`` real prefix tokens, against two objectives.

UnlearnDiff (Zhang et al., ECCV 2024) and P4D (Chin et al., ICML 2024) share the search and differ
in what the edited model's prediction is pulled towards. Both run as OPTML-Group/Diffusion-MU-Attack
runs them (``src/attackers/text_grad_.py``): each of the ``k = 5`` prefix tokens is a relaxed
one-hot ``θ_i`` on the probability simplex over the vocabulary, initialised uniform. An update
samples a one-hot from ``θ`` (straight-through: the backward pass is ``hardtanh`` of the incoming
gradient), embeds it, runs the edited model, takes an Adam step (lr 0.01, weight decay 0.1) and
projects ``θ`` back onto the simplex. Timesteps follow the paper's grid (``classifier_.py``: 50 of
1000, ascending), 40 updates at each; after each timestep ``θ`` is projected to real tokens
(argmax), the edited model draws the prompt, and the attack stops at the first success. ``steps``
(2000 = 40 × 50) is the budget: a smaller one keeps 40 updates per timestep and uses fewer
timesteps.

The loss compares the edited model's prediction for the adversarial prompt with

- ``unlearndiff``: the diffusion training target, the noise (ε, or v for v-prediction models): the
  ``classifier`` task of that repository, UnlearnDiff's own; or
- ``p4d``: the original model's prediction for the plain prompt on the same ``x_t`` (its ``P4D``
  task; P4D's objective),

on ``x_t`` noised from the original model's image of the prompt (same seed; its final latent, where
the reference VAE-encodes the saved PNG). The image and ``prompt_embeds`` are made from the token ids
in ``info["token_ids"]``; ``adversarial_prompt`` is their decoded text, which a BPE tokenizer may split
differently when typed. Two deliberate differences: special tokens (start, end, padding) are not
candidates, so the prompt can be typed; the projection onto the simplex is the exact sort-based one
(Duchi et al., 2008) where the reference bisects to 1e-5. The old name ``discrete`` (whose default
was P4D's objective) is a deprecated alias of ``unlearndiff``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..diffusion import alphas_cumprod, noisy, paper_timesteps, predict, split_steps, target
from ..errors import ConfigError
from ..progress import Progress
from . import AttackRequest, register
from .base import Case, Findings, Outcome, check_counts

Objective = Literal["noise", "original"]


@dataclass(frozen=True)
class PrefixSearchConfig:
    k: int = 5  # prefix tokens (configs/*/text_grad_*.json "k")
    steps: int = 2000  # budget: 40 iterations × 50 timesteps
    iterations: int = 40  # Adam updates per timestep ("iteration")
    lr: float = 0.01
    weight_decay: float = 0.1
    batch_size: int = 8  # rows per forward pass of the original model's targets (speed only)

    def __post_init__(self) -> None:
        check_counts(self, "steps", "k", "iterations", "batch_size")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError(
                f"PrefixSearchConfig needs lr > 0 and weight_decay ≥ 0, got {self.lr}, {self.weight_decay}."
            )


def project_simplex(x: Tensor) -> Tensor:
    """Euclidean projection of each row of ``x [k, V]`` onto ``{p ≥ 0, Σ p = 1}`` (Duchi et al., 2008, Fig. 1).

    With ``u`` the row sorted in decreasing order, ``ρ = max{j : u_j − (Σ_{i≤j} u_i − 1)/j > 0}`` and
    ``τ = (Σ_{i≤ρ} u_i − 1)/ρ``, the projection is ``max(x − τ, 0)``.
    """
    u, _ = torch.sort(x, dim=-1, descending=True)
    css = u.cumsum(-1) - 1
    j = torch.arange(1, x.shape[-1] + 1, dtype=x.dtype, device=x.device)
    rho = (u - css / j > 0).sum(-1, keepdim=True)  # the condition holds on a prefix
    tau = css.gather(-1, rho - 1) / rho.to(x.dtype)
    return (x - tau).clamp(min=0)


class _SampleOneHot(torch.autograd.Function):
    """Forward: a one-hot drawn from each row of ``probs``; backward: ``hardtanh`` of the gradient (STE)."""

    @staticmethod
    def forward(ctx: Any, probs: Tensor, generator: torch.Generator) -> Tensor:  # type: ignore[override]
        idx = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return F.one_hot(idx, probs.shape[-1]).to(probs.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return F.hardtanh(grad), None


@register("unlearndiff", PrefixSearchConfig)
def unlearndiff(request: AttackRequest, cfg: PrefixSearchConfig, *, progress: Progress | None = None) -> Findings:
    """UnlearnDiff: k real prefix tokens whose prediction matches the diffusion noise (projected gradient)."""
    return _prefix_search(request, cfg, "noise", progress)


@register("p4d", PrefixSearchConfig)
def p4d(request: AttackRequest, cfg: PrefixSearchConfig, *, progress: Progress | None = None) -> Findings:
    """P4D: k real prefix tokens whose prediction matches the original model's (projected gradient)."""
    return _prefix_search(request, cfg, "original", progress)


def _prefix_search(
    request: AttackRequest, cfg: PrefixSearchConfig, objective: Objective, progress: Progress | None
) -> Findings:
    """Every case attacked at once, each with its own ``θ`` and random stream, in lockstep over the timesteps.

    Batching the cases changes no case's search: each draws its noise and its one-hots from its own
    generator in the order a lone run would, its loss is its own mean squared error (the batch loss is
    their sum, so each ``θ_i`` gets exactly its own gradient) and Adam is element-wise. A case leaves the
    batch at its first success. ``progress`` counts updates over all cases.
    """
    text, victim = request.text, request.victim
    unet = victim.pipe.unet
    abar = alphas_cumprod(victim.pipe.scheduler)
    iters = split_steps(cfg.steps, cfg.iterations)
    timesteps = paper_timesteps(len(iters), len(abar))
    vocab = text.vocabulary()  # [V'] candidate ids
    E = text.table.weight.detach()[vocab.to(text.device)].float()  # [V', d_tok]
    cases = request.cases
    x0 = request.original_latents()  # [N, C, h, w]
    slotted = text.slotted([c.prompt for c in cases], cfg.k)
    t_all = torch.cat([torch.full((n,), t) for n, t in zip(iters, timesteps)]).to(x0.device)  # [T]
    # the old name's streams: p4d draws what discrete (P4D's objective) drew; each case's noise comes first
    gens = [request.generator("discrete", i) for i in range(len(cases))]
    noise = torch.stack([torch.randn((len(t_all), *x0.shape[1:]), generator=g) for g in gens]).to(x0)  # [N, T, C, h, w]

    theta = torch.full((len(cases), cfg.k, len(vocab)), 1.0 / len(vocab)).requires_grad_(True)  # rand_init=False
    opt = torch.optim.Adam([theta], lr=cfg.lr, weight_decay=cfg.weight_decay)
    active = list(range(len(cases)))  # cases still searching
    losses: list[list[float]] = [[] for _ in cases]
    outcomes: list[Outcome | None] = [None] * len(cases)
    row, total = 0, len(cases) * cfg.steps
    for n, t in zip(iters, timesteps):
        rows = slice(row, row + n)
        x_t = noisy(x0[active, None].expand(-1, n, -1, -1, -1).flatten(0, 1), noise[active, rows].flatten(0, 1),
                    t_all[rows].repeat(len(active)), abar).unflatten(0, (len(active), n))  # fmt: skip
        goal = _targets(request, cfg, objective, [cases[i] for i in active], x0[active], noise[active, rows], x_t, t)
        step_losses = torch.zeros(len(active))
        for j in range(n):
            one_hot = torch.stack([_SampleOneHot.apply(theta[i], gens[i]) for i in active])  # [B, k, V']
            states = text.encode(slotted.ids[active], slots=slotted.slots, slot_embeds=one_hot.to(E.device) @ E)
            t_j = t_all[row + j].expand(len(active))
            err = (predict(unet, x_t[:, j], t_j, states) - goal[:, j]).pow(2).mean(dim=(1, 2, 3))  # [B]
            (theta.grad,) = torch.autograd.grad(err.sum(), [theta])
            opt.step()
            with torch.no_grad():
                theta[active] = project_simplex(theta[active])
            step_losses += err.detach().cpu()
            if progress is not None:
                progress(min((row + j + 1) * len(cases), total), total)
        row += n
        ids = slotted.ids[active].clone()
        ids[:, slotted.slots] = vocab[theta.detach()[active].argmax(-1)]
        with torch.no_grad():
            embeds = text.encode(ids).float().cpu()
        images, verdicts = request.judged(embeds, [cases[i] for i in active])
        still = []
        for b, i in enumerate(active):
            losses[i].append(float(step_losses[b]))
            info = {"token_ids": ids[b, slotted.slots].tolist(), "timesteps": timesteps[: len(losses[i])],
                    "loss": losses[i], "steps": row}  # fmt: skip
            outcomes[i] = Outcome(embeds[b], images[b], verdicts[b], text.decode(ids[b]), info=info)
            if not verdicts[b]:
                still.append(i)
        active = still
        if not active:
            break
    if progress is not None:
        progress(total, total)  # an early success skips the rest of its budget
    info = {"objective": objective, "n_timesteps_max": len(iters)}
    assert all(o is not None for o in outcomes), "every case runs at least one timestep"
    return Findings(outcomes, info=info)  # type: ignore[arg-type]


@torch.no_grad()
def _targets(
    request: AttackRequest,
    cfg: PrefixSearchConfig,
    objective: Objective,
    cases: list[Case],
    x0: Tensor,
    noise: Tensor,
    x_t: Tensor,
    t: int,
) -> Tensor:
    """``[B, n, C, h, w]`` what the edited model's prediction is pulled towards at each of the ``n`` draws at ``t``."""
    B, n = noise.shape[:2]
    steps = torch.full((B * n,), t, device=x0.device)
    if objective == "noise":
        prediction = request.victim.pipe.scheduler.config.prediction_type
        x0_rows = x0[:, None].expand(-1, n, -1, -1, -1).flatten(0, 1)
        abar = alphas_cumprod(request.victim.pipe.scheduler)
        return target(x0_rows, noise.flatten(0, 1), steps, abar, prediction).unflatten(0, (B, n))
    states = request.text.encode_text([c.prompt for c in cases]).repeat_interleave(n, 0)  # [B n, L, d]
    rows, parts = x_t.flatten(0, 1), []
    with request.victim.original() as pipe:
        for s in range(0, len(rows), cfg.batch_size):
            part = slice(s, s + cfg.batch_size)
            parts.append(predict(pipe.unet, rows[part], steps[part], states[part]))
    return torch.cat(parts).unflatten(0, (B, n))
