"""Prompts to the token embeddings a closed-form edit acts on.

A text-to-image pipeline turns a prompt into ``[L, d]`` token states (L = the tokenizer's padded
length, 77 for CLIP) that every cross-attention layer reads. UCE and RECE select rows of those
states exactly as their reference code does; :func:`erase_rows` and :func:`keep_rows` reproduce
that selection so that our edits equal theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import Tensor

from .errors import ConfigError, NumericalError

TokenSpan = Literal["span", "last"]
GuideAlignment = Literal["reference", "skip_bos"]


@dataclass(frozen=True)
class Encoded:
    """Token states of a batch of prompts.

    Attributes:
        states: ``[B, L, d]`` float32 text-encoder outputs, padded to the encoder's context.
        last_word: ``[B]`` index of each prompt's last word token (0 = only BOS/EOS).
    """

    states: Tensor
    last_word: Tensor


class PromptEncoder(Protocol):
    """What the methods need from a text encoder: ``encoder(texts) -> Encoded``."""

    max_length: int

    def __call__(self, texts: Sequence[str]) -> Encoded: ...


@dataclass
class EmbeddingCache:
    """Prompt -> (states ``[L, d]``, last word index). Owned by the caller, passed in explicitly."""

    rows: dict[str, tuple[Tensor, int]] = field(default_factory=dict)


class PipelineEncoder:
    """Encodes prompts as a diffusers pipeline does before its U-Net sees them.

    SD 1.x / 2.x and the embedded world: ``text_encoder(input_ids)[0]``. SDXL: the penultimate
    hidden states of both text encoders, concatenated on the feature axis, as
    ``StableDiffusionXLPipeline.encode_prompt`` does with ``clip_skip=None``. The last word index
    is read from the first tokenizer's attention mask, as UCE does (``mask.sum() - 2``).
    """

    def __init__(self, pipe: Any, *, cache: EmbeddingCache | None = None, batch_size: int = 32):
        if getattr(pipe, "tokenizer", None) is None or getattr(pipe, "text_encoder", None) is None:
            raise ConfigError(
                f"{type(pipe).__name__} has no tokenizer/text_encoder: erasekit encodes concepts with the "
                "pipeline's own text encoder. Load the full pipeline, not only its U-Net."
            )
        self.pipe = pipe
        self.cache = cache if cache is not None else EmbeddingCache()
        self.batch_size = batch_size
        self.max_length = int(pipe.tokenizer.model_max_length)
        self._pairs = [(pipe.tokenizer, pipe.text_encoder)]
        if getattr(pipe, "text_encoder_2", None) is not None and getattr(pipe, "tokenizer_2", None) is not None:
            self._pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))

    def __call__(self, texts: Sequence[str]) -> Encoded:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache.rows]
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            states, last_word = self._encode(batch)
            for text, s, i in zip(batch, states, last_word.tolist()):
                self.cache.rows[text] = (s, i)
        rows = [self.cache.rows[t] for t in texts]
        return Encoded(torch.stack([r[0] for r in rows]), torch.tensor([r[1] for r in rows]))

    @torch.no_grad()
    def _encode(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        parts, last_word = [], None
        for tokenizer, encoder in self._pairs:
            tokens = tokenizer(
                texts, padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
            )
            ids = tokens.input_ids.to(encoder.device)
            if len(self._pairs) == 1:
                parts.append(encoder(ids)[0])
            else:
                parts.append(encoder(ids, output_hidden_states=True).hidden_states[-2])
            if last_word is None:
                last_word = tokens.attention_mask.sum(dim=1) - 2
        states = torch.cat(parts, dim=-1).float().cpu()  # [B, L, d]
        if not torch.isfinite(states).all():
            raise NumericalError(
                "The text encoder returned NaN/Inf embeddings: its weights are corrupt or it runs in a dtype "
                "that overflows. Reload the text encoder, or load it in float32."
            )
        assert last_word is not None, "at least one tokenizer/encoder pair"
        return states, last_word

    def check_concept(self, text: str) -> None:
        """Raise :class:`ConfigError` if ``text`` has no word token or overflows the context."""
        tokenizer = self._pairs[0][0]
        n_words = len(tokenizer(text, add_special_tokens=False).input_ids)
        if n_words == 0:
            raise ConfigError(f"Concept {text!r} tokenises to nothing (no word token): give a word or phrase to erase.")
        if n_words + 2 > self.max_length:
            raise ConfigError(
                f"Concept {text!r} has {n_words} tokens but the text encoder's context holds "
                f"{self.max_length - 2} words: shorten it, or split it into several concepts."
            )


@dataclass(frozen=True)
class ErasePairs:
    """Erase rows and the guide row each one is mapped to.

    Guides repeat (one guide text serves many concepts), so the guide side is stored once per
    distinct guide position: ``G = guide_rows[guide_of]``. The closed forms use this to form
    ``CᵀG`` without materialising G.

    Attributes:
        C: ``[n, d]`` erase rows.
        guide_rows: ``[u, d]`` the distinct guide states.
        guide_of: ``[n]`` index into ``guide_rows`` of each erase row's guide.
    """

    C: Tensor
    guide_rows: Tensor
    guide_of: Tensor

    @property
    def G(self) -> Tensor:
        """``[n, d]`` the guide row of each erase row."""
        return self.guide_rows[self.guide_of]

    @staticmethod
    def aligned(C: Tensor, G: Tensor) -> ErasePairs:
        """Pairs from two aligned ``[n, d]`` tensors."""
        return ErasePairs(C, G, torch.arange(G.shape[0]))


def erase_rows(
    encoder: PromptEncoder,
    erase: Sequence[str],
    guide: Sequence[str],
    *,
    tokens: TokenSpan = "span",
    alignment: GuideAlignment = "reference",
) -> ErasePairs:
    """Erase rows ``C`` and their aligned guide rows, as :class:`ErasePairs`.

    ``tokens="span"`` is UCE's ``train_erase.py`` (commit bd5fb51): for each pair, the states from
    the concept's last word token to the end of the padded sequence, paired position by position
    with the guide's states from *its* last word token, the longer one trimmed at the end so both
    have ``L - max(i, j)`` rows. With the guide ``" "`` (no word token, ``j = 0``) the concept's
    last word is paired with the guide's start-of-text state: that is the reference, kept by
    ``alignment="reference"``; ``alignment="skip_bos"`` starts the guide at position 1 instead.
    ``tokens="last"`` is the newer ``uce_sd_erase.py``: one row per concept, its last word token.
    """
    if len(erase) != len(guide):
        raise ConfigError(f"{len(erase)} concepts but {len(guide)} guides: give one guide, or one per concept.")
    distinct = list(dict.fromkeys(guide))
    enc_e, enc_g = encoder(list(erase)), encoder(distinct)
    L = enc_e.states.shape[1]
    which = {g: k for k, g in enumerate(distinct)}
    C, guide_of = [], []
    for k, text in enumerate(guide):
        i, j = int(enc_e.last_word[k]), int(enc_g.last_word[which[text]])
        if alignment == "skip_bos":
            j = max(j, 1)
        n = 1 if tokens == "last" else L - max(i, j)
        C.append(enc_e.states[k, i : i + n])
        guide_of.append(torch.arange(j, j + n) + which[text] * L)
    return ErasePairs(torch.cat(C), enc_g.states.reshape(-1, enc_g.states.shape[-1]), torch.cat(guide_of))


def keep_rows(encoder: PromptEncoder, keep: Sequence[str], *, tokens: TokenSpan = "span") -> Tensor:
    """Rows ``C_keep`` ``[m, d]`` whose outputs the edit should preserve.

    ``"span"``: all ``L`` states of every prompt (UCE/RECE pass the whole padded sequence of each
    retain text); ``"last"``: its last word token only.
    """
    if not keep:
        return torch.empty(0, 0)
    enc = encoder(list(keep))
    if tokens == "last":
        return enc.states[torch.arange(len(keep)), enc.last_word.clamp(min=0)]
    return enc.states.reshape(-1, enc.states.shape[-1])
