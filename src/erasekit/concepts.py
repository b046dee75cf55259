"""Prompts to the token embeddings a closed-form edit acts on.

A text-to-image pipeline turns a prompt into ``[L, d]`` token states (L = the tokenizer's padded
length, 77 for CLIP) that every cross-attention layer reads. UCE and RECE select rows of those
states exactly as their reference code does; :func:`erase_rows` and :func:`keep_rows` reproduce
that selection so that our edits equal theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .errors import ConfigError
from .text import PromptEncoder

TokenSpan = Literal["span", "last"]
GuideAlignment = Literal["reference", "skip_bos"]


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
