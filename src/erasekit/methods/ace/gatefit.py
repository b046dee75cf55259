"""Part 3 of ACE (package docstring): fit the token gate on varied captions and calibrate τ on held-out ones.

The gate keeps :mod:`erasekit.gate`'s form ``g(c) = σ(s (‖Pᵀ(c − μ)‖²/‖c − μ‖² − τ))``. With ``P``
free (not orthonormal) ``‖Pᵀ z‖²/‖z‖²`` is a quadratic form on the unit sphere: a classifier of the
direction of a token's deviation from the neutral mean μ. It is fitted by class-balanced binary
cross-entropy, starting from the generalised-eigenvector subspace (:func:`.subspace.concept_subspace`),

    min_{P, s, τ}  mean_{c ∈ concept} −log g(c)  +  mean_{c ∈ neutral} −log(1 − g(c)),

on the ``fit`` half of the captions: the concept's span tokens are positives; every token of the
neutral captions and of the preserved concepts named in the same contexts are negatives. Then τ is
set on the ``held`` half so that at most ``gate_token_rate`` of the held-out negative tokens and
``gate_prompt_rate`` of the held-out negative prompts open the gate (g > 0.5 ⇔ r > τ), stricter than
the 5% / 10% asked of unseen prompts so that a shift of wording keeps within them. That bound sits just
above the captions the method composed, and a prompt worded unlike them (a real artist's name,
the "van" of "rembrandt van rijn") lands just above it; so τ then moves ``gate_margin`` of the way, on a log
scale, from it up to the ceiling below which 1 − ``gate_concept_rate`` of the held-out concept captions'
span tokens fall: ``τ = τ_neg^(1−m) ceiling^m``. Chosen on the embedded world's val prompts: at m = 0.25 H_o
tied m = 0 on style, object and unsafe (``erasekit tune ace --settings defaults --grid gate_margin=0,0.25,0.5``:
0.77 / 0.77 / 0.63, 0.99 at all three, 0.93 / 0.93) while fewer unseen prompts opened the gate (``bench/ace_gate.py
--split val``, 40 each: van gogh 22.5% -> 12.5%, picasso 20% -> 10%, its paraphrases found 100% -> 90%).

The caller's preserve prompts are real prompts of what must stay, so with ``gate_fit_preserve`` they are negatives
of the fit and of τ's held-out bound as well, which then stands on real wording and needs a smaller margin: m = 0.1
(``bench/ace_gate.py --split val --n 40``, compare's preserve sets and 16 fit prompts per preserved concept; neutral
prompts / the same kind's other concepts / paraphrases found, captions only at m = 0.25 -> with the preserve prompts
at 0.25 -> at 0.1): church 2.5% / 7.5% / 100% -> 2.5% / 0% / 100% -> 2.5% / 0% / 100%, parachute 15% / 7.5% / 100%
-> 2.5% / 0% / 100% -> 2.5% / 0% / 100% (its first names after "by" now shut), picasso 0% / 5% / 82.5% -> 0% / 2.5%
/ 67.5% -> 5% / 5% / 92.5%, van gogh 12.5% / 25% / 72.5% -> 0% / 2.5% / 60% -> 5% / 10% / 62.5% (the four "rembrandt
van rijn" prompts that opened it shut; m = 0 with them: 12.5% / 20% / 67.5%). Over training seeds 0-4 (the same
bench, ``--set seed=S``; ``bench/ACE_MEASUREMENTS.md`` has each) the mean rates went 6.5 / 12.5 / 96 -> 2.0 / 5.5 /
95.5 for church, 17.5 / 12 / 100 -> 8 / 4.5 / 100 for parachute, 13.5 / 21 / 70.5 -> 10 / 11.5 / 63.5 for van gogh
and 4.5 / 7 / 82 -> 2.5 / 3.5 / 85.5 for picasso, and the seeds meeting every goal 1 -> 5, 1 -> 3, 0 -> 0 and 4 -> 5
of five. Van gogh's paraphrases cannot reach 80% on these states: 11 of its 40 val paraphrases say "the man who
painted the sunflowers", whose tokens MiniLM puts nowhere near van gogh (``bench/ACE_MEASUREMENTS.md``); with
``synonyms=("sunflowers",)`` its gate found 95% and opened on 5% of the neutral prompts, 7.5% of the other styles'.
H_o on val at the defaults, against the captions-only gate at m = 0.25 (``erasekit tune ace --settings defaults
--scenario S --grid gate_fit_preserve=true --grid gate_margin=0.1 --grid seed=...``, 16 prompts per group): parachute
0.70 0.90 0.90 against 0.70 0.90 0.87, church the same to the digit (0.93 0.91 0.90), van gogh gated (``--grid
ungated_kinds=unsafe``, seeds 0-4) 0.77 0.68 0.79 0.78 0.75 against 0.77 0.78 0.79 0.78 0.75 (seed 1 lets one more
target prompt and two more paraphrases through): a tie but for that seed. The ``rank32`` and ``object`` settings
keep the captions-only gate at m = 0.25 (``PINNED_GATE``), the gate their val choices and compare's rows were
measured with; multi10 under the ``object`` settings lost with the preserve prompts among its negatives (``erasekit
tune ace --scenario multi10 --settings object --grid gate_fit_preserve=true --grid seed=0,1,2``: H_o 0.73 0.74 0.76
against 0.75 0.77 0.77).

And, when the caller gives prompts of the preserved concepts (``preserve_prompts``: real prompts, worded as users
word them, which captions are not) and sets ``gate_preserve_rate``, at most that share of them, as long as
``gate_concept_rate`` of the held-out concept captions' span tokens still open it. It is off by default
(the share of the preserve prompts that open the gate is recorded either way): chosen on the embedded
world's val prompts (``erasekit tune ace --settings defaults --grid gate_preserve_rate=...``, 16 prompts per
group), at 0.02 it bought church one paraphrase (H_o 0.88 -> 0.90) and cost van gogh most of its erasure (efficacy 0.06
-> 0.50, paraphrases 0.44 -> 0.81, H_o 0.77 -> 0.36): its preserve prompts, picasso's and rembrandt's, lie
so near it that shutting the gate on them (τ 0.021 -> 0.095) closed it on a quarter of van gogh's span
tokens. No floor kept van gogh erased: 80% or 95% of whole captions still opening (efficacy 0.50), 90%, 97%
or 99% of span tokens (0.50, 0.50, 0.38; g is soft, so a token above τ by a little gets part of the
update), nor training under the uncalibrated gate and calibrating only the edit's (0.38). Objects are another matter:
with ``gate_concept_rate`` 0.8 it shut parachute's gate on the first names after "by" that opened it (ACE's
``object`` settings, what compare runs for objects, chosen on val; the numbers are beside them).
:class:`GateRates` records what the held-out captions measured and the share of the preserve prompts that
open the gate.

With ``gate_whole_prompt`` (ACE's ``unsafe`` settings) the gate caps every token at its prompt's last position
(:class:`erasekit.gate.TokenGate`), and τ's bounds and the rates are taken on the capped ratios,
``min(r(c_t), r(c_L))``, so that a held-out prompt counts as open exactly when the gate would open on it: when its
last position does. The fit of ``P`` stays per token.

Until stop 41 the held-out quarter was every fourth caption, which on the concept's side meant three of the twelve
caption forms and only captions naming it behind a first name (:meth:`Tokens.held_out`); the numbers above were
measured so. Held out at random, the gates of the embedded world's concepts open on fewer val neutral prompts (training
seeds 0-4, ``bench/ace_gate.py --split val --n 48 --set seed=S``, means before -> after: church 7.6% -> 5.8%,
parachute 6.1% -> 2.9%, picasso 1.8% -> 1.2%, van gogh 10.2% -> 5.9%) and find fewer paraphrases (church 94.6% ->
93.4%, parachute 100% -> 100%, picasso 84.6% -> 77.5%, van gogh 61.3% -> 57.9%): the ceiling now stands on captions
like those of the fit, whose ratios run higher, and τ rises with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...gate import capped_at_prompt_end, concept_ratio
from .config import ACEConfig
from .moments import Moments

STEPS_LR = 0.05  # Adam's step on P (relative to its scale) and on log s


@dataclass(frozen=True)
class Tokens:
    """Prompts' token states and which tokens count. states: ``[B, L, d]``; mask: ``[B, L]`` bool; moments: the
    counted rows' :class:`.Moments` where they came without multiplying the rows (the negatives'), else None."""

    states: Tensor
    mask: Tensor
    moments: Moments | None = None

    def rows(self) -> Tensor:
        """``[n, d]`` the counted tokens; a view where every token counts (the negatives: ~60k rows a copy)."""
        return self.states.flatten(0, 1) if bool(self.mask.all()) else self.states[self.mask]

    @staticmethod
    def held_out(n: int) -> Tensor:
        """``[n]`` bool: which of ``n`` prompts are held out of the fit, a quarter drawn by a fixed seed. Not every
        fourth: the concept's captions cycle through twelve forms and every fourth names it behind a first name
        (:func:`.neutral.in_context`), so every fourth held out three forms, only first-named captions, and the fit
        never saw them."""
        held = torch.zeros(n, dtype=torch.bool)
        held[torch.randperm(n, generator=torch.Generator().manual_seed(0))[: n // 4]] = True
        return held

    def split(self) -> tuple[Tokens, Tokens]:
        """(fit, held): a quarter of the prompts held out (:meth:`held_out`)."""
        held = Tokens.held_out(self.states.shape[0])
        return Tokens(self.states[~held], self.mask[~held]), Tokens(self.states[held], self.mask[held])

    def ratios(self, P: Tensor, mu: Tensor, whole_prompt: bool = False) -> Tensor:
        """``[B, L]`` r(c) with −inf on tokens that do not count; ``whole_prompt``: each capped at its prompt's last
        position's, as :class:`erasekit.gate.TokenGate` caps g (the batch's padding: that position reads the whole
        prompt)."""
        r = concept_ratio(self.states, P, mu)  # [B, L, 1]
        if whole_prompt:
            r = capped_at_prompt_end(r)
        return r.squeeze(-1).masked_fill(~self.mask, float("-inf"))


@dataclass(frozen=True)
class GateRates:
    """Held-out rates of g > 0.5: on neutral tokens and prompts (any token), and concept prompts (any span token)."""

    neutral_tokens: float
    neutral_prompts: float
    concept_prompts: float
    n_neutral: int
    n_concept: int
    preserve_prompts: float | None = None  # None: the caller gave no preserve prompts
    n_preserve: int = 0

    def info(self) -> dict[str, float | int | None]:
        held = ("neutral_tokens", "neutral_prompts", "concept_prompts", "n_neutral", "n_concept")
        return {**{f"gate_heldout_{k}": getattr(self, k) for k in held},
                "gate_preserve_prompts": self.preserve_prompts, "gate_n_preserve": self.n_preserve}  # fmt: skip


def fit_gate(
    pos: Tokens, neg: Tokens, P0: Tensor, mu: Tensor, cfg: ACEConfig, kept: Tokens | None = None
) -> tuple[Tensor, float, float, GateRates]:
    """``(P [d, k], s, τ, held-out rates)`` of the gate (module docstring). All float32.

    ``cfg.gate_steps`` Adam steps, each on the next ``cfg.gate_batch`` tokens of each class, shuffled once
    (tens of thousands of negative tokens otherwise make the fit the slowest part of ACE); τ is then calibrated
    on every held-out token for ``cfg.gate_token_rate`` and ``cfg.gate_prompt_rate``, and on ``kept``
    (the preserve prompts) for ``cfg.gate_preserve_rate`` when it is set (else ``kept`` is only measured).
    """
    generator = torch.Generator().manual_seed(cfg.seed)
    (pos_fit, pos_held), (neg_fit, neg_held) = pos.split(), neg.split()
    # r(c) = ‖Pᵀ u‖² with u = (c − μ)/‖c − μ‖: the unit deviations once, one [n, d] @ [d, k] a step
    C, K = (F.normalize(x.rows() - mu, dim=-1) for x in (pos_fit, neg_fit))
    P = P0.float().clone().requires_grad_()
    r0 = (torch.cat([C, K]) @ P0.float()).pow(2).sum(-1)
    log_s = torch.tensor(float(1.0 / r0.std().clamp_min(1e-6)), dtype=torch.float32).log().requires_grad_()
    tau = r0.median().clone().requires_grad_()
    scale = float(P0.abs().mean())
    opt = torch.optim.Adam(
        [{"params": [P], "lr": STEPS_LR * scale}, {"params": [log_s], "lr": STEPS_LR}, {"params": [tau], "lr": 1e-3}],
        fused=True,
    )
    # each class shuffled once and read in consecutive slices (passes without replacement): gathering
    # random rows every step cost more than the step itself
    C, K = (x[torch.randperm(len(x), generator=generator)] for x in (C, K))
    for step in range(cfg.gate_steps):
        opt.zero_grad()
        c, k = _slice(C, step, cfg.gate_batch), _slice(K, step, cfg.gate_batch)
        logit_c = log_s.exp() * ((c @ P).pow(2).sum(-1) - tau)
        logit_k = log_s.exp() * ((k @ P).pow(2).sum(-1) - tau)
        loss = F.softplus(-logit_c).mean() + F.softplus(logit_k).mean()
        loss.backward()
        opt.step()
    P, sharpness = P.detach(), float(log_s.detach().exp())
    whole = cfg.gate_whole_prompt  # τ set on the ratios as the gate will cap them
    r_neg = neg_held.ratios(P, mu, whole)
    tau_tokens = torch.quantile(r_neg[neg_held.mask], 1 - cfg.gate_token_rate)
    tau_prompts = torch.quantile(r_neg.max(1).values, 1 - cfg.gate_prompt_rate)
    threshold = float(torch.maximum(tau_tokens, tau_prompts))
    # the point past which fewer than gate_concept_rate of the concept's own span tokens open: the update
    # reaches only open ones
    ceiling = float(torch.quantile(pos_held.ratios(P, mu, whole)[pos_held.mask], 1 - cfg.gate_concept_rate))
    if ceiling > threshold:  # a share of the log-gap between the negatives' bound and the concept's
        threshold = threshold ** (1 - cfg.gate_margin) * ceiling**cfg.gate_margin
    r_kept = kept.ratios(P, mu, whole).max(1).values if kept is not None else None  # [n] each prompt's highest token
    if r_kept is not None and cfg.gate_preserve_rate is not None:  # opt-in (module docstring)
        threshold = max(threshold, min(float(torch.quantile(r_kept, 1 - cfg.gate_preserve_rate)), ceiling))
    return P, sharpness, threshold, _rates(P, mu, threshold, pos_held, neg_held, r_kept, whole)


def _slice(X: Tensor, step: int, batch: int) -> Tensor:
    """Step ``step``'s ``min(batch, n)`` consecutive rows of ``X [n, d]``, wrapping round at its end."""
    if batch >= len(X):
        return X
    start = step * batch % len(X)
    end = start + batch
    return X[start:end] if end <= len(X) else torch.cat([X[start:], X[: end - len(X)]])


def _rates(
    P: Tensor, mu: Tensor, tau: float, pos: Tokens, neg: Tokens, r_kept: Tensor | None, whole_prompt: bool
) -> GateRates:
    r_neg, r_pos = neg.ratios(P, mu, whole_prompt), pos.ratios(P, mu, whole_prompt)
    return GateRates(
        neutral_tokens=float((r_neg[neg.mask] > tau).float().mean()),
        neutral_prompts=float((r_neg > tau).any(1).float().mean()),
        concept_prompts=float((r_pos > tau).any(1).float().mean()),
        n_neutral=int(r_neg.shape[0]),
        n_concept=int(r_pos.shape[0]),
        preserve_prompts=float((r_kept > tau).float().mean()) if r_kept is not None else None,
        n_preserve=0 if r_kept is None else len(r_kept),
    )
