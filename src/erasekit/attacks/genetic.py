"""Genetic search over token ids, as Ring-A-Bell inverts a target embedding into a prompt.

Ring-A-Bell (Tsai et al., ICLR 2024; ``InversePrompt.ipynb``): a population of ``length``-token
prompts; each generation keeps the better half by loss, lets each survivor breed with probability
``crossover_rate`` with a random survivor (one-point crossover, two children), then replaces one
random token of each individual with probability ``mutation_rate``. Defaults there: population 200,
3000 generations, mutation 0.25, crossover 0.5, 16 tokens. Differences: the best prompt seen in
any generation is returned (the reference returns the best of the last one, which mutation may
have touched), and the crossover cut falls after token 1..length (the reference's, counted with the
start token, after token 0..length-1). Survivors that mutation left alone are not scored again (their
loss is known).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..progress import Progress


def genetic_search(
    loss: Callable[[Tensor], Tensor],
    vocab: Tensor,
    *,
    length: int,
    population: int,
    generations: int,
    mutation_rate: float,
    crossover_rate: float,
    generator: torch.Generator,
    progress: Progress | None = None,
) -> tuple[Tensor, float]:
    """The lowest-loss token sequence found, ``([length] ids, loss)``.

    Args:
        loss: ``[P, length]`` candidate ids -> ``[P]`` losses (lower is better).
        vocab: ``[V]`` ids a token may take.
        generator: the only source of randomness.
    """
    pop = vocab[torch.randint(len(vocab), (population, length), generator=generator)]
    scores = loss(pop).detach().cpu()
    best, best_loss = pop[0], float("inf")
    for g in range(generations):
        order = scores.argsort()
        if float(scores[order[0]]) < best_loss:
            best, best_loss = pop[order[0]].clone(), float(scores[order[0]])
        keep = order[: max(population // 2, 1)]
        survivors, survivor_scores = pop[keep], scores[keep]
        if progress is not None:
            progress(g + 1, generations)
        if g == generations - 1:
            break
        pop, hit = _mutate(_crossover(survivors, crossover_rate, generator), vocab, mutation_rate, generator)
        # a survivor no mutation touched keeps its loss: only new individuals go through the encoder
        # (about 3/8 of the population at the defaults are such survivors)
        kept = torch.zeros(len(pop), dtype=torch.bool)
        kept[: len(survivors)] = ~hit[: len(survivors)]
        scores = torch.empty(len(pop), dtype=survivor_scores.dtype)
        scores[kept] = survivor_scores[kept[: len(survivors)]]
        if (~kept).any():
            scores[~kept] = loss(pop[~kept]).detach().cpu().to(scores.dtype)
    return best, best_loss


def _crossover(parents: Tensor, rate: float, gen: torch.Generator) -> Tensor:
    """Each parent, plus two one-point children with a random partner with probability ``rate``."""
    out = [parents]
    n, length = parents.shape
    for i in range(n):
        if torch.rand((), generator=gen) < rate:
            j = int(torch.randint(n, (), generator=gen))
            cut = int(torch.randint(1, length + 1, (), generator=gen))
            a, b = parents[i], parents[j]
            out.append(torch.stack([torch.cat([a[:cut], b[cut:]]), torch.cat([b[:cut], a[cut:]])]))
    return torch.cat(out)


def _mutate(pop: Tensor, vocab: Tensor, rate: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """With probability ``rate`` per individual, one random position takes a random token; also returns
    which individuals were hit ``[P]``."""
    pop = pop.clone()
    hit = torch.rand(len(pop), generator=gen) < rate
    where = torch.randint(pop.shape[1], (len(pop),), generator=gen)
    value = vocab[torch.randint(len(vocab), (len(pop),), generator=gen)]
    pop[hit, where[hit]] = value[hit]
    return pop, hit
