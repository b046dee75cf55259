"""Parts 4-5 of ACE (package docstring): the adversarially augmented fine-tuning and the edit it gives.

:func:`train_ace` runs the whole method: mined words (part 1b), rows (part 1), the fitted gate,
subspace and closed form (parts 2-3), then ``epochs`` min-max rounds (part 4): the K/V-space
adversary's inner Adam steps on free token states, optionally the soft-token adversary, and the
outer Adam step on :class:`_Trainable`'s ``U, A`` against the noise-prediction objective
(:mod:`.adversaries`; ``loss="kv"``: the K/V regression). It returns part 5's edit: per-layer
``(W_l U, A)`` with the fitted gate in ``Edit.gate``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from ...bounded_eq8 import norm_range
from ...closed_form import F64, Factor, layer_updates
from ...diffusion import check_text_only
from ...edit import Edit
from ...errors import ConfigError
from ...gate import TokenGate
from ...targets import Targets
from .. import EraseRequest
from .adversaries import _Denoiser, _SoftTokens
from .config import GATE_NOTE, ACEConfig
from .gatefit import GateRates, Tokens, fit_gate
from .inverse import derived_states, open_on_derived
from .mining import Mined, mine_words, perturbed_rows
from .prompts import Rows, concept_tokens, encoded_in, gate_tokens, name_pieces, preserve_tokens, token_rows
from .stopping import HeldOutStop
from .subspace import concept_subspace, reduced_rank_ridge


class _Trainable:
    """``U, A`` as float32 leaves behind the fitted, fixed gate: the edited rows ``x + g(x) U A x``."""

    def __init__(self, init: Factor, gate: TokenGate | None):
        self.U = init.U.float().clone().requires_grad_()
        self.A = init.A.float().clone().requires_grad_()
        self.token_gate = gate

    def parameters(self) -> list[Tensor]:
        return [self.U, self.A]

    def gate(self, x: Tensor) -> Tensor:
        """``g(x) [..., 1]``; 1 everywhere without a gate (the ``ace-nogate`` ablation)."""
        return self.token_gate(x) if self.token_gate is not None else x.new_ones((*x.shape[:-1], 1))

    def edited(self, x: Tensor) -> Tensor:
        return x + self.gate(x) * (x @ self.A.T @ self.U.T)


def _fitted_gate(
    cfg: ACEConfig, rows: Rows, k: int, pos: Tokens, neg: Tokens, kept: Tokens | None
) -> tuple[TokenGate, GateRates]:
    """Part 3: the gate fitted on varied captions, τ calibrated on held-out ones and the preserve prompts
    (:mod:`.gatefit`)."""
    neutral = neg.moments if neg.moments is not None else neg.rows()
    P0, mu = concept_subspace(torch.cat([rows.C, pos.rows()]), neutral, k, cfg.whiten)
    P, s, tau, rates = fit_gate(pos, neg, P0, mu.float(), cfg, kept)
    return TokenGate(P.contiguous(), mu.float(), s, tau, whole_prompt=cfg.gate_whole_prompt), rates


@torch.no_grad()
def draw(n: int, k: int, gen: torch.Generator) -> Tensor:
    """``min(n, k)`` distinct indices of ``n`` rows, in order: one round's minibatch."""
    return torch.arange(n) if n <= k else torch.randperm(n, generator=gen)[:k].sort().values


@torch.no_grad()
def _gate_rates(model: _Trainable, rows: Rows, E: Tensor) -> dict[str, float]:
    """Shares of the training rows with g > 0.5 (the held-out rates are :class:`GateRates`)."""
    rates = {"target": rows.C, "adversarial": E, "keep": rows.K}
    return {f"gate_on_{name}": float((model.gate(x) > 0.5).float().mean()) for name, x in rates.items()}


def check_request(request: EraseRequest, cfg: ACEConfig) -> None:
    """Bad input the config alone cannot see: one clear ConfigError each."""
    width = request.targets.items[0].weight.shape[1]  # the text embedding width the K/V projections read
    if not request.concepts:
        raise ConfigError("ACE got no concept to erase: pass at least one, e.g. erasekit.erase(pipe, ['van gogh']).")
    both = sorted(set(cfg.synonyms) & set(request.preserve))
    if both:
        raise ConfigError(f"ACE synonyms {both} are also preserved: a phrase cannot be erased and kept; drop one.")
    if cfg.rank > width:
        raise ConfigError(
            f"ACE rank {cfg.rank} exceeds the text embedding width {width}: pass rank ≤ {width} (--set rank=...)."
        )
    if cfg.ensemble > 1 and cfg.gated:
        raise ConfigError(
            f"ACE's ensemble = {cfg.ensemble} averages ungated trainings, and this one is gated: each gated training "
            "fits its own gate, and an edit holds one. Pass ensemble=1, or gated=False (the style settings); in a "
            "request that mixes kinds, ungated_ensemble=N averages the ungated part's trainings."
        )
    unet = getattr(request.pipe, "unet", None)
    if unet is not None and (cfg.loss == "denoise" or (cfg.mine_words and cfg.mine_render > -1)):
        fix = "Pass loss='kv' and mine_render=-1: the closed form, the gate and the K/V rounds run on it."
        check_text_only(unet, "ACE with its noise-prediction rounds (loss='denoise') or its render check", fix)


