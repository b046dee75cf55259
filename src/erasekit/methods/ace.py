"""ACE: Attentional Concept Erasure (arXiv 2504.11850), a first working implementation.

The abstract names three parts: a closed-form manipulation of attention, a gated low-rank
adaptation, and adversarially augmented fine-tuning. No code was released; this module is our
reading of it, with every choice the abstract leaves open written down here.

**1. Prompt sets.** ``target``: every concept and ``synonyms`` put in ``templates``; ``neutral``:
generic prompts with no concept; ``retain``: the preserve set put in the same templates. Each
target and neutral prompt also comes ``augment`` times behind ``prefix_words`` random vocabulary
words: prompt-space attacks (UnlearnDiff's prefix search, a learned pseudo-word) shift every
token's state through the encoder's context, and the gate must still fire on the concept and
still stay shut on words alone. Rows are
text-encoder token states: for a target prompt, the states from its last word token to the padded
end (UCE's span: in a causal encoder earlier positions have not seen the concept yet), each paired
with the guide's state at the same offset from the guide's first word position (``skip_bos``: never
the start-of-text state); for neutral and retain prompts, every position.

**2. Concept subspace and closed form.** With μ the mean neutral/retain row, the gate's subspace is
the top-``rank`` generalised eigenvectors of the target rows' scatter against the neutral/retain
scatter, ``Σ_t v = ν (Σ_n + εI) v`` (an SVD of the target rows whitened by the neutral ones:
directions where the concept varies and ordinary prompts do not), orthonormalised into ``P [d, k]``.
The update of every K/V projection is ``ΔW_l = W_l U A``: UCE's ridge solution on the target rows
(targets → guide rows, neutral/retain rows kept with weight ``preserve_scale``), cut to rank k by
reduced-rank regression (:func:`reduced_rank_ridge`). Restricting the update's row space to ``P``
instead erased too little: the concept's rows keep much of their energy outside any k-dim subspace.

With several concepts k is ``rank`` times their number: on the embedded world's 10-concept
scenario a shared k = 8 left 78% of the target images showing their concept, k = 80 erased church,
van gogh and red completely (parachute 0.12; nudity 0.88 stays hard).

**3. Gate.** ``g(c) = σ(s (‖Pᵀ(c − μ)‖²/‖c − μ‖² − τ))`` per token (:mod:`erasekit.gate`), applied by an
attention processor: a token gets ``W c + g(c) ΔW c``. The ratios of ordinary tokens are orders of
magnitude below the concept's (on the embedded world ~1e-4 against ~0.3), so ``τ`` starts at the
geometric mean of the 95th percentile of the neutral/retain rows' ratios and the 5th of the target
rows', close to the ordinary tokens, where an adversary must strip most of the concept to slip
under it; ``s`` starts where 99% of the neutral/retain rows get ``g < 0.01`` (or at ``sharpness``).
Both are trained in log space (they are positive and span decades).

**4. Adversarially augmented fine-tuning.** ``epochs`` rounds of a min-max game. Inner loop
(the ``soft_prompt`` attack moved to K/V space, where it is cheap): ``inner_steps`` Adam steps on
free token states ``E`` (warm-started from the last round, starting at the target rows) that make the
edited layers output what the original ones output for the concept,

    min_E Σ_l ‖W_l (E + g(E) U A E) − W_l C‖²   =   ‖(E + g(E) U A E) − C‖²_S,   S = Σ_l W_lᵀ W_l

(S is the per-model Gram RECE Eq. 8 uses, so a step costs O(n d²), not a pass over the U-Net).
Free states can leave the text encoder's range, so a second adversary plays the ``soft_prompt``
attack itself: ``soft_tokens`` input embeddings (one for all prompts, warm-started, from the
concept's word) in front of every target prompt, through the text encoder, with the same K/V
objective on the span rows (shifted by the slots). Its rows join ``E``. It is off by default: on the
embedded world it made ACE ~10x slower (85 s against 9 s for "van gogh") and moved no attack's
success rate (soft_prompt on "nudity" stayed at 1.00, discrete on "van gogh" 0.75-0.88 either way).
Outer loop: Adam on ``U, A, P, s, τ`` against

    ‖edit(C) − G‖²_S + ‖edit(E) − G‖²_S + w_keep ‖edit(K) − K‖²_S
    + w_gate (BCE(g(C), 1) + BCE(g(E), 1) + BCE(g(K), 0))

(S-terms in units of ‖C − G‖²_S). ``loss="denoise"`` adds, every round, the denoising loss of the gated
U-Net on the original model's images of the concept (:mod:`erasekit.diffusion`): the edited
prediction under the adversarial prompt states should match the original's under the guide.
More rounds are not better everywhere: on the embedded world (16 target prompts, judge detection)
30 rounds against 60 gave picasso 0.06 / 0.12, van gogh 0.00 / 0.06, parachute 0.00 / 0.06, nudity
0.50 / 0.25; the default is 30.

**5. The edit.** Per layer ``(W_l U, A)`` as every closed form, plus the gate in ``Edit.gate``. Plain
``pipe.load_lora_weights`` reads the LoRA part only and applies it to every token (no gate):
``Edit.load(path).apply(pipe)`` applies the gate. ``info["gate_note"]`` says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..closed_form import F64, Factor, check_finite, layer_updates, ridge_factor
from ..concepts import ErasePairs
from ..diffusion import alphas_cumprod, noisy, predict
from ..edit import Edit, applied_gates
from ..errors import ConfigError
from ..gate import TokenGate, concept_ratio, gate_values, sync_processors
from ..text import TextEncoder
from . import EraseRequest, register

TEMPLATES = (
    "{}",
    "a photo of {}",
    "an image of {}",
    "a painting of {}",
    "a picture of {}",
    "art by {}",
    "{}, detailed",
    "a drawing of {}",
)
NEUTRAL = ("", "a photo", "an image", "a painting", "a picture", "a drawing", "a scene", "art", "a photo of something")
GATE_NOTE = (
    "The token gate needs erasekit: Edit.load(path).apply(pipe). Plain pipe.load_lora_weights applies the "
    "LoRA part to every token (no gate)."
)


@dataclass(frozen=True)
class ACEConfig:
    rank: int = 8  # k per erased concept: dimension of the concept subspace = LoRA rank (capped at d)
    synonyms: tuple[str, ...] = ()  # erased with the concepts (their paraphrases, e.g. "starry night")
    templates: tuple[str, ...] = TEMPLATES  # "{}" filled with every concept, synonym and preserved concept
    neutral: tuple[str, ...] = NEUTRAL  # prompts whose tokens the gate must leave alone
    augment: int = 4  # copies of every target and neutral prompt behind random words
    prefix_words: int = 5  # random words per copy (UnlearnDiff's k = 5 prefix tokens)
    guide: str = " "  # what erased tokens should become
    lamb: float = 0.5  # λ of the closed form (UCE's)
    preserve_scale: float = 0.1  # ps of the closed form (keeps the ungated LoRA file mild)
    whiten: float = 1e-2  # ε of Σ_n + εI, relative to tr(Σ_n)/d
    sharpness: float | None = None  # initial s of the gate; None: from the rows (module docstring, part 3)
    epochs: int = 30  # adversarial rounds (module docstring, part 4)
    inner_steps: int = 10  # adversary's Adam steps per round
    inner_lr: float = 0.05  # adversary's step, relative to the rms of the target rows
    soft_tokens: int = 0  # k of the second adversary: learned input embeddings in front of the prompts (0: off)
    soft_lr: float = 5e-3  # its Adam step (the soft_prompt attack's, textual inversion's)
    lr: float = 1e-2  # outer Adam learning rate of U, A, P (relative to their mean magnitude)
    gate_lr: float = 1e-2  # outer Adam learning rate of log s and log τ
    keep_weight: float = 1.0  # w_keep
    gate_weight: float = 1.0  # w_gate
    loss: Literal["kv", "denoise"] = "kv"  # "denoise": add the denoising loss on the U-Net each round
    denoise_weight: float = 1.0
    denoise_images: int = 2  # original-model images of the concept for the denoising loss
    edit_keys: bool = True  # edit to_k as well as to_v
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("rank",):
            if getattr(self, name) < 1:
                raise ConfigError(f"ACEConfig.{name} must be ≥ 1, got {getattr(self, name)}.")
        for name in ("epochs", "inner_steps", "augment", "prefix_words", "soft_tokens"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ACEConfig.{name} must be ≥ 0, got {getattr(self, name)}.")
        if self.sharpness is not None and not self.sharpness > 0:
            raise ConfigError(f"ACEConfig.sharpness must be > 0 or None, got {self.sharpness}.")
        for name in ("lamb", "whiten", "inner_lr", "soft_lr", "lr", "gate_lr"):
            if not getattr(self, name) > 0 or not math.isfinite(getattr(self, name)):
                raise ConfigError(f"ACEConfig.{name} must be a finite number > 0, got {getattr(self, name)}.")
        for name in ("preserve_scale", "keep_weight", "gate_weight", "denoise_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"ACEConfig.{name} must be ≥ 0, got {getattr(self, name)}.")
        if self.loss not in ("kv", "denoise"):
            raise ConfigError(f"ACEConfig.loss must be 'kv' or 'denoise', got {self.loss!r}.")
        if not self.templates or not all("{}" in t for t in self.templates):
            raise ConfigError("ACEConfig.templates must be non-empty and each must hold '{}' for the concept.")


@dataclass(frozen=True)
class Rows:
    """The token states ACE trains on (float32).

    Attributes:
        C: ``[n, d]`` target rows; G: ``[n, d]`` their guide rows.
        K: ``[m, d]`` neutral and retain rows.
        states: ``[P, L, d]`` the target prompts' full states; where: ``(prompt [n], position [n])`` of each C row.
        guide_states: ``[P, L, d]`` the guide prompt's states, one per target prompt.
    """

    C: Tensor
    G: Tensor
    K: Tensor
    states: Tensor
    where: tuple[Tensor, Tensor]
    guide_states: Tensor


def prompt_sets(request: EraseRequest, cfg: ACEConfig) -> tuple[list[str], list[str], list[str]]:
    """(target prompts, the guide of each, neutral + retain prompts), augmented (module docstring, part 1)."""
    guides = request.guides_or(cfg.guide)
    target, guide_of = [], []
    for concept, guide in [*zip(request.concepts, guides), *((s, guides[0]) for s in cfg.synonyms)]:
        for template in cfg.templates:
            target.append(template.format(concept))
            guide_of.append(guide if guide else " ")
    keep = list(cfg.neutral)
    if cfg.augment and cfg.prefix_words:
        words = _words(request, cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)

        def prefixed(prompt: str) -> str:
            picks = torch.randint(len(words), (cfg.prefix_words,), generator=gen).tolist()
            return " ".join([*(words[i] for i in picks), prompt]).strip()

        n = len(target)
        target += [prefixed(target[i]) for i in range(n) for _ in range(cfg.augment)]
        guide_of += [guide_of[i] for i in range(n) for _ in range(cfg.augment)]
        keep += [prefixed(p) for p in cfg.neutral for _ in range(cfg.augment)]
    keep += [t.format(p) for p in request.preserve for t in cfg.templates]
    return target, guide_of, keep


def _words(request: EraseRequest, seed: int) -> list[str]:
    """Whole words of the pipeline's tokenizer vocabulary, to prefix prompts with."""
    tokenizer = getattr(request.pipe, "tokenizer", None)
    if tokenizer is None:
        raise ConfigError(
            "ACE's augmentation draws words from the pipeline's tokenizer; with a custom encoder pass augment=0."
        )
    vocab = (tokenizer.convert_tokens_to_string([t]).strip() for t in tokenizer.get_vocab())
    words = sorted({w for w in vocab if w.isalpha() and w.isascii() and len(w) >= 3})
    if not words:
        raise ConfigError("The tokenizer has no whole-word tokens to augment with: pass augment=0.")
    return words


