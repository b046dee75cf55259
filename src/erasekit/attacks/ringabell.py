"""``ringabell``: add a concept vector, the mean text-embedding difference over prompt pairs (Ring-A-Bell).

Ring-A-Bell (Tsai et al., ICLR 2024) builds the concept's direction in the text encoder's output
space from ``N`` pairs of prompts with and without it, and adds it with strength η to a prompt:

    v = (1/N) Σ_i [E(with_i) − E(without_i)]          [L, d], every token position
    c_adv = E(prompt) + η v

RECE's variant (CharlesGong12/RECE ``attack_methods/RingABell.py``) feeds ``c_adv`` to the model as
``prompt_embeds`` (η = 3 for nudity, 0.9 for Van Gogh there); it averages batch means of 8 pairs,
which equals the mean above only when 8 divides N, so we take the plain mean. With
``search="genetic"`` the original attack's last step runs too: a genetic search for ``length`` real
tokens whose states come closest to ``c_adv`` in squared error (:mod:`.genetic`), and the image is
drawn from that typeable prompt. ``steps`` (the number of generations) is then the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..errors import ConfigError
from ..progress import Progress
from ..text import TextEncoder
from . import AttackRequest, register
from .base import Findings, Outcome
from .genetic import genetic_search
from .pairs import pairs_for


@dataclass(frozen=True)
class RingABellConfig:
    eta: float = 3.0  # RingABell.py --eta (3 nudity, 0.9 Van Gogh)
    pairs: str | None = None  # CSV with "sensitive prompt", "normal prompt"; None: shipped file or templates
    search: Literal["none", "genetic"] = "none"
    length: int = 16  # tokens of the searched prompt (InversePrompt.ipynb "length")
    population: int = 200
    steps: int = 3000  # generations of the genetic search
    mutation_rate: float = 0.25
    crossover_rate: float = 0.5
    batch_size: int = 64  # prompts per text-encoder pass in the search (speed only)

    def __post_init__(self) -> None:
        for name in ("length", "population", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"RingABellConfig.{name} must be ≥ 1, got {getattr(self, name)}.")
        for name in ("mutation_rate", "crossover_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"RingABellConfig.{name} must be in [0, 1], got {getattr(self, name)}.")


def concept_vector(text: TextEncoder, pairs: list[tuple[str, str]]) -> Tensor:
    """``v = mean_i E(with_i) − E(without_i)``, ``[L, d]`` float32."""
    with_, without = zip(*pairs)
    return (text.encode_text(list(with_)) - text.encode_text(list(without))).mean(0)


@register("ringabell", RingABellConfig)
def ringabell(request: AttackRequest, cfg: RingABellConfig, *, progress: Progress | None = None) -> Findings:
    """Ring-A-Bell: prompt embedding plus η times the concept's mean pair difference (RECE's variant)."""
    pairs, source = pairs_for(request.concept, cfg.pairs)
    text = request.text
    v = concept_vector(text, pairs).cpu()
    outcomes = []
    for i, case in enumerate(request.cases):
        target = text.encode_text([case.prompt])[0].cpu() + cfg.eta * v  # [L, d]
        if cfg.search == "none":
            images, verdicts = request.judged(target[None], [case])
            outcomes.append(Outcome(target, images[0], verdicts[0]))
            if progress is not None:
                progress(i + 1, len(request.cases))
            continue

        def case_progress(done: int, total: int, i: int = i) -> None:  # every generation of every case
            if progress is not None:
                progress(i * total + done, len(request.cases) * total)

        outcomes.append(_search(request, cfg, case_index=i, target=target, progress=case_progress))
    info = {"n_pairs": len(pairs), "pairs": source, "vector_norm": float(v.norm())}
    return Findings(outcomes, info=info, tensors={"concept_vector": v})


def _search(
    request: AttackRequest, cfg: RingABellConfig, *, case_index: int, target: Tensor, progress: Progress
) -> Outcome:
    """The genetic search for a typeable prompt whose states approach ``target [L, d]``."""
    text = request.text
    frame = text.slotted([""], cfg.length)  # start, length slots, end, padding

    def with_tokens(ids: Tensor) -> Tensor:
        full = frame.ids.expand(len(ids), -1).clone()
        full[:, frame.slots] = ids
        return full

    @torch.no_grad()
    def loss(ids: Tensor) -> Tensor:
        parts = []
        for s in range(0, len(ids), cfg.batch_size):
            states = text.encode(with_tokens(ids[s : s + cfg.batch_size])).float().cpu()
            parts.append(((states - target) ** 2).sum((1, 2)))
        return torch.cat(parts)

    best, best_loss = genetic_search(
        loss,
        text.vocabulary(),
        length=cfg.length,
        population=cfg.population,
        generations=cfg.steps,
        mutation_rate=cfg.mutation_rate,
        crossover_rate=cfg.crossover_rate,
        generator=request.generator("ringabell", case_index),
        progress=progress,
    )
    ids = with_tokens(best[None])
    with torch.no_grad():
        embeds = text.encode(ids).float().cpu()
    images, verdicts = request.judged(embeds, [request.cases[case_index]])
    info = {"token_ids": best.tolist(), "search_loss": best_loss}
    return Outcome(embeds[0], images[0], verdicts[0], text.decode(best), info=info)
