"""The pipeline's text encoder, with chosen token positions fed embeddings an attack optimises.

Soft-prompt and discrete attacks put ``k`` adversarial tokens in front of a prompt and need the
gradient of the U-Net's loss with respect to those tokens' input embeddings. The encoder is run on
real token ids, with a forward hook on its input-embedding table that swaps in the adversarial
vectors at the slot positions: the same code path for CLIP (Stable Diffusion 1.x/2.x) and the
embedded world's BERT, no copy of either forward. The hook is removed before :meth:`encode` returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError


@dataclass(frozen=True)
class Slotted:
    """Token ids of prompts with ``k`` adversarial slots after the start token.

    Attributes:
        ids: ``[B, L]`` token ids; slot positions hold a placeholder id.
        slots: ``[k]`` positions of the slots (the same in every row: ``1 .. k``).
    """

    ids: Tensor
    slots: Tensor


class TextModel:
    """Token ids -> the token states ``[B, L, d]`` a single-encoder pipeline gives its U-Net.

    ``text_encoder(input_ids)[0]``, as ``StableDiffusionPipeline.encode_prompt`` (``clip_skip``
    unset) and the embedded pipeline compute them.

    Raises:
        ConfigError: the pipeline has no tokenizer/text encoder, or two of them (SDXL).
    """

    def __init__(self, pipe: Any):
        if getattr(pipe, "tokenizer", None) is None or getattr(pipe, "text_encoder", None) is None:
            raise ConfigError(
                f"{type(pipe).__name__} has no tokenizer/text_encoder: attacks encode prompts with the pipeline's own "
                "text encoder. Load the full pipeline, not only its U-Net."
            )
        if getattr(pipe, "text_encoder_2", None) is not None:
            raise ConfigError(
                f"{type(pipe).__name__} has two text encoders (SDXL): erasekit's attacks support single-encoder "
                "pipelines (Stable Diffusion 1.x/2.x and the embedded world) for now."
            )
        self.tokenizer = pipe.tokenizer
        self.encoder: nn.Module = pipe.text_encoder
        self.max_length = int(self.tokenizer.model_max_length)

    @property
    def device(self) -> torch.device:
        return self.table.weight.device

    @property
    def table(self) -> nn.Embedding:
        """The input-embedding table, ``weight [V, d_tok]``."""
        return self.encoder.get_input_embeddings()

    def vocabulary(self) -> Tensor:
        """``[V']`` ids of every token but the special ones (start, end, padding): what a user can type."""
        special = set(self.tokenizer.all_special_ids)
        n = self.table.weight.shape[0]
        return torch.tensor([i for i in range(n) if i not in special])

    def ids(self, prompts: Sequence[str]) -> Tensor:
        """``[B, L]`` token ids, padded and truncated to the context as the pipeline does."""
        tokens = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
        )
        return tokens.input_ids

    def slotted(self, prompts: Sequence[str], k: int) -> Slotted:
        """Ids of ``start, slot × k, prompt words, end, padding``; words past the context are cut.

        UnlearnDiff's ``prefix_k`` layout (``text_grad_.py``: ``[sot, adv, mid, eot]``), for any
        tokenizer with a start and an end token.
        """
        if not 0 < k <= self.max_length - 2:
            raise ConfigError(f"k = {k} adversarial tokens do not fit a context of {self.max_length} tokens.")
        tokens = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
        )
        ids, n_words = tokens.input_ids, tokens.attention_mask.sum(1) - 2
        out = ids.clone()
        for b in range(ids.shape[0]):
            n = int(n_words[b])
            end_token = ids[b, n + 1]
            pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else int(end_token)
            words = ids[b, 1 : 1 + min(n, self.max_length - 2 - k)]
            row = torch.cat([ids[b, :1], torch.full((k,), int(pad)), words, end_token[None]])
            out[b] = torch.cat([row, torch.full((self.max_length - row.numel(),), int(pad))])
        return Slotted(out, torch.arange(1, 1 + k))

    def encode(self, ids: Tensor, *, slots: Tensor | None = None, slot_embeds: Tensor | None = None) -> Tensor:
        """Token states ``[B, L, d]`` of ``ids``; gradients flow into ``slot_embeds``.

        Args:
            ids: ``[B, L]`` token ids.
            slots: ``[k]`` positions whose input embeddings are replaced.
            slot_embeds: ``[k, d_tok]`` or ``[B, k, d_tok]`` input embeddings for those positions.
        """
        ids = ids.to(self.device)
        if slots is None or slot_embeds is None:
            return self.encoder(ids)[0]
        with self._swapped(slots, slot_embeds):
            return self.encoder(ids)[0]

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str]) -> Tensor:
        """``[B, L, d]`` float32 states of plain prompts, without gradient."""
        return self.encode(self.ids(prompts)).float()

    def decode(self, ids: Tensor) -> str:
        """Text of token ids, special tokens dropped."""
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True).strip()

    @contextmanager
    def _swapped(self, slots: Tensor, slot_embeds: Tensor) -> Iterator[None]:
        def hook(module: nn.Module, args: Any, out: Tensor) -> Tensor:
            out = out.clone()
            out[:, slots.to(out.device)] = slot_embeds.to(out.dtype).expand(out.shape[0], -1, -1)
            return out

        handle = self.table.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()
