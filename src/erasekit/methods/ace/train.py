"""Parts 4-5 of ACE (package docstring): the adversarially augmented fine-tuning and the edit it gives.

:func:`train_ace` runs the whole method: rows (part 1), subspace, closed form and gate start (parts
2-3), then ``epochs`` min-max rounds (part 4): the K/V-space adversary's inner Adam steps on free
token states, optionally the soft-token adversary and the denoising term (:mod:`.adversaries`), and
the outer Adam step on :class:`_Trainable`'s ``U, A, P, log s, log τ``. It returns part 5's edit:
per-layer ``(W_l U, A)`` with the learned gate in ``Edit.gate``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...closed_form import F64, Factor, layer_updates
from ...edit import Edit
from ...gate import TokenGate, concept_ratio, gate_values
from .. import EraseRequest
from .adversaries import _Denoiser, _SoftTokens
from .config import GATE_NOTE, ACEConfig
from .prompts import Rows, token_rows
from .subspace import concept_subspace, initial_gate, reduced_rank_ridge


class _Trainable:
    """``U, A, P, log s, log τ`` as float32 leaves, and the edited rows ``x + g(x) U A x``."""

    def __init__(self, init: Factor, P: Tensor, mu: Tensor, sharpness: float, threshold: float):
        self.U = init.U.float().clone().requires_grad_()
        self.A = init.A.float().clone().requires_grad_()
        self.P = P.float().clone().requires_grad_()
        self.mu = mu.float()
        self.log_s = torch.tensor(math.log(sharpness)).requires_grad_()
        self.log_tau = torch.tensor(math.log(threshold)).requires_grad_()

    def parameters(self) -> list[Tensor]:
        return [self.U, self.A, self.P, self.log_s, self.log_tau]

    def gate_parts(self) -> tuple[Tensor, Tensor, Tensor]:
        """(orthonormal basis, s, τ)."""
        basis, _ = torch.linalg.qr(self.P)
        return basis, self.log_s.exp(), self.log_tau.exp()

    def gate(self, x: Tensor) -> Tensor:
        basis, s, tau = self.gate_parts()
        return gate_values(x, basis, self.mu, s, tau)

    def edited(self, x: Tensor) -> Tensor:
        return x + self.gate(x) * (x @ self.A.T @ self.U.T)

    def token_gate(self) -> TokenGate:
        basis, s, tau = (t.detach() for t in self.gate_parts())
        return TokenGate(basis.contiguous(), self.mu.clone(), float(s), float(tau))


@torch.no_grad()
def _gate_rates(model: _Trainable, rows: Rows, E: Tensor) -> dict[str, float]:
    return {
        "gate_on_target": float((model.gate(rows.C) > 0.5).float().mean()),
        "gate_on_adversarial": float((model.gate(E) > 0.5).float().mean()),
        "gate_on_keep": float((model.gate(rows.K) > 0.5).float().mean()),
    }


def train_ace(request: EraseRequest, cfg: ACEConfig) -> Edit:
    """ACE (package docstring): closed form, gate, then adversarial rounds in K/V space."""
    rows = token_rows(request, cfg)
    layers = request.layers(edit_keys=cfg.edit_keys)
    S = request.targets.gram() if cfg.edit_keys else request.targets.gram("v")
    S = (S / (torch.trace(S) / S.shape[0])).float()  # ‖·‖²_S on the scale of ‖·‖²

    k = min(cfg.rank * len(request.concepts), rows.C.shape[1])  # each concept needs its own directions
    P, mu = concept_subspace(rows.C, rows.K, k, cfg.whiten)
    init = reduced_rank_ridge(rows, rank=k, lamb=cfg.lamb, preserve_scale=cfg.preserve_scale)
    r_t, r_k = (concept_ratio(x.to(F64), P, mu).squeeze(-1) for x in (rows.C, rows.K))
    model = _Trainable(init, P, mu, *initial_gate(r_t, r_k, cfg.sharpness))

    def s_err(a: Tensor, b: Tensor) -> Tensor:
        diff = a - b
        return ((diff @ S) * diff).sum(-1).mean()

    with torch.no_grad():
        unit = float(s_err(rows.C, rows.G))  # K/V terms in units of the concept's distance to its guide

    gen = torch.Generator().manual_seed(cfg.seed)
    scale = float(rows.C.pow(2).mean().sqrt())
    E = rows.C + 0.01 * scale * torch.randn(rows.C.shape, generator=gen)
    outer = torch.optim.Adam(
        [
            *(
                {"params": [t], "lr": cfg.lr * float(t.detach().abs().mean() + 1e-12)}
                for t in (model.U, model.A, model.P)
            ),
            {"params": [model.log_s, model.log_tau], "lr": cfg.gate_lr},
        ]
    )
    denoise = _Denoiser(request, rows, cfg, gen) if cfg.loss == "denoise" and cfg.epochs else None
    soft = _SoftTokens(request, rows, cfg) if cfg.soft_tokens and cfg.epochs else None
    history, E_all = [], E
    for epoch in range(cfg.epochs):
        E = E.detach().requires_grad_()
        inner = torch.optim.Adam([E], lr=cfg.inner_lr * scale)
        for _ in range(cfg.inner_steps):  # the adversary: bring the original K/V back
            inner.zero_grad()
            s_err(model.edited(E), rows.C).backward()
            inner.step()
        E = E.detach()
        E_all, G_all = E, rows.G  # adversarial rows and the guide rows they should map to
        if soft is not None:
            X = soft.attack(model, s_err, cfg.inner_steps)
            E_all, G_all = torch.cat([E, X]), torch.cat([rows.G, soft.guide])
        outer.zero_grad()
        g_c, g_e, g_k = model.gate(rows.C), model.gate(E_all), model.gate(rows.K)
        loss = (
            s_err(model.edited(rows.C), rows.G)
            + s_err(model.edited(E_all), G_all)
            + cfg.keep_weight * s_err(model.edited(rows.K), rows.K)
        ) / unit + (
            cfg.gate_weight
            * (
                F.binary_cross_entropy(g_c, torch.ones_like(g_c))
                + F.binary_cross_entropy(g_e, torch.ones_like(g_e))
                + F.binary_cross_entropy(g_k, torch.zeros_like(g_k))
            )
        )
        if denoise is not None:
            loss = loss + cfg.denoise_weight * denoise.loss(model, E, layers)
        loss.backward()
        outer.step()
        history.append(float(loss.detach()))
        if request.progress is not None:
            request.progress(epoch + 1, cfg.epochs)

    factor = Factor(model.U.detach().to(F64), model.A.detach().to(F64), init.cond)
    updates = layer_updates(layers, factor)
    with torch.no_grad():
        adversary_error = float(s_err(model.edited(E), rows.C))
    info: dict[str, Any] = {
        "rank": k,
        "cond": init.cond,
        "rows": {"target": rows.C.shape[0], "keep": rows.K.shape[0]},
        "losses": history,
        "adversary_kv_error": adversary_error,
        **_gate_rates(model, rows, E_all),
        "gated": True,
        "gate_note": GATE_NOTE,
    }
    guides = request.guides_or(cfg.guide)
    edit = request.make_edit("ace", cfg, updates, guides=guides, info=info)
    return dataclasses.replace(edit, gate=model.token_gate())
