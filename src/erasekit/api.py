"""``erase``: one call from a pipeline and concept names to an :class:`Edit`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from . import methods
from .config import renamed
from .edit import Edit, base_weights
from .errors import ConfigError
from .kinds import check_kinds
from .progress import Progress
from .targets import Targets, denoiser, find_targets
from .text import PromptEncoder, TextEncoder, refuse_mentions


def _names(value: Any, what: str, *, allow_empty: bool = True) -> list[str]:
    """``value`` as a list of strings: one string is one name (never its characters)."""
    if isinstance(value, str):
        return [value]
    if value is None or not isinstance(value, Sequence | set | frozenset | tuple | list):
        raise ConfigError(f"{what} must be a string or a list of strings, got {type(value).__name__}.")
    names = list(value)
    if not all(isinstance(c, str) for c in names):
        raise ConfigError(f"{what} must be strings, got {sorted({type(c).__name__ for c in names})}.")
    if not names and not allow_empty:
        raise ConfigError(f"No {what} given: pass at least one, e.g. erase(pipe, ['van gogh']).")
    return names


def erase(
    pipe: Any,
    concepts: str | Sequence[str],
    method: str = "uce",
    *,
    preserve: str | Sequence[str] = (),
    preserve_prompts: Sequence[str] = (),
    guides: str | Sequence[str] | None = None,
    kinds: Mapping[str, str] | None = None,
    settings: str | None = None,
    preset: str | None = None,
    encoder: PromptEncoder | None = None,
    targets: Targets | None = None,
    progress: Progress | None = None,
    **overrides: Any,
) -> Edit:
    """Erase ``concepts`` from ``pipe`` with ``method``; the pipeline itself is not changed.

    Args:
        pipe: a diffusers pipeline with ``unet``, ``tokenizer`` and ``text_encoder``.
        concepts: one concept or a list of them (1000 at once is fine).
        method: a registered method name (``erasekit.list_methods()``).
        preserve: one concept or a list of concepts whose outputs should not change.
        preserve_prompts: prompts of the preserved concepts that name no erased concept, for methods that
            calibrate on real prompts (ACE's gate); from a split the method may see (a world's ``fit``
            split), never the prompts the edit is scored on. Methods that do not calibrate ignore them.
        guides: what each concept should become (one for all, or one each); default: the method's.
        kinds: what some concepts are, e.g. ``{"van gogh": "style", "church": "object"}`` (each one of
            :data:`~erasekit.kinds.CONCEPT_KINDS`), for methods that erase kinds differently (ACE erases styles
            on every token, not through its gate); the edit records it.
        settings: a named set of the method's hyper-parameters (e.g. RECE's ``"reference-style"``).
        preset: the old name of ``settings`` (deprecated; removed in the next release).
        encoder, targets: pre-built text encoder / target set, reused across calls to skip work.
        progress: called as ``progress(done, total)`` by methods that iterate (ESD, ACE).
        **overrides: hyper-parameters of the method's config (``lamb=0.1``, ...).

    Returns:
        The edit, with ``edit.info["edit_s"]`` the wall time of the method.

    Raises:
        ConfigError: no concept, a name that is not a string, a concept also in ``preserve``, a
            preserve prompt that names an erased concept, a kind for a concept not erased or not one of
            :data:`~erasekit.kinds.CONCEPT_KINDS`,
            unknown settings or hyper-parameters, guides that do not match the concepts.
        UnknownMethodError: no such method.
        UnsupportedModelError: a pipeline without a supported text path.
    """
    settings = renamed(settings, preset, new="settings=", old="preset=")
    concepts = _names(concepts, "concepts", allow_empty=False)
    preserve = _names(preserve, "preserve")
    preserve_prompts = _names(preserve_prompts, "preserve_prompts")
    if not isinstance(method, str):
        raise ConfigError(f"method must be a method name (see erasekit.list_methods()), got {method!r}.")
    both = sorted(set(concepts) & set(preserve))
    if both:
        raise ConfigError(f"{both} is both erased and preserved: a concept cannot be in concepts and preserve.")
    refuse_mentions(preserve_prompts, concepts, given_as="preserve_prompts", why="a prompt cannot be erased and kept")
    kinds = dict(kinds or {})
    check_kinds(kinds, concepts)
    m = methods.get(method)
    settings = None if settings is None else m.settings_name(settings)
    cfg = m.make_config(settings, **overrides)
    if guides is not None:
        guides = _names(guides, "guides", allow_empty=False)
        guides = guides * len(concepts) if len(guides) == 1 else guides
        if len(guides) != len(concepts):
            raise ConfigError(f"{len(concepts)} concepts but {len(guides)} guides: give one guide, or one each.")
    unet = denoiser(pipe)
    if encoder is None:
        encoder = TextEncoder(pipe)
    if isinstance(encoder, TextEncoder):  # a custom encoder checks its own input
        for text in concepts:
            encoder.check_concept(text)
    if targets is None:
        targets = find_targets(unet)
    request = methods.EraseRequest(
        targets=targets,
        encoder=encoder,
        concepts=tuple(concepts),
        pipe=pipe,
        guides=tuple(guides) if guides is not None else None,
        preserve=tuple(preserve),
        preserve_prompts=tuple(preserve_prompts),
        kinds=kinds,
        base_fingerprint=targets.fingerprint(base_weights(unet)),
        progress=progress,
    )
    start = time.perf_counter()
    edit = m.fn(request, cfg)
    edit.info["edit_s"] = time.perf_counter() - start
    if settings is not None:
        edit.info["settings"] = settings
    return edit