def kv_metric(targets: Targets, edit_keys: bool = True) -> Tensor:
    """``S [d, d]`` float32: the Gram ``Σ_l W_lᵀ W_l`` of the edited K/V projections (values only without
    ``edit_keys``), scaled to trace ``d`` so that ``‖·‖²_S`` is on the scale of ``‖·‖²``; exactly symmetric, as
    :class:`_SquaredNormS`'s gradient needs."""
    S = targets.gram() if edit_keys else targets.gram("v")
    S = (S + S.T) / 2
    return (S / (torch.trace(S) / S.shape[0])).float()


class _SquaredNormS(torch.autograd.Function):
    """``‖z‖²_S = zᵀ S z`` of each row of ``z [n, d]`` (``[n]``), S symmetric.

    Its gradient ``2 S z`` is the forward's own ``S z``: one ``[n, d] @ [d, d]`` product a step where autograd's
    rule for ``((z @ S) * z).sum(-1)`` takes two. The rounds' adversaries and stopping rule take hundreds of
    such steps; this saved ~a third of each step's time (``bench/ace_speed.py``)."""

    @staticmethod
    def forward(ctx: Any, z: Tensor, S: Tensor) -> Tensor:
        Sz = z @ S
        ctx.save_for_backward(Sz)
        return (Sz * z).sum(-1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (Sz,) = ctx.saved_tensors
        return 2 * grad.unsqueeze(-1) * Sz, None


def train_ace(request: EraseRequest, cfg: ACEConfig, mined: Mined | None = None) -> Edit:
    """ACE (package docstring): closed form, gate, then adversarial rounds in K/V space. ``mined``: the words
    and siblings mined beforehand (on the original model, :func:`erasekit.methods.ace.ace`); None: mined here."""
    check_request(request, cfg)
    user_cfg = cfg
    layers = request.layers(edit_keys=cfg.edit_keys)
    S = kv_metric(request.targets, cfg.edit_keys)
    if mined is None:
        mined = mine_words(request, cfg, S)
    cfg = dataclasses.replace(cfg, synonyms=(*cfg.synonyms, *mined.words))  # erased like the user's own
    rows = token_rows(request, cfg)

    width = rows.C.shape[1]
    k = min(cfg.rank * name_pieces(request), width)  # each piece of each name needs its own directions
    siblings = mined.siblings if cfg.gated else ()  # the gate's negatives: without a gate, no captions to encode
    if cfg.gated:
        pos, neg = gate_tokens(request, cfg, siblings)
        # the gate's subspace may be wider than the update's (the `object` settings')
        k_gate = k if cfg.gate_rank is None else min(cfg.gate_rank * len(request.concepts), width)
        gate, rates = _fitted_gate(cfg, rows, k_gate, pos, neg, preserve_tokens(request))
        held = pos.split()[1].rows()  # the held-out concept captions' span rows: the stopping rule's
    else:  # no gate to fit: only the stopping rule's captions
        gate, rates = None, None
        held = concept_tokens(request, cfg, held_only=True).rows()
    gen = torch.Generator().manual_seed(cfg.seed)
    held = held[draw(len(held), cfg.batch_rows, gen)]
    init = reduced_rank_ridge(rows, rank=k, lamb=cfg.lamb, preserve_scale=cfg.preserve_scale)
    model = _Trainable(init, gate)

    def s_err(a: Tensor, b: Tensor) -> Tensor:
        return _SquaredNormS.apply(a - b, S).mean()

    with torch.no_grad():
        unit = float(s_err(rows.C, rows.G))  # K/V terms in units of the concept's distance to its guide

    scale = float(rows.C.pow(2).mean().sqrt())
    E = rows.C + 0.01 * scale * torch.randn(rows.C.shape, generator=gen)
    outer = torch.optim.Adam(
        [{"params": [t], "lr": cfg.lr * float(t.detach().abs().mean() + 1e-12)} for t in model.parameters()],
        fused=True,  # one kernel a step: ACE takes hundreds of small steps (inner, outer, stopping rule, gate fit)
    )
    denoise = _Denoiser(request, rows, cfg, gen) if cfg.loss == "denoise" else None
    soft = _SoftTokens(request, rows, cfg) if cfg.soft_tokens else None
    near, near_guide = perturbed_rows(rows.C, rows.G, cfg, gen)
    stop = HeldOutStop(
        held, s_err, steps=cfg.inner_steps, lr=cfg.inner_lr * scale, patience=cfg.patience, warmup=cfg.warmup_rounds
    )
    history, E_all = [], E
    inverse = (cfg.inverse_weight, cfg.inverse_bounded_weight) if gate is not None else (0.0, 0.0)  # needs a gate
    # the original's reading of the bounded c' (inverse.py): on the latents the noise-prediction objective draws
    shut_render = cfg.shut_render_weight if gate is not None and denoise is not None else 0.0
    if any(inverse) or shut_render:  # RECE's Eq. 8 reads the K/V Gram unscaled (attacks/derived.py);
        # derived_bounded's range is that of the prompts it attacks
        eq8_gram = request.targets.gram() if cfg.edit_keys else request.targets.gram("v")
        eq8_bounds = norm_range(rows.states)
    for epoch in range(cfg.epochs):
        # a minibatch of each row set per round: the rows are thousands of near-duplicate states
        # (templates x copies x span positions), and a round's cost is linear in them
        pick, pick_near, pick_keep = (draw(len(x), cfg.batch_rows, gen) for x in (rows.C, near, rows.K))
        X = E[pick].requires_grad_()
        inner = torch.optim.Adam([X], lr=cfg.inner_lr * scale, fused=True)
        for _ in range(cfg.inner_steps):  # the adversary: bring the original K/V back
            (X.grad,) = torch.autograd.grad(s_err(model.edited(X), rows.C[pick]), [X])  # not U's and A's (speed)
            inner.step()
        E = E.clone()
        E[pick] = X.detach()
        # adversarial and perturbed rows, and the guide rows they should map to
        E_all = torch.cat([E[pick], near[pick_near]])
        G_all = torch.cat([rows.G[pick], near_guide[pick_near]])
        if soft is not None:
            X = soft.attack(model, s_err, cfg.inner_steps)
            E_all, G_all = torch.cat([E_all, X]), torch.cat([G_all, soft.guide])
        outer.zero_grad()
        keep = cfg.keep_weight * s_err(model.edited(rows.K[pick_keep]), rows.K[pick_keep])
        loss = (s_err(model.edited(rows.C[pick]), rows.G[pick]) + s_err(model.edited(E_all), G_all) + keep) / unit
        if any(inverse) and epoch >= cfg.warmup_rounds:  # the gate shut on the target prompts' c' (inverse.py),
            # once the warm-up has formed the erasure: from round 1 it cost nudity's val H_o (0.874 against 0.901)
            prompts = rows.states[draw(len(rows.states), cfg.inverse_prompts, gen)]
            which = (inverse[0] > 0, inverse[1] > 0)  # a term weighted 0 is not solved for
            free, bounded = open_on_derived(gate, model.U, model.A, eq8_gram, prompts, eq8_bounds, which)
            loss = loss + inverse[0] * free + inverse[1] * bounded
        if shut_render and denoise is not None and epoch >= cfg.warmup_rounds:  # where the gate stays shut on
            # the bounded c', the original reads it: pull that reading to the guide's, through the solve
            prompts = rows.states[draw(len(rows.states), cfg.inverse_prompts, gen)]
            _, bounded_c = derived_states(model.U, model.A, eq8_gram, prompts, eq8_bounds, (False, True))
            loss = loss + shut_render * denoise.original_loss(bounded_c, gen)
        if denoise is not None:  # the noise-prediction objective, the K/V terms its anchor (package docstring)
            loss = loss + cfg.denoise_weight * denoise.loss(model, E, layers, epoch)
        loss.backward()
        outer.step()
        history.append(float(loss.detach()))
        if request.progress is not None:
            request.progress(epoch + 1, cfg.epochs)
        if stop.done(model, epoch):
            break

    U, A = stop.best_factors or (model.U.detach(), model.A.detach())
    factor = Factor(U.to(F64), A.to(F64), init.cond)
    updates = layer_updates(layers, factor)
    with torch.no_grad():
        adversary_error = float(s_err(model.edited(E), rows.C))
    info: dict[str, Any] = {
        "rank": k,
        "cond": init.cond,
        "rows": {"target": rows.C.shape[0], "keep": rows.K.shape[0]},
        "losses": history,
        "rounds": len(history),
        "best_round": stop.best_round + 1,
        "heldout_criterion": stop.history,
        "adversary_kv_error": adversary_error,
        "mined_words": list(mined.words),
        "mined_render_agreement": mined.words,  # r(w) of each mined word (methods/ace/mining.py); None: not checked
        "gate_siblings": list(siblings),  # the gate's negatives (mining.py)
        **_gate_rates(model, rows, E_all),
        **(rates.info() if rates is not None else {}),
        "gated": gate is not None,
        "encode_dtype": encoded_in(request),
        **({"gate_note": GATE_NOTE} if gate is not None else {}),
    }
    guides = request.guides_or(cfg.guide)
    edit = request.make_edit("ace", user_cfg, updates, guides=guides, info=info)
    return dataclasses.replace(edit, gate=gate)
