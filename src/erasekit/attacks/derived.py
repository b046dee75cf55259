"""``derived`` and ``derived-bounded``: the closed-form embedding that regenerates the concept (RECE Eq. 5/8).

A white-box diagnostic, not a threat model: it reads the edited weights and the original ones, which
an outside user of an erased model does not have, so reports list it apart (``Attack.white_box``).

RECE (Gong et al., ECCV 2024, arXiv 2407.12383) asks which text embedding ``c'`` makes the edited
K/V projections output what the original ones output for the concept's embedding ``c``:

    c' = argmin Σ_l ‖W_l c' − W_orig,l c‖² + λ‖c'‖²                                  (Eq. 5)
       = (λI + Σ_l W_lᵀ W_l)⁻¹ (Σ_l W_lᵀ W_orig,l) c                                   (Eq. 8)

summed over every cross-attention ``to_v`` (and ``to_k``) layer, applied to every position of the
prompt's padded token states (the reference, ``close_form_emb.py:close_form_emb_regzero``, leaves
the concept-token slice commented out). ``c'`` is fed to the pipeline as ``prompt_embeds``.

The solve is RECE's own, :func:`erasekit.closed_form.regenerating_embeddings`, fed with the two
sums taken from the live (edited) U-Net and the originals its applied edits saved, so it holds for
any edit (closed-form, fine-tuned, a LoRA file). A gated edit (ACE) changes no weight: its update
counts here as if its gate were open, so the attack solves against the whole linear update and
its embedding must then get past the gate: where the gate opens on ``c'`` the edited K/V are the original's
for the concept, where it shuts they are the original weights' on ``c'``. The findings report the share of
``c'``'s token states on which some applied gate opens (``gate_open``, per case and the mean), which is what
the attack's success turns on for such an edit. On the embedded world's nudity under ACE's ``unsafe`` settings
(``bench/ACE_MEASUREMENTS.md``, "What `derived` turns on for a gated edit") ``c'`` had about 8 times the prompt's
norm; drawn under the edit it showed nudity on 0.45 of 44 val prompts for the edit whose gate opened on 0.67 of its
tokens and on 0.05 for the one whose gate opened on 0.24, and under the original model (no gate, no update) on
0.02-0.09.

``c'`` may leave the range of states the text encoder produces: its findings report λ and the norm
ratio ‖c'‖ / ‖c‖ (Frobenius over ``[L, d]``) per case and their median. ``derived-bounded`` keeps
each token state ``c'_l`` within the norms the real prompts ``p`` of the attack (the cases' prompts,
through the plain text encoder) produce at position ``l``, ``[min_p ‖E(p)_l‖, max_p ‖E(p)_l‖]``, by
solving Eq. 5 under that constraint rather than shrinking Eq. 8's answer: the minimiser of Eq. 5 with
``‖c'_l‖ ≤ high_l`` is Eq. 8's with a larger λ_l, the smallest that meets the bound (the norm falls
monotonically in λ; a trust-region step, :mod:`erasekit.bounded_eq8`).
A state still under ``low_l`` is scaled up to it. With a single prompt the range is that prompt's own
norm at each position. Its findings report each case's largest λ_l.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
from torch import Tensor

from ..bounded_eq8 import derived_in_range, norm_range
from ..closed_form import regenerating_embeddings
from ..edit import applied_gates, base_weights
from ..errors import ConfigError
from ..gate import TokenGate
from ..progress import Progress
from ..targets import find_targets
from . import AttackRequest, register
from .base import Findings, Outcome

F64 = torch.float64


@dataclass(frozen=True)
class DerivedConfig:
    reg_lamb: float = 1e-3  # λ of Eq. 8 (close_form_emb.py --reg_scale default)
    edit_keys: bool = True  # sum over to_k as well as to_v (--with_to_k)

    def __post_init__(self) -> None:
        if not self.reg_lamb > 0:
            raise ConfigError(f"DerivedConfig.reg_lamb must be > 0, got {self.reg_lamb}: Eq. 8 needs λ > 0.")


@torch.no_grad()
def grams(unet: torch.nn.Module, *, edit_keys: bool) -> tuple[Tensor, Tensor]:
    """``(Σ W_lᵀ W_l, Σ W_lᵀ W_orig,l)``, each ``[d, d]`` float64, from the live (edited) U-Net."""
    originals = base_weights(unet)
    targets = find_targets(unet, edit_keys=edit_keys)
    gated: dict[str, Tensor] = {}
    for _, updates in applied_gates(unet):
        for name, (B, A) in updates.items():
            gated[name] = gated.get(name, 0) + B.to(F64) @ A.to(F64)
    d = targets.items[0].weight.shape[1]
    S_cur, S_cross = torch.zeros(d, d, dtype=F64), torch.zeros(d, d, dtype=F64)
    for t in targets:
        W = t.weight.detach().to("cpu", F64)
        if t.name in gated:
            W = W + gated[t.name]
        S_cur += W.T @ W
        S_cross += W.T @ originals.get(t.name, t.weight).detach().to("cpu", F64)
    return S_cur, S_cross


@register("derived", DerivedConfig, white_box=True)
def derived(request: AttackRequest, cfg: DerivedConfig, *, progress: Progress | None = None) -> Findings:
    """RECE Eq. 8 (white-box diagnostic): the embedding the edited K/V layers map onto the original concept's."""
    return _derive(request, cfg, None, progress)


