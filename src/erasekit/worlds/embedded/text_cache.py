"""Token states of every training caption, computed once: the text encoder is frozen.

Training looks captions up here instead of running MiniLM every step. The table is stored in the
training cache folder (outside git), keyed by a hash of the captions and of the encoder's weights file,
so any change to the vocabulary or the encoder makes a new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from .text import encode, encoder_path, load_text_encoder, load_tokenizer

logger = logging.getLogger(__name__)

UNCONDITIONAL = ""
"""The empty prompt, whose states stand for "no caption" in classifier-free guidance."""


class CaptionStates:
    """A table of token states [n_captions, L, 384] (float16) with a text -> row index.

    Args:
        texts: the captions, the empty prompt included.
        states: [len(texts), L, 384] token states.
    """

    def __init__(self, texts: Sequence[str], states: Tensor) -> None:
        assert len(texts) == states.shape[0], f"{len(texts)} texts but {states.shape[0]} rows of states"
        self.texts = list(texts)
        self.states = states
        self.row = {text: i for i, text in enumerate(self.texts)}

    def lookup(self, texts: Sequence[str]) -> Tensor:
        """Returns the states [B, L, 384] of ``texts`` as float32; every text must be in the table."""
        index = torch.tensor([self.row[t] for t in texts], dtype=torch.long)
        return self.states[index].float()

    @classmethod
    def build(
        cls,
        texts: Sequence[str],
        cache_dir: Path,
        *,
        causal: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> CaptionStates:
        """Returns the states of ``texts`` (plus the empty prompt), loading them from ``cache_dir`` if there.

        Args:
            texts: captions to encode.
            cache_dir: folder holding ``caption_states-<hash>.safetensors``.
            causal: encode with the causal text encoder (see ``text.CausalBertModel``).
            progress: called as ``progress(done, total)`` while encoding.
        """
        texts = sorted(set(texts) | {UNCONDITIONAL})
        weights = encoder_path() / "model.safetensors"
        digest = hashlib.sha256(json.dumps(texts).encode())
        digest.update(str(weights.stat().st_size).encode())
        if causal:  # the bidirectional tables keep their old names
            digest.update(b"causal")
        path = cache_dir / f"caption_states-{digest.hexdigest()[:16]}.safetensors"
        if path.is_file():
            try:
                return cls(texts, load_file(str(path))["states"])
            except (SafetensorError, KeyError, OSError) as err:
                logger.warning("re-encoding captions: cached states at %s unreadable (%s)", path, err)
        tokenizer, encoder = load_tokenizer(), load_text_encoder(causal=causal)
        chunks, chunk = [], 512
        for start in range(0, len(texts), chunk):
            chunks.append(encode(tokenizer, encoder, texts[start : start + chunk]).half())
            if progress is not None:
                progress(min(start + chunk, len(texts)), len(texts))
        states = torch.cat(chunks)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"states": states}, str(tmp))
        tmp.replace(path)
        return cls(texts, states)
