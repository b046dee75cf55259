"""``erase``: one call from a pipeline and concept names to an :class:`Edit`."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from . import methods
from .concepts import PipelineEncoder, PromptEncoder
from .config import make_config
from .edit import Edit, base_weights
from .errors import ConfigError
from .targets import Targets, find_targets


def erase(
    pipe: Any,
    concepts: str | Sequence[str],
    method: str = "uce",
    *,
    preserve: Sequence[str] = (),
    guides: Sequence[str] | None = None,
    preset: str | None = None,
    encoder: PromptEncoder | None = None,
    targets: Targets | None = None,
    progress: Callable[[int, int], None] | None = None,
    **overrides: Any,
) -> Edit:
    """Erase ``concepts`` from ``pipe`` with ``method``; the pipeline itself is not changed.

    Args:
        pipe: a diffusers pipeline with ``unet``, ``tokenizer`` and ``text_encoder``.
        concepts: one concept or a list of them (1000 at once is fine).
        method: a registered method name (``erasekit.list_methods()``).
        preserve: concepts whose outputs should not change.
        guides: what each concept should become (one for all, or one each); default: the method's.
        preset: a named set of the method's hyper-parameters (e.g. RECE's ``"style"``).
        encoder, targets: pre-built text encoder / target set, reused across calls to skip work.
        progress: called as ``progress(done, total)`` by methods that iterate (ESD, ACE).
        **overrides: hyper-parameters of the method's config (``lamb=0.1``, ...).

    Returns:
        The edit, with ``edit.info["edit_s"]`` the wall time of the method.
    """
    if isinstance(concepts, str):
        concepts = [concepts]
    concepts = list(concepts)
    if not concepts:
        raise ConfigError("No concept to erase: pass at least one concept, e.g. erase(pipe, ['van gogh']).")
    if not all(isinstance(c, str) for c in concepts):
        raise ConfigError(f"Concepts must be strings, got {[type(c).__name__ for c in concepts]}.")
    m = methods.get(method)
    if preset is not None:
        if preset not in m.presets:
            known = ", ".join(sorted(m.presets)) or "none"
            raise ConfigError(f"Method {method!r} has no preset {preset!r}; its presets: {known}.")
        overrides = {**m.presets[preset], **overrides}
    cfg = make_config(m.config_cls, overrides)
    if guides is not None:
        guides = list(guides) * len(concepts) if len(guides) == 1 else list(guides)
        if len(guides) != len(concepts):
            raise ConfigError(f"{len(concepts)} concepts but {len(guides)} guides: give one guide, or one each.")
    if encoder is None:
        encoder = PipelineEncoder(pipe)
    if isinstance(encoder, PipelineEncoder):  # a custom encoder checks its own input
        for text in concepts:
            encoder.check_concept(text)
    if targets is None:
        targets = find_targets(pipe.unet)
    request = methods.EraseRequest(
        targets=targets,
        encoder=encoder,
        concepts=tuple(concepts),
        guides=tuple(guides) if guides is not None else None,
        preserve=tuple(preserve),
        base_fingerprint=targets.fingerprint(base_weights(pipe.unet)),
        progress=progress,
    )
    start = time.perf_counter()
    edit = m.fn(request, cfg)
    edit.info["edit_s"] = time.perf_counter() - start
    if preset is not None:
        edit.info["preset"] = preset
    return edit