@register("derived_bounded", DerivedConfig, white_box=True)
def derived_bounded(request: AttackRequest, cfg: DerivedConfig, *, progress: Progress | None = None) -> Findings:
    """RECE Eq. 8 (white-box diagnostic), each token state's norm kept within the range real prompts produce."""
    states = request.text.encode_text([c.prompt for c in request.cases]).float().cpu()  # [N, L, d]
    return _derive(request, cfg, norm_range(states), progress)


def _derive(
    request: AttackRequest, cfg: DerivedConfig, bounds: tuple[Tensor, Tensor] | None, progress: Progress | None
) -> Findings:
    """Eq. 8 for every case, rescaled into ``bounds`` (``[L]`` low, ``[L]`` high norms) when given."""
    unet = request.victim.pipe.unet
    S_cur, S_cross = grams(unet, edit_keys=cfg.edit_keys)
    gates = [gate for gate, _ in applied_gates(unet)]
    outcomes, ratios, opens = [], [], []
    for i, case in enumerate(request.cases):
        states = request.text.encode_text([case.prompt])[0].cpu().float()  # [L, d], every position
        extra = {}
        if bounds is None:
            adv = regenerating_embeddings(S_cur, S_cross, states, cfg.reg_lamb).float()
        else:
            adv, lam = derived_in_range(S_cur, S_cross, states, cfg.reg_lamb, *bounds)
            extra = {"reg_lamb_max": float(lam.max())}
        ratios.append(float(adv.norm() / states.norm()))
        if gates:
            opens.append(gate_open(gates, adv))
            extra["gate_open"] = opens[-1]
        images, verdicts = request.judged(adv[None], [case])
        outcomes.append(Outcome(adv, images[0], verdicts[0], info={"norm_ratio": ratios[-1], **extra}))
        if progress is not None:
            progress(i + 1, len(request.cases))
    info = {"reg_lamb": cfg.reg_lamb, "norm_ratio": ratios, "norm_ratio_median": statistics.median(ratios)}
    if opens:
        info["gate_open_mean"] = statistics.mean(opens)
    return Findings(outcomes, info=info)


def gate_open(gates: list[TokenGate], states: Tensor) -> float:
    """The share of the token states ``[L, d]`` of one prompt on which at least one of ``gates`` opens."""
    return float(torch.stack([gate.opens(states[None])[0] for gate in gates]).any(0).float().mean())