def token_rows(request: EraseRequest, cfg: ACEConfig) -> Rows:
    """Encode the prompt sets and select the rows (module docstring, part 1)."""
    target, guide_of, keep = prompt_sets(request, cfg)
    enc, enc_g = request.encoder(target), request.encoder(guide_of)
    L = enc.states.shape[1]
    prompt_idx, pos, guide_pos = [], [], []
    for p in range(len(target)):
        i, j = int(enc.last_word[p]), max(int(enc_g.last_word[p]), 1)  # skip_bos: never the guide's BOS
        n = L - max(i, j)
        prompt_idx += [p] * n
        pos += range(i, i + n)
        guide_pos += range(j, j + n)
    where = (torch.tensor(prompt_idx), torch.tensor(pos))
    C = enc.states[where]
    G = enc_g.states[where[0], torch.tensor(guide_pos)]
    K = request.encoder(keep).states.reshape(-1, C.shape[1])
    check_finite(erase=C, guide=G, keep=K)
    return Rows(C.float(), G.float(), K.float(), enc.states.float(), where, enc_g.states.float())


def concept_subspace(C: Tensor, K: Tensor, rank: int, whiten: float) -> tuple[Tensor, Tensor]:
    """``(P [d, k], μ [d])``: the target rows' top generalised eigenvectors against the keep rows'.

    ``Σ_t v = ν (Σ_n + εI) v`` solved as a symmetric eigenproblem in the whitened basis
    ``L⁻¹ Σ_t L⁻ᵀ`` (``Σ_n + εI = L Lᵀ``), then ``v = L⁻ᵀ w`` orthonormalised.
    """
    d = C.shape[1]
    if rank > min(d, C.shape[0]):
        raise ConfigError(
            f"ACE rank {rank} exceeds what {C.shape[0]} target rows in {d} dimensions can span: lower --set rank=..."
        )
    mu = K.to(F64).mean(0)
    Zc, Zk = C.to(F64) - mu, K.to(F64) - mu
    S_n = Zk.T @ Zk / Zk.shape[0]
    S_n += whiten * float(torch.trace(S_n)) / d * torch.eye(d, dtype=F64)
    S_t = Zc.T @ Zc / Zc.shape[0]
    L = torch.linalg.cholesky(S_n)
    W = torch.linalg.solve_triangular(L, torch.linalg.solve_triangular(L, S_t, upper=False).T, upper=False)
    _, vecs = torch.linalg.eigh((W + W.T) / 2)  # ascending
    V = torch.linalg.solve_triangular(L.T, vecs[:, -rank:].flip(1), upper=True)  # L⁻ᵀ w
    P, _ = torch.linalg.qr(V)
    return P, mu


