"""The registry of erasure methods: a config dataclass plus one function, registered by name.

A method is ``fn(request: EraseRequest, cfg: Config) -> Edit``. Adding one is a new module with
``@register("name", NameConfig)`` and its name on the import line at the bottom; nothing else
changes (the CLI and ``erasekit methods`` read the registry).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..concepts import PromptEncoder
from ..config import config_dict
from ..edit import Edit
from ..errors import RegistryError, UnknownMethodError
from ..targets import Target, Targets


@dataclass(frozen=True)
class EraseRequest:
    """What every method gets: the layers, the text encoder and the concepts.

    Attributes:
        targets: the U-Net's cross-attention K/V projections (with the base fingerprint).
        encoder: prompt -> token states, as the pipeline computes them.
        concepts: the concepts to erase.
        guides: one guide per concept, or None for the method's default.
        preserve: concepts whose outputs should not change.
        base_fingerprint: fingerprint of the un-edited base model.
        progress: ``progress(done, total)`` for methods that iterate (ESD, ACE); None: silent.
    """

    targets: Targets
    encoder: PromptEncoder
    concepts: tuple[str, ...]
    guides: tuple[str, ...] | None = None
    preserve: tuple[str, ...] = ()
    base_fingerprint: str | None = None
    progress: Callable[[int, int], None] | None = None

    def guides_or(self, default: str) -> list[str]:
        return list(self.guides) if self.guides is not None else [default] * len(self.concepts)

    def layers(self, *, edit_keys: bool) -> list[Target]:
        return [t for t in self.targets if edit_keys or t.kind == "v"]

    def make_edit(
        self, method: str, cfg: Any, updates: dict, *, guides: Sequence[str], info: dict[str, Any] | None = None
    ) -> Edit:
        return Edit(
            updates,
            method=method,
            config=config_dict(cfg),
            concepts=list(self.concepts),
            guides=list(guides),
            preserve=list(self.preserve),
            fingerprint=self.base_fingerprint,
            info=dict(info or {}),
        )


MethodFn = Callable[[EraseRequest, Any], Edit]


@dataclass(frozen=True)
class Method:
    name: str
    config_cls: type
    fn: MethodFn
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0]


_REGISTRY: dict[str, Method] = {}  # filled at import, never changed afterwards


def register(
    name: str, config_cls: type, *, presets: dict[str, dict[str, Any]] | None = None
) -> Callable[[MethodFn], MethodFn]:
    """Class decorator-style registration of ``fn`` under ``name`` with its config class."""

    def wrap(fn: MethodFn) -> MethodFn:
        if name in _REGISTRY:
            raise RegistryError(f"A method named {name!r} is already registered ({_REGISTRY[name].fn.__module__}).")
        _REGISTRY[name] = Method(name, config_cls, fn, dict(presets or {}))
        return fn

    return wrap


def get(name: str) -> Method:
    """The method registered as ``name``.

    Raises:
        UnknownMethodError: no such method; the message suggests the closest name.
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownMethodError(f"Unknown method {name!r}.{hint} Available: {', '.join(available())}.")
    return _REGISTRY[name]


def available() -> list[str]:
    return sorted(_REGISTRY)


from . import ace, esd, nullspace, rece, uce  # noqa: E402, F401
