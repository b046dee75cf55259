"""Ungated trainings averaged into one edit (``ensemble``; the ``style`` settings' 2).

How far an attack gets against one training depends on its seed. The seed draws the rows' minibatches, the
augmentation's words, the perturbed rows, the noise of the rounds and the held-out captions. Van gogh's P4D over
five ``style`` edits varied from 0.07 to 0.34 of the test prompts, the training's share of the sd 0.107, just over
the 0.1 the ACE issue allows. The mean of ``n`` trainings, each with its own seed,

    ΔW_l = (1/n) Σ_i B_l⁽ⁱ⁾ A_l⁽ⁱ⁾ = [B_l⁽¹⁾/n … B_l⁽ⁿ⁾/n] [A_l⁽¹⁾; …; A_l⁽ⁿ⁾]    (B [d_out, r], A [r, d_in])

is one LoRA whose rank is the members' summed. Each member maps the concept's rows to the guide's, so their mean
does too. What it buys on the embedded world is in the package's notes on ``SETTINGS`` (``style``).

Member ``i`` of training seed ``s`` trains with seed ``s·n + i``, so two training seeds never share a member.
Only ungated trainings are averaged: a gated one fits its own gate, and an edit holds one gate
(:func:`check_ensemble`).
"""

from __future__ import annotations

import dataclasses

import torch

from ...edit import Edit
from ...errors import ConfigError
from .. import EraseRequest
from .config import ACEConfig
from .train import train_ace

# what each training has of its own: kept per member in ``info["ensemble"]``, not for the edit as a whole
PER_TRAINING = ("cond", "rows", "losses", "rounds", "best_round", "heldout_criterion", "adversary_kv_error")


def member_seeds(seed: int, n: int) -> list[int]:
    """The seeds of training seed ``seed``'s ``n`` members: ``seed·n .. seed·n + n − 1`` (one: ``seed`` itself)."""
    return [seed * n + i for i in range(n)]


def check_ensemble(cfg: ACEConfig) -> None:
    """A ConfigError for ``ensemble > 1`` on a gated training (module docstring). Checked when ACE runs, not in the
    config: the ``style`` settings turn the gate off, and a value checked alone is checked at ACE's defaults."""
    if cfg.ensemble > 1 and cfg.gated:
        raise ConfigError(
            f"ACE's ensemble = {cfg.ensemble} averages ungated trainings, and this one is gated: each gated training "
            "fits its own gate, and an edit holds one. Pass ensemble=1, or gated=False (the style settings)."
        )


def averaged(request: EraseRequest, cfg: ACEConfig) -> Edit:
    """``cfg.ensemble`` trainings of ``request`` (:func:`.train.train_ace`), their updates averaged (module
    docstring); one training is returned as it is."""
    check_ensemble(cfg)
    n = cfg.ensemble
    if n == 1:
        return train_ace(request, cfg)
    seeds = member_seeds(cfg.seed, n)
    members = [train_ace(request, dataclasses.replace(cfg, seed=s, ensemble=1)) for s in seeds]
    updates = {
        name: (
            torch.cat([m.updates[name][0] / n for m in members], dim=1),  # [d_out, Σ r]
            torch.cat([m.updates[name][1] for m in members], dim=0),  # [Σ r, d_in]
        )
        for name in members[0].updates
    }
    info = {k: v for k, v in members[0].info.items() if k not in PER_TRAINING}
    info |= {
        "rank": sum(m.info["rank"] for m in members),
        "rounds": sum(m.info["rounds"] for m in members),  # every member's
        "mined_words": list(dict.fromkeys(w for m in members for w in m.info["mined_words"])),
        "mined_render_agreement": {w: r for m in members for w, r in m.info["mined_render_agreement"].items()},
        "ensemble": [
            {"seed": s, "mined_words": m.info["mined_words"], **{k: m.info[k] for k in PER_TRAINING}}
            for s, m in zip(seeds, members)
        ],
    }
    return request.make_edit("ace", cfg, updates, guides=request.guides_or(cfg.guide), info=info)