def reduced_rank_ridge(rows: Rows, *, rank: int, lamb: float, preserve_scale: float) -> Factor:
    """UCE's ridge update of the target rows, cut to rank k where it acts: on the target rows (part 2).

    ``T − I = U_f A_f`` is UCE's closed form (:func:`ridge_factor`: targets → guides, keep rows
    weighted by ``preserve_scale``). Its fitted change of the targets is ``F = (T − I) Cᵀ [d, n]``;
    with ``Q [d, k]`` the top-k left singular vectors of F, ``Q Qᵀ (T − I)`` is the rank-k update whose
    change of the targets is F's best rank-k approximation (Eckart–Young): reduced-rank regression.
    """
    C, K = rows.C.to(F64), rows.K.to(F64)
    full = ridge_factor(
        ErasePairs.aligned(C, rows.G.to(F64)),
        K,
        lamb=lamb,
        erase_scale=1.0,
        keep_weights=torch.full((K.shape[0],), preserve_scale, dtype=F64),
    )
    fitted = full.U @ (full.A @ C.T)  # [d, n]
    Q = torch.linalg.svd(fitted, full_matrices=False).U[:, :rank]  # [d, k]
    return Factor(Q.contiguous(), ((Q.T @ full.U) @ full.A).contiguous(), full.cond)


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


