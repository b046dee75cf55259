"""Part 1b of ACE (package docstring): related terms mined without user input.

Two kinds, both erased with the concept:

- **vocabulary neighbours**: the ``mine_candidates`` whole words of the tokenizer whose input
  embeddings are nearest (cosine) to the concept's mean token embedding, kept when the original
  model reads them as the concept: the K/V of the word's state ``w`` is closer to the concept's ``c``
  than any preserved concept's is, in the metric every cross-attention layer applies,

      cos_S(w, c) = wᵀ S c / √(wᵀ S w · cᵀ S c),   S = Σ_l W_lᵀ W_l    (RECE Eq. 8's Gram),

  and at least ``mine_similarity``. At most ``mine_words`` per concept, the closest first. The cosine
  reads how the text encoder relates words, not what the U-Net draws: on the embedded world it also
  admits near-antonyms and hypernyms ("clothed" 0.81 to "nudity" beside "naked" 0.88, "colour" 0.82 to
  "red", "vehicle" 0.75 to "garbage truck"); a preserved concept raises the bar, and without one only
  0.5 stands in the way. A check on what the original renders for the word is the missing part.
- **perturbed states** (RealEra's neighbour concepts): ``mine_perturbations`` copies of the concept's
  token rows moved by Gaussian noise of ``mine_radius`` times the rows' rms, erased to the same guide
  rows in the outer loss (:func:`perturbed_rows`).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import EraseRequest
from .config import ACEConfig
from .neutral import content_words


def mine_words(request: EraseRequest, cfg: ACEConfig, S: Tensor) -> tuple[str, ...]:
    """Vocabulary neighbours of every concept that the original reads as it (module docstring)."""
    pipe = request.pipe
    if not cfg.mine_words or pipe is None or getattr(pipe, "tokenizer", None) is None:
        return ()
    tokenizer, table = pipe.tokenizer, pipe.text_encoder.get_input_embeddings().weight.detach().float()
    ids, words = whole_words(tokenizer)
    banned = content_words([*request.concepts, *request.preserve, *cfg.synonyms])
    keep = torch.tensor([w not in banned for w in words])
    ids, words = ids[keep], [w for w, k in zip(words, keep.tolist()) if k]
    found: list[str] = []
    for concept in request.concepts:
        own = tokenizer(concept, add_special_tokens=False).input_ids
        q = table[torch.tensor(own)].mean(0)
        near = (F.normalize(table[ids], dim=-1) @ F.normalize(q, dim=0)).topk(min(cfg.mine_candidates, len(words)))
        candidates = [words[i] for i in near.indices.tolist()]
        states = _last_states(request, [concept, *request.preserve, *candidates])
        sim = _cos_s(states, states[0], S)  # [1 + n_preserve + n_candidates]
        bar = max([cfg.mine_similarity, *sim[1 : 1 + len(request.preserve)].tolist()])
        scored = sorted(zip(sim[1 + len(request.preserve) :].tolist(), candidates), reverse=True)
        found += [w for s, w in scored if s > bar and w not in found][: cfg.mine_words]
    return tuple(found)


def perturbed_rows(C: Tensor, G: Tensor, cfg: ACEConfig, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``mine_perturbations`` noisy copies of the concept rows ``C [n, d]`` and their guide rows."""
    if not cfg.mine_perturbations:
        return C[:0], G[:0]
    scale = cfg.mine_radius * float(C.pow(2).mean().sqrt())
    noise = torch.randn((cfg.mine_perturbations, *C.shape), generator=gen) * scale
    return (C + noise).reshape(-1, C.shape[1]), G.repeat(cfg.mine_perturbations, 1)


# tokenizer -> its whole words: decoding a 30k vocabulary token by token costs ~0.3 s a call
_WHOLE_WORDS: weakref.WeakKeyDictionary[Any, tuple[Tensor, list[str]]] = weakref.WeakKeyDictionary()


def whole_words(tokenizer: Any) -> tuple[Tensor, list[str]]:
    """``(ids, words)`` of the vocabulary's tokens that are whole ASCII words of 3+ letters (cached per tokenizer)."""
    if tokenizer not in _WHOLE_WORDS:
        vocab = tokenizer.get_vocab()
        pairs = sorted((i, tokenizer.convert_tokens_to_string([t]).strip()) for t, i in vocab.items())
        pairs = [(i, w) for i, w in pairs if w.isalpha() and w.isascii() and len(w) >= 3]
        _WHOLE_WORDS[tokenizer] = (torch.tensor([i for i, _ in pairs]), [w for _, w in pairs])
    ids, words = _WHOLE_WORDS[tokenizer]
    return ids.clone(), list(words)


def _last_states(request: EraseRequest, texts: list[str]) -> Tensor:
    """Each text's state at its last word ``[n, d]``: what a causal encoder has read of it all."""
    enc = request.encoder(texts)
    return enc.states[torch.arange(len(texts)), enc.last_word].float()


def _cos_s(x: Tensor, c: Tensor, S: Tensor) -> Tensor:
    return (x @ S @ c) / ((x @ S * x).sum(-1) * (c @ S @ c)).sqrt().clamp_min(1e-12)
