"""Prompts to the token states a denoiser reads, for methods and attacks alike.

A text-to-image pipeline turns a prompt into ``[L, d]`` token states (L = the tokenizer's padded
length, 77 for CLIP) that every cross-attention layer reads. :class:`TextEncoder` computes them as
the pipeline does before its U-Net sees them:

- SD 1.x / 2.x and the embedded world: ``text_encoder(input_ids)[0]``;
- SDXL: the penultimate hidden states of both text encoders, concatenated on the feature axis, as
  ``StableDiffusionXLPipeline.encode_prompt`` does with ``clip_skip=None``.

The last word index is read from the first tokenizer's attention mask, as UCE does
(``mask.sum() - 2``). Prompts are encoded in batches and kept in a cache the caller owns, so a
method that needs several prompt sets (concepts, guides, retain) encodes them in one pass
(:meth:`TextEncoder.prefetch`).

Soft-prompt and discrete attacks put ``k`` adversarial tokens in front of a prompt and need the
gradient with respect to those tokens' input embeddings: :meth:`TextEncoder.encode` runs the encoder
on real token ids with a forward hook on its input-embedding table that swaps in the adversarial
vectors at the slot positions (the same code path for CLIP and the embedded world's encoder, no
copy of either forward). That path supports single-encoder pipelines.

A method that encodes many training prompts may ask for them in bfloat16 (:meth:`TextEncoder.in_precision`): the
encoders' forward runs under ``torch.autocast`` (its matrix products in bf16) and the states come back in float32. Only
where the hardware multiplies bf16 natively (:func:`native_bf16`) is that faster: MiniLM's states of 355 captions took
0.33 s against 1.07 s in float32 on a two-core AVX512-BF16 CPU, 0.6% apart (relative norm).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .errors import ConfigError, NumericalError, UnsupportedModelError

logger = logging.getLogger(__name__)

SUPPORTED = (
    "StableDiffusionPipeline (SD 1.x, 2.x), StableDiffusionXLPipeline (SDXL) and the worlds' pipelines "
    "(erasekit.worlds), each with a tokenizer, a text encoder and a U-Net"
)


def mentions(prompt: str, phrase: str) -> bool:
    """Whether ``prompt`` holds ``phrase`` as whole words, case-insensitively ("art" is not in "party")."""
    return re.search(rf"(?<!\w){re.escape(phrase.lower().strip())}(?!\w)", prompt.lower()) is not None


def refuse_mentions(prompts: Sequence[str], concepts: Sequence[str], *, given_as: str, why: str) -> None:
    """Refuses prompts meant to be kept (the caller's ``given_as`` argument) that name an erased concept.

    Raises:
        ConfigError: the first such prompt, how many more there are, ``why`` it cannot be, and the fix.
    """
    clash = [(p, c) for p in prompts for c in concepts if mentions(p, c)]
    if clash:
        (prompt, concept), more = clash[0], len(clash) - 1
        raise ConfigError(
            f"{given_as} entry {prompt!r} names the erased concept {concept!r} ({more} more like it): {why}. Drop "
            f"such entries from {given_as}, or erase another concept."
        )


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
    """What the closed forms need from a text encoder: ``encoder(texts) -> Encoded``."""

    max_length: int

    def __call__(self, texts: Sequence[str]) -> Encoded: ...


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware: a CUDA GPU with bf16, or a CPU with AVX512-BF16 or
    AMX. Elsewhere bf16 products are emulated, with no speed to expect from them (not measured: this machine has
    AVX512-BF16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)  # compute capability 8+ (Ampere on)
    if device.type == "cpu":  # torch.cpu's checks are private: a torch without them is treated as lacking the feature
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def weights_version(*modules: nn.Module) -> tuple[tuple[int, int], ...]:
    """Each parameter's identity and in-place version counter: it changes whenever an edit of the modules is applied
    or removed (``Edit.apply`` writes the weights in place) or a LoRA adapter is loaded."""
    return tuple((id(p), p._version) for module in modules for p in module.parameters())


@dataclass
class EmbeddingCache:
    """Prompt -> (states ``[L, d]``, last word index). Owned by the caller, passed in explicitly.

    ``stamp``: the text encoders' weights the rows were computed with (:func:`weights_version`);
    :class:`TextEncoder` empties the rows when it changes, so an edit of the text encoder applied or removed since or a
    LoRA adapter loaded is never hidden by stale rows.
    """

    rows: dict[str, tuple[Tensor, int]] = field(default_factory=dict)
    stamp: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True)
class Slotted:
    """Token ids of prompts with ``k`` adversarial slots after the start token.

    Attributes:
        ids: ``[B, L]`` token ids; slot positions hold a placeholder id.
        slots: ``[k]`` positions of the slots (the same in every row: ``1 .. k``).
    """

    ids: Tensor
    slots: Tensor


class TextEncoder:
    """A pipeline's prompts -> token states, as its denoiser reads them (see the module docstring).

    Raises:
        UnsupportedModelError: the pipeline has no tokenizer and text encoder.
    """

    def __init__(
        self,
        pipe: Any,
        *,
        cache: EmbeddingCache | None = None,
        batch_size: int = 32,
        autocast: torch.dtype | None = None,
    ):
        if getattr(pipe, "tokenizer", None) is None or getattr(pipe, "text_encoder", None) is None:
            raise UnsupportedModelError(
                f"{type(pipe).__name__} has no tokenizer/text_encoder that erasekit can read: supported are "
                f"{SUPPORTED}. Load the full pipeline, not only its U-Net."
            )
        self.pipe = pipe
        self.cache = cache if cache is not None else EmbeddingCache()
        self.batch_size = batch_size
        self.autocast = autocast  # the plain prompts' forward under torch.autocast to this dtype; None: the weights'
        self.tokenizer = pipe.tokenizer
        self.encoder: nn.Module = pipe.text_encoder
        self.max_length = int(self.tokenizer.model_max_length)
        self._pairs = [(pipe.tokenizer, pipe.text_encoder)]
        if getattr(pipe, "text_encoder_2", None) is not None and getattr(pipe, "tokenizer_2", None) is not None:
            self._pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))

    def in_precision(self, autocast: torch.dtype | None) -> TextEncoder:
        """This pipeline's encoder with its plain-prompt forward (``__call__``, :meth:`prefetch`) under
        ``torch.autocast(dtype=autocast)`` (None: the weights' own dtype), itself when it already runs so. A new one
        has a cache of its own: its states differ. :meth:`encode`, the attacks' gradient path, keeps the weights'
        dtype whatever ``autocast`` says: no caller asks it for less."""
        if autocast == self.autocast:
            return self
        return TextEncoder(self.pipe, batch_size=self.batch_size, autocast=autocast)

    @property
    def pairs(self) -> tuple[tuple[Any, nn.Module], ...]:
        """``(tokenizer, text encoder)`` of each text path the states concatenate: one, or two for SDXL."""
        return tuple(self._pairs)

    # ---- plain prompts, cached ----------------------------------------------------------------
    def __call__(self, texts: Sequence[str]) -> Encoded:
        """``Encoded`` of ``texts``; prompts not yet in the cache are encoded first."""
        self.prefetch(texts)
        rows = [self.cache.rows[t] for t in texts]
        return Encoded(torch.stack([r[0] for r in rows]), torch.tensor([r[1] for r in rows]))

    def prefetch(self, texts: Sequence[str]) -> None:
        """Encode every prompt of ``texts`` that the cache lacks, in batches of ``batch_size``."""
        stamp = weights_version(*(encoder for _, encoder in self._pairs))
        if self.cache.stamp != stamp:  # the weights changed since the rows were computed
            self.cache.rows.clear()
            self.cache.stamp = stamp
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache.rows]
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            states, last_word = self._encode(batch)
            for text, s, i in zip(batch, states, last_word.tolist()):
                self.cache.rows[text] = (s, i)

    @torch.no_grad()
    def _encode(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        parts, last_word = [], None
        for tokenizer, encoder in self._pairs:
            tokens = tokenizer(
                texts, padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
            )
            ids = tokens.input_ids.to(encoder.device)
            with torch.autocast(ids.device.type, dtype=self.autocast, enabled=self.autocast is not None):
                if len(self._pairs) == 1:
                    parts.append(encoder(ids)[0].float())
                else:
                    parts.append(encoder(ids, output_hidden_states=True).hidden_states[-2].float())
            if last_word is None:
                last_word = tokens.attention_mask.sum(dim=1) - 2
        states = torch.cat(parts, dim=-1).cpu()  # [B, L, d] float32
        if not torch.isfinite(states).all():
            raise NumericalError(
                "The text encoder returned NaN/Inf embeddings: its weights are corrupt or it runs in a dtype "
                "that overflows. Reload the text encoder, or load it in float32."
            )
        if last_word is None:
            raise AssertionError("a TextEncoder has at least one tokenizer/encoder pair")
        return states, last_word

    def check_concept(self, text: str) -> None:
        """Raise :class:`ConfigError` if ``text`` has no word token or overflows the context; warn if the
        tokenizer does not know some of its characters (an emoji in BERT's vocabulary) or drops them."""
        n_words = len(self.tokenizer(text, add_special_tokens=False).input_ids)
        if n_words == 0:
            raise ConfigError(f"Concept {text!r} tokenises to nothing (no word token): give a word or phrase to erase.")
        if n_words + 2 > self.max_length:
            raise ConfigError(
                f"Concept {text!r} has {n_words} tokens but the text encoder's context holds "
                f"{self.max_length - 2} words: shorten it, or split it into several concepts."
            )
        lost = self._lost_characters(text)
        if lost:
            logger.warning(
                "Concept %r has characters the tokenizer does not read: %s. The model sees an unknown token or "
                "nothing there, so the edit does not erase what they show: spell the concept in words.",
                text,
                ", ".join(lost),
            )

    def _lost_characters(self, text: str) -> list[str]:
        """The characters of ``text`` the tokenizer maps to its unknown token or drops, described."""
        unk, lost = self.tokenizer.unk_token_id, []
        for c in dict.fromkeys(text):  # printable ASCII is in every vocabulary; accents are dropped on purpose
            if c.isspace() or (c.isascii() and c.isprintable()) or unicodedata.category(c) == "Mn":
                continue
            ids = self.tokenizer(c, add_special_tokens=False).input_ids
            if not ids:
                lost.append(f"{c!r} (dropped)")
            elif unk is not None and unk in ids:
                lost.append(f"{c!r} (unknown: {self.tokenizer.unk_token})")
        return lost

    # ---- token ids and differentiable slots (single-encoder pipelines) -------------------------
    def check_single_encoder(self) -> None:
        """Raise :class:`ConfigError` for a two-encoder pipeline (SDXL): the slot path reads one encoder."""
        if len(self._pairs) > 1:
            raise ConfigError(
                f"{type(self.pipe).__name__} has two text encoders (SDXL): erasekit's attacks support single-encoder "
                "pipelines (Stable Diffusion 1.x/2.x and the embedded world) for now."
            )

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
        self.check_single_encoder()
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
