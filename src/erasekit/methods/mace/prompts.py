"""MACE's prompts and the token positions each stage reads.

Every concept is put in ``n_prompts`` of the templates (drawn with a seeded ``random.Random``), and
each prompt is paired with the same template around the concept's guide. Stage 1 reads the
*co-existing words* of each pair: the tokens the two prompts share before and after the concept,
then the end token and padding, aligned position by position (:func:`coexisting_positions`). In a
causal text encoder those states have seen the concept, which is the residual information MACE's
refinement removes. Stage 2 reads the *concept positions* of a prompt: the concept's own tokens and,
with ``use_pooler``, the end token and the padding after it (:func:`concept_positions`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ...concepts import ErasePairs
from ...errors import ConfigError
from .. import EraseRequest
from .config import MACEConfig


def tokenizer_of(request: EraseRequest) -> Any:
    """The tokenizer behind the request's encoder (or its pipeline's)."""
    tokenizer = getattr(request.encoder, "tokenizer", None) or getattr(request.pipe, "tokenizer", None)
    if tokenizer is None:
        raise ConfigError(
            "MACE aligns the tokens of each prompt with its guide's, so it needs a tokenizer: call "
            "erasekit.erase(pipe, ...) with a pipeline, or give the encoder a .tokenizer."
        )
    return tokenizer


def concept_prompts(concepts: Sequence[str], guides: Sequence[str], cfg: MACEConfig) -> list[list[tuple[str, str]]]:
    """Per concept, ``(prompt, guide prompt)`` pairs: ``min(n_prompts, len(templates))`` templates, seeded."""
    pairs = []
    for k, (concept, guide) in enumerate(zip(concepts, guides)):
        picks = random.Random(cfg.seed * 1009 + k).sample(
            range(len(cfg.templates)), min(cfg.n_prompts, len(cfg.templates))
        )
        pairs.append([(cfg.templates[i].format(concept), cfg.templates[i].format(guide)) for i in picks])
    return pairs


def coexisting_positions(old: Sequence[int], new: Sequence[int], length: int) -> tuple[list[int], list[int]]:
    """Aligned positions of the words two prompts share around the part where they differ.

    ``old`` and ``new`` are token ids with the start and end tokens and without padding. With ``p``
    the common prefix and ``s`` the common suffix (the end token included), both lists are the
    prefix positions, then ``s + length − max(len(old), len(new))`` positions from each prompt's
    suffix on (into the padding): the reference's alignment of co-existing words.
    """
    p = 0
    while p < min(len(old), len(new)) and old[p] == new[p]:
        p += 1
    s = 0
    while s < min(len(old), len(new)) - p and old[-1 - s] == new[-1 - s]:
        s += 1
    tail = s + length - max(len(old), len(new))
    return (
        [*range(p), *range(len(old) - s, len(old) - s + tail)],
        [*range(p), *range(len(new) - s, len(new) - s + tail)],
    )


def refinement_rows(request: EraseRequest, pairs: list[list[tuple[str, str]]]) -> ErasePairs:
    """Stage 1's rows: each prompt's co-existing-word states ``c`` and the guide prompt's states ``g`` there."""
    tokenizer = tokenizer_of(request)
    L = request.encoder.max_length
    old_texts = [o for per in pairs for o, _ in per]
    new_texts = [n for per in pairs for _, n in per]
    request.prefetch(old_texts, new_texts)
    old_states, new_states = request.encoder(old_texts).states, request.encoder(new_texts).states  # [P, L, d]
    C, G = [], []
    for b, (o, n) in enumerate(zip(old_texts, new_texts)):
        ids_o = tokenizer(o, truncation=True, max_length=L).input_ids
        ids_n = tokenizer(n, truncation=True, max_length=L).input_ids
        i_o, i_n = coexisting_positions(ids_o, ids_n, L)
        C.append(old_states[b, i_o])
        G.append(new_states[b, i_n])
    return ErasePairs.aligned(torch.cat(C), torch.cat(G))


def concept_positions(request: EraseRequest, prompts: Sequence[str], concept: str, *, use_pooler: bool) -> Tensor:
    """``[P, L]`` bool: where each prompt holds ``concept``'s tokens (and, with ``use_pooler``, its end and padding).

    Raises:
        ConfigError: a prompt does not hold the concept's tokens as they tokenise alone.
    """
    tokenizer = tokenizer_of(request)
    L = request.encoder.max_length
    word = tokenizer(concept, add_special_tokens=False).input_ids
    out = torch.zeros(len(prompts), L, dtype=torch.bool)
    for b, prompt in enumerate(prompts):
        ids = tokenizer(prompt, truncation=True, max_length=L).input_ids
        for i in range(len(ids) - len(word) + 1):
            if ids[i : i + len(word)] == word:
                out[b, i : i + len(word)] = True
        if not out[b].any():
            raise ConfigError(
                f"The prompt {prompt!r} does not hold the tokens of {concept!r} as they tokenise alone, so the "
                "attention loss has no concept token to act on: use templates that keep the concept a separate word."
            )
        if use_pooler:
            out[b, len(ids) - 1 :] = True  # the end token and the padding: they have read the whole prompt
    return out