def initial_gate(ratio_target: Tensor, ratio_keep: Tensor, sharpness: float | None) -> tuple[float, float]:
    """``(s, τ)`` to start from (module docstring, part 3)."""
    keep_hi, target_lo = float(torch.quantile(ratio_keep, 0.95)), float(torch.quantile(ratio_target, 0.05))
    tau = math.sqrt(max(keep_hi, 1e-12) * max(target_lo, 1e-12))
    if sharpness is None:
        margin = tau - float(torch.quantile(ratio_keep, 0.99))
        sharpness = math.log(99) / margin if margin > 0 else 50.0
    return sharpness, tau


@torch.no_grad()
def _gate_rates(model: _Trainable, rows: Rows, E: Tensor) -> dict[str, float]:
    return {
        "gate_on_target": float((model.gate(rows.C) > 0.5).float().mean()),
        "gate_on_adversarial": float((model.gate(E) > 0.5).float().mean()),
        "gate_on_keep": float((model.gate(rows.K) > 0.5).float().mean()),
    }


def train_ace(request: EraseRequest, cfg: ACEConfig) -> Edit:
    """ACE (module docstring): closed form, gate, then adversarial rounds in K/V space."""
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


class _SoftTokens:
    """The second adversary (module docstring, part 4): learned input embeddings through the encoder."""

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
    """The optional denoising term: original-model images of the concept, a gated U-Net with live factors."""

    def __init__(self, request: EraseRequest, rows: Rows, cfg: ACEConfig, gen: torch.Generator):
        pipe = request.pipe
        if pipe is None:
            raise ConfigError(
                "ACE's loss='denoise' needs the pipeline: call erasekit.erase(pipe, ...) with no encoder."
            )
        self.pipe, self.rows, self.gen = pipe, rows, gen
        self.abar = alphas_cumprod(pipe.scheduler)
        self.prediction = pipe.scheduler.config.prediction_type
        n = min(cfg.denoise_images, rows.states.shape[0])
        self.prompts = torch.arange(n)
        empty = request.encoder([""]).states.expand(n, -1, -1)
        with torch.no_grad():
            out = pipe(
                prompt_embeds=rows.states[:n].to(pipe.device, pipe.unet.dtype),
                negative_prompt_embeds=empty.to(pipe.device, pipe.unet.dtype),
                output_type="latent",
                generator=torch.Generator().manual_seed(cfg.seed),
            )
        self.x0 = out.images.float()  # [n, C, h, w] latents of the concept by the original model

    def loss(self, model: _Trainable, E: Tensor, layers: list) -> Tensor:
        k = int(torch.randint(len(self.prompts), (1,), generator=self.gen))
        t = torch.randint(len(self.abar), (1,), generator=self.gen)
        noise = torch.randn((1, *self.x0.shape[1:]), generator=self.gen)
        x_t = noisy(self.x0[k : k + 1], noise, t, self.abar)
        states = self.rows.states[k].clone()
        mine = self.rows.where[0] == k
        states[self.rows.where[1][mine]] = E[mine]  # the adversarial rows in the prompt's sequence
        unet = self.pipe.unet
        with torch.no_grad():
            goal = predict(unet, x_t, t, self.rows.guide_states[k : k + 1])
        with _live_gate(unet, model, layers):
            pred = predict(unet, x_t, t, states[None])
        return F.mse_loss(pred, goal)


@contextmanager
def _live_gate(unet: torch.nn.Module, model: _Trainable, layers: list) -> Iterator[None]:
    """``unet`` with the trainable gated update installed (gradients flow into ``model``)."""
    applied = applied_gates(unet)
    basis, s, tau = model.gate_parts()
    gate = TokenGate(basis, model.mu, s, tau)  # type: ignore[arg-type]  # tensors: trainable
    live = {t.name: (t.weight.detach().float() @ model.U, model.A) for t in layers}
    sync_processors(unet, [*applied, (gate, live)])
    try:
        yield
    finally:
        sync_processors(unet, applied)


@register("ace", ACEConfig)
def ace(request: EraseRequest, cfg: ACEConfig) -> Edit:
    """ACE: concept-subspace closed form + token-gated low-rank K/V update + adversarial fine-tuning."""
    return train_ace(request, cfg)
