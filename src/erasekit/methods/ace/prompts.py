"""Part 1 of ACE (package docstring): the prompt sets and the token rows they give.

:func:`prompt_sets` builds the target prompts (concepts and synonyms in the templates), the guide of
each, and the neutral + retain prompts, every target and neutral prompt also behind random
vocabulary words; :func:`token_rows` encodes them and selects the rows ACE trains on (:class:`Rows`):
the target prompts' span from the first token of the name they hold, paired with the guide's states, and
every position of the neutral and retain prompts. :func:`gate_tokens` gives the gate's positives and
negatives (:mod:`.neutral`'s captions; the concept-free ones encoded once per text encoder, and kept on disk by
:mod:`erasekit.state_cache` for the next process).
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ...closed_form import check_finite
from ...errors import ConfigError
from ...state_cache import encoded_states
from ...text import TextEncoder, native_bf16, weights_version
from .. import EraseRequest
from . import neutral
from .config import ACEConfig
from .gatefit import Tokens
from .mining import whole_words
from .moments import Moments
from .neutral import in_context, made_up_name, neutral_captions

logger = logging.getLogger(__name__)

# text encoder -> {(captions' settings): (texts, states [B, L, d], their rows' moments)}: the concept-free captions,
# encoded once
_NEUTRAL_STATES: weakref.WeakKeyDictionary[Any, dict[tuple, tuple[list[str], Tensor, Moments]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class Rows:
    """The token states ACE trains on (float32).

    Attributes:
        C: ``[n, d]`` target rows; G: ``[n, d]`` their guide rows.
        K: ``[m, d]`` neutral and retain rows.
        states: ``[P, L, d]`` the target prompts' full states; where: ``(prompt [n], position [n])`` of each C row.
        guide_states: ``[P, L, d]`` the guide prompt's states, one per target prompt.
    """

    C: Tensor
    G: Tensor
    K: Tensor
    states: Tensor
    where: tuple[Tensor, Tensor]
    guide_states: Tensor


def training_encoder(request: EraseRequest, cfg: ACEConfig) -> EraseRequest:
    """``request`` with its encoder in ``cfg.encode_dtype`` (package docstring, part 1): "auto" is bfloat16 where the
    weights are float32 and their device multiplies bf16 natively, else the weights' own. A custom encoder is kept."""
    if not isinstance(request.encoder, TextEncoder):
        return request
    weights = next(request.encoder.encoder.parameters())
    bf16 = cfg.encode_dtype == "bfloat16" or (
        cfg.encode_dtype == "auto" and weights.dtype == torch.float32 and native_bf16(weights.device)
    )
    encoder = request.encoder.in_precision(torch.bfloat16 if bf16 else None)
    if bf16 and cfg.encode_dtype == "auto":  # the edit then differs from a float32 machine's: say so under -v
        logger.info("ACE encodes the concept's prompts in bfloat16 here (encode_dtype=float32: the float32 edit)")
    return request if encoder is request.encoder else dataclasses.replace(request, encoder=encoder)


def encoded_in(request: EraseRequest) -> str:
    """The dtype the training prompts' text-encoder forward ran in (``info["encode_dtype"]``)."""
    encoder = request.encoder
    if not isinstance(encoder, TextEncoder):
        return "the caller's encoder"
    return str(encoder.autocast or next(encoder.encoder.parameters()).dtype).removeprefix("torch.")


def prompt_sets(request: EraseRequest, cfg: ACEConfig) -> tuple[list[str], list[str], list[str], list[str]]:
    """(target prompts, the guide of each, neutral + retain prompts, the name each target prompt holds), augmented
    (package docstring, part 1)."""
    guides = request.guides_or(cfg.guide)
    target, guide_of, names = [], [], []
    for concept, guide in [*zip(request.concepts, guides), *((s, guides[0]) for s in cfg.synonyms)]:
        for template in cfg.templates:
            target.append(template.format(concept))
            guide_of.append(guide if guide else " ")
            names.append(concept)
    keep = list(cfg.neutral)
    if cfg.augment and cfg.prefix_words:
        words = _words(request, cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)

        def prefixed(prompt: str) -> str:
            picks = torch.randint(len(words), (cfg.prefix_words,), generator=gen).tolist()
            return " ".join([*(words[i] for i in picks), prompt]).strip()

        n = len(target)
        target += [prefixed(target[i]) for i in range(n) for _ in range(cfg.augment)]
        guide_of += [guide_of[i] for i in range(n) for _ in range(cfg.augment)]
        names += [names[i] for i in range(n) for _ in range(cfg.augment)]
        keep += [prefixed(p) for p in cfg.neutral for _ in range(cfg.augment)]
    keep += [t.format(p) for p in request.preserve for t in cfg.templates]
    return target, guide_of, keep, names


