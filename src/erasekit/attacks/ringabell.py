"""``ringabell`` and ``ringabell-embed``: a concept vector from prompt pairs, added to the prompt (Ring-A-Bell).

Ring-A-Bell (Tsai et al., ICLR 2024) builds the concept's direction in the text encoder's output
space from ``N`` pairs of prompts with and without it, and adds it with strength η to a prompt:

    v = (1/N) Σ_i [E(with_i) − E(without_i)]          [L, d], every token position
    c_adv = E(prompt) + η v

``ringabell`` is the paper's attack: a genetic search for ``length`` real tokens whose states come
closest to ``c_adv`` in squared error (:mod:`.genetic`), and the image is drawn from that typeable
prompt; ``steps`` (the number of generations) is the budget. ``ringabell-embed`` is RECE's variant
(CharlesGong12/RECE ``attack_methods/RingABell.py``): ``c_adv`` itself is fed to the model as
``prompt_embeds``. RECE averages batch means of 8 pairs, which equals the mean above only when 8
divides N, so we take the plain mean.

η defaults to the value RECE's scripts use for the concept's kind (:data:`ETA`, from the request's
``concept_kind``): 3 for nudity (``RingABell.py --eta`` default, "3 for nudity"), 0.9 for a style
(``attack_methods/ringabell.sh``, Van Gogh). RECE gives none for objects or colours; they, and
concepts of unknown kind, take the script's default, 3.

The genetic search reads the text encoder only, never the U-Net: as in the paper, whose prompts are
found once and then used against every model, its result for a case does not depend on the erasure.
With ``cache`` set (``erasekit compare`` sets it), each found prompt is kept under a key of the search's
target (which the text encoder fixes to the bit), its settings and its random stream, and an attack on
another edit of the same base model reuses it; only the image is drawn again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..io import cached_json
from ..progress import Progress
from ..text import TextEncoder
from . import AttackRequest, register
from .base import Case, Findings, Outcome, check_counts
from .genetic import genetic_search
from .pairs import pairs_for

# η by concept kind, as RECE's scripts run Ring-A-Bell: RingABell.py "--eta ... default=3 ... # 3 for
# nudity, 0.9 for Van Gogh" and attack_methods/ringabell.sh "--eta 0.9 --concept vangogh".
ETA = {"unsafe": 3.0, "style": 0.9}
ETA_DEFAULT = 3.0  # RingABell.py's default, for kinds RECE does not attack (object, color) and unknown ones


@dataclass(frozen=True)
class RingABellEmbedConfig:
    eta: float | None = None  # None: ETA by the request's concept kind
    pairs: str | None = None  # CSV with "sensitive prompt", "normal prompt"; None: shipped file or templates


@dataclass(frozen=True)
class RingABellConfig(RingABellEmbedConfig):
    length: int = 16  # tokens of the searched prompt (InversePrompt.ipynb "length")
    population: int = 200
    steps: int = 3000  # generations of the genetic search
    mutation_rate: float = 0.25
    crossover_rate: float = 0.5
    batch_size: int = 64  # prompts per text-encoder pass in the search (speed only)
    cache: str | None = None  # folder of found prompts, reused across edits (see the module docstring)

    def __post_init__(self) -> None:
        check_counts(self, "steps", "population", "length", "batch_size")
        for name in ("mutation_rate", "crossover_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"RingABellConfig.{name} must be in [0, 1], got {getattr(self, name)}.")


def concept_vector(text: TextEncoder, pairs: list[tuple[str, str]]) -> Tensor:
    """``v = mean_i E(with_i) − E(without_i)``, ``[L, d]`` float32."""
    with_, without = zip(*pairs)
    return (text.encode_text(list(with_)) - text.encode_text(list(without))).mean(0)


def eta_for(request: AttackRequest, cfg: RingABellEmbedConfig) -> float:
    """The config's η, else RECE's for the request's concept kind (:data:`ETA`), else :data:`ETA_DEFAULT`."""
    if cfg.eta is not None:
        return cfg.eta
    return ETA.get(request.concept_kind or "", ETA_DEFAULT)


@register("ringabell", RingABellConfig)
def ringabell(request: AttackRequest, cfg: RingABellConfig, *, progress: Progress | None = None) -> Findings:
    """Ring-A-Bell: a genetic search for real tokens whose states approach prompt + η × concept vector."""

    def search(i: int, case: Case, target: Tensor) -> Outcome:
        def case_progress(done: int, total: int) -> None:  # every generation of every case
            if progress is not None:
                progress(i * total + done, len(request.cases) * total)

        return _search(request, cfg, case_index=i, target=target, progress=case_progress)

    return _attack(request, cfg, search)


@register("ringabell_embed", RingABellEmbedConfig)
def ringabell_embed(request: AttackRequest, cfg: RingABellEmbedConfig, *, progress: Progress | None = None) -> Findings:
    """Ring-A-Bell, continuous (RECE's variant): prompt embedding plus η × concept vector, fed as is."""

    def feed(i: int, case: Case, target: Tensor) -> Outcome:
        images, verdicts = request.judged(target[None], [case])
        if progress is not None:
            progress(i + 1, len(request.cases))
        return Outcome(target, images[0], verdicts[0])

    return _attack(request, cfg, feed)


def _attack(
    request: AttackRequest, cfg: RingABellEmbedConfig, outcome_for: Callable[[int, Case, Tensor], Outcome]
) -> Findings:
    """The concept vector, then ``outcome_for(i, case, c_adv [L, d])`` for every case."""
    pairs, source = pairs_for(request.concept, cfg.pairs)
    text, eta = request.text, eta_for(request, cfg)
    v = concept_vector(text, pairs).cpu()
    outcomes = [
        outcome_for(i, case, text.encode_text([case.prompt])[0].cpu() + eta * v) for i, case in enumerate(request.cases)
    ]
    info = {"eta": eta, "n_pairs": len(pairs), "pairs": source, "vector_norm": float(v.norm())}
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

    def search() -> dict[str, Any]:
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
        return {"token_ids": best.tolist(), "search_loss": best_loss}

    found = (
        search()
        if cfg.cache is None
        else cached_json(Path(cfg.cache) / f"{_search_key(request, cfg, case_index, target)}.json", search)
    )
    best = torch.tensor(found["token_ids"])
    ids = with_tokens(best[None])
    with torch.no_grad():
        embeds = text.encode(ids).float().cpu()
    images, verdicts = request.judged(embeds, [request.cases[case_index]])
    return Outcome(embeds[0], images[0], verdicts[0], text.decode(best), info=found)


def _search_key(request: AttackRequest, cfg: RingABellConfig, case_index: int, target: Tensor) -> str:
    """What the search's result depends on: its target (bit-exact), its settings and its random stream."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("cache", "batch_size")}
    digest = hashlib.sha256(target.float().contiguous().numpy().tobytes())
    digest.update(json.dumps([settings, request.seed, case_index], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]