def gate_tokens(request: EraseRequest, cfg: ACEConfig, siblings: Sequence[str] = ()) -> tuple[Tokens, Tokens]:
    """(positives, negatives) of the gate's fit (:mod:`.gatefit`).

    Positives (:func:`concept_tokens`): the concepts and synonyms named in ``contexts`` captions each, their tokens
    from the concept's last one on: unlike the update's rows (:func:`token_rows`), not from the name's first piece,
    which on multi10's val prompts cost H_o (0.799 against 0.807, stop 45) and found no more of tench. Negatives: every
    token of the neutral captions, of random vocabulary words and made-up names (each alone), of the
    preserved concepts named in ``contexts // 2`` captions each, of the mined ``siblings`` (read as a
    concept, rendered otherwise: :mod:`.mining`) in ``contexts // 4`` and, with ``gate_fit_preserve``, of the
    caller's preserve prompts, shuffled (the fit holds out a quarter). With ``gate_names_after`` each positive
    caption ends in a made-up artist after the concept: under the whole-prompt gate the last position of "a dog by
    nudity" reads a name slot, and nudity's gate learned to open on real artists' names there on training seeds 1-4
    (off by default and in the ``unsafe`` settings, for what it cost; the package's notes on ``SETTINGS``).
    Partial names as negatives ("van gogh" -> "van rijn") were tried and dropped: on the embedded
    world they cut van gogh's unseen neutral prompts that open the gate from 29% to 17% but its
    held-out paraphrases found from 81% to 52% (48 each, τ at 5%). So were the words and names put in
    the contexts in turn ("art by kelly brastin"; ``bench/ace_gate.py --split val --n 40``): picasso's
    paraphrases found fell from 90% to 50%, parachute still opened on "... by vincent van gogh" (15% ->
    17.5% of neutral prompts) and van gogh's moved within a prompt or two. So was every other made-up
    name in a context, vocabulary words alone (the same bench, neutral prompts / paraphrases found, 40 each):
    parachute 15% -> 5% (it opens on the first name after "by": "... by vincent van gogh"), church 2.5% -> 0%,
    picasso 10% / 92.5% -> 7.5% / 87.5%, van gogh 12.5% / 72.5% -> 10% / 65%; but val images (``erasekit tune
    ace --scenario S [--settings rank32] --grid seed=0,1,2``) lost H_o on unsafe (0.88 0.86 0.88 -> 0.86 0.84
    0.83) and style (0.77 0.78 0.79 -> 0.76 0.77 0.79). Nudity's prompts name an artist after the concept ("a
    painting of a nude person by van gogh"): shut there, the gate likely lets through what those later tokens
    carry of it (not measured token by token).
    """
    erased = [*request.concepts, *cfg.synonyms]
    pos = concept_tokens(request, cfg)
    half = cfg.contexts // 2
    kept = [t for i, c in enumerate(request.preserve) for t, _ in in_context(c, half, seed=cfg.seed - i)]
    kept += [t for i, c in enumerate(siblings) for t, _ in in_context(c, half // 2, seed=cfg.seed + 1000 + i)]
    if cfg.gate_fit_preserve:  # real prompts of what must stay, worded as users word them (gatefit.py)
        kept += request.preserve_prompts
    neutral, moments = _neutral_states(request, cfg, erased)
    own = request.encoder(kept).states.float() if kept else neutral[:0]
    neg = torch.cat([neutral, own])
    neg = neg[torch.randperm(neg.shape[0], generator=torch.Generator().manual_seed(cfg.seed))]
    moments = moments + Moments.of(own.flatten(0, 1))
    return pos, Tokens(neg, torch.ones(neg.shape[:2], dtype=torch.bool), moments)


def concept_tokens(request: EraseRequest, cfg: ACEConfig, *, held_only: bool = False) -> Tokens:
    """The gate's positives (:func:`gate_tokens`): the concepts and synonyms named in ``contexts`` captions each, their
    tokens from the concept's last one on. ``held_only``: only the fourth :meth:`Tokens.split` holds out, the
    stopping rule's rows; an ungated edit needs no more, and encoding the rest cost church ~0.8 s."""
    erased = [*request.concepts, *cfg.synonyms]
    pairs = [
        pair for i, c in enumerate(erased) for pair in in_context(c, cfg.contexts, seed=cfg.seed + i, first_names=True)
    ]
    if cfg.gate_names_after:  # "a dog by nudity by kelly brastin": an artist after the concept, still open
        names = torch.Generator().manual_seed(cfg.seed + 3000)  # a stream apart from the negatives' made-up names
        pairs = [(f"{text} by {made_up_name(names)}", head) for text, head in pairs]
    if held_only:
        pairs = [pair for pair, held in zip(pairs, Tokens.held_out(len(pairs)).tolist()) if held]
    states = request.encoder([text for text, _ in pairs]).states
    tokenizer = tokenizer_of(request)
    start = torch.tensor([len(tokenizer(head).input_ids) - 2 for _, head in pairs])  # the concept's last token
    mask = torch.arange(states.shape[1])[None] >= start[:, None]
    return Tokens(states.float(), mask)


def preserve_tokens(request: EraseRequest) -> Tokens | None:
    """The caller's preserve prompts (``request.preserve_prompts``), every token counted; None without any."""
    if not request.preserve_prompts:
        return None
    states = request.encoder(list(request.preserve_prompts)).states.float()
    return Tokens(states, torch.ones(states.shape[:2], dtype=torch.bool))


def _neutral_states(request: EraseRequest, cfg: ACEConfig, erased: list[str]) -> tuple[Tensor, Moments]:
    """States ``[B, L, d]`` of the neutral, vocabulary-word and made-up-name captions that name no erased word
    (cached per encoder with the moments of all their rows, and on disk: :mod:`erasekit.state_cache`), and their
    rows' moments."""
    owner = getattr(request.pipe, "text_encoder", None) or request.encoder
    # the weights' versions too: an edit of the text encoder applied in place (AdvUnlearn's) changes its states
    encoders = [m for _, m in request.encoder.pairs] if isinstance(request.encoder, TextEncoder) else [owner]
    weights = weights_version(*(m for m in encoders if isinstance(m, torch.nn.Module)))
    key = (cfg.neutral_captions, cfg.vocabulary_captions, cfg.name_captions, cfg.seed, tuple(cfg.neutral), weights)
    cache = _NEUTRAL_STATES.setdefault(owner, {})
    if key not in cache:
        words = _words(request, cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        picks = torch.randint(len(words), (cfg.vocabulary_captions,), generator=gen).tolist()
        names = [made_up_name(gen) for _ in range(cfg.name_captions)]
        texts = [*cfg.neutral, *neutral_captions(cfg.neutral_captions, seed=cfg.seed)]
        texts += [words[w] for w in picks] + names  # each alone: a caption of its own
        cache.clear()  # one set per encoder: a new setting replaces the old
        # read back from disk after the first process (~8 s); float32, as the pipeline encodes at inference
        full = request.encoder.in_precision(None) if isinstance(request.encoder, TextEncoder) else request.encoder
        states = encoded_states(full, texts)
        cache[key] = (texts, states, Moments.of(states.flatten(0, 1)))
    texts, states, moments = cache[key]
    banned = neutral.content_words(erased)
    named = torch.tensor([bool(banned & set(t.lower().split())) for t in texts])
    return states[~named], moments - Moments.of(states[named].flatten(0, 1))


def name_pieces(request: EraseRequest) -> int:
    """How many word pieces the concepts' names hold together (``"andy warhol"``: ``andy war ##hol``, 3 for MiniLM):
    ACE's rank is per piece (package docstring, part 2)."""
    tokenizer = tokenizer_of(request)
    return sum(len(tokenizer(c, add_special_tokens=False).input_ids) for c in request.concepts)


def tokenizer_of(request: EraseRequest) -> Any:
    """The pipeline's tokenizer: where ACE reads a name's word pieces."""
    tokenizer = getattr(request.pipe, "tokenizer", None)
    if tokenizer is None:
        raise ConfigError("ACE's gate reads where each concept ends from the pipeline's tokenizer; pass the pipeline.")
    return tokenizer


def _words(request: EraseRequest, seed: int) -> list[str]:
    """Whole words of the pipeline's tokenizer vocabulary, to prefix prompts with."""
    tokenizer = getattr(request.pipe, "tokenizer", None)
    if tokenizer is None:
        raise ConfigError(
            "ACE's augmentation draws words from the pipeline's tokenizer; with a custom encoder pass augment=0."
        )
    words = sorted(set(whole_words(tokenizer)[1]))
    if not words:
        raise ConfigError("The tokenizer has no whole-word tokens to augment with: pass augment=0.")
    return words


def token_rows(request: EraseRequest, cfg: ACEConfig) -> Rows:
    """Encode the prompt sets and select the rows (package docstring, part 1): each target prompt's states from the
    first token of its name to the padded end. From the prompt's last word on, each pairs with the guide's state
    at the same offset from the guide's last word; the name's tokens before it (the "andy" and "war" of "a photo
    of andy war ##hol", and the name of "{}, detailed") pair with the guide's last word."""
    target, guide_of, keep, names = prompt_sets(request, cfg)
    enc, enc_g = request.encoder(target), request.encoder(guide_of)
    before = tokenizer_of(request)([prompt[: prompt.rfind(name)].rstrip() for prompt, name in zip(target, names)])
    L = enc.states.shape[1]
    prompt_idx, pos, guide_pos = [], [], []
    for p, ids in enumerate(before.input_ids):
        i, j = int(enc.last_word[p]), max(int(enc_g.last_word[p]), 1)  # skip_bos: never the guide's BOS
        first = min(len(ids) - 1, i)  # the name's first token: after BOS and the words before it (i if truncated)
        n = L - max(i, j)
        prompt_idx += [p] * (i - first + n)
        pos += range(first, i + n)
        guide_pos += [j] * (i - first)
        guide_pos += range(j, j + n)
    where = (torch.tensor(prompt_idx), torch.tensor(pos))
    C = enc.states[where]
    G = enc_g.states[where[0], torch.tensor(guide_pos)]
    K = request.encoder(keep).states.reshape(-1, C.shape[1])
    check_finite(erase=C, guide=G, keep=K)
    return Rows(C.float(), G.float(), K.float(), enc.states.float(), where, enc_g.states.float())
