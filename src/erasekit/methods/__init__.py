"""The registry of erasure methods: a config dataclass plus one function, registered by name.

A method is ``fn(request: EraseRequest, cfg: Config) -> Edit``. Adding one is a new module with
``@register("name", NameConfig, ...)`` and its name on the import line at the bottom; nothing else
changes: the CLI, ``erasekit methods`` and ``erasekit compare`` read the registry, including what a
method declares there (preserve set, settings, variants).
"""

from __future__ import annotations

import difflib
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import config_dict, make_config
from ..edit import Edit
from ..errors import ConfigError, UnknownMethodError
from ..progress import Progress
from ..registry import Registry
from ..targets import Target, Targets
from ..text import PromptEncoder, TextEncoder


@dataclass(frozen=True)
class EraseRequest:
    """What every method gets: the layers, the text encoder and the concepts.

    Attributes:
        targets: the U-Net's cross-attention K/V projections (with the base fingerprint).
        encoder: prompt -> token states, as the pipeline computes them (a :class:`~erasekit.text.TextEncoder`
            of ``pipe`` unless the caller passed its own).
        pipe: the pipeline, for methods that train on its U-Net (ESD, ACE's options); None when the
            caller passed only targets and an encoder.
        concepts: the concepts to erase.
        guides: one guide per concept, or None for the method's default.
        preserve: concepts whose outputs should not change.
        preserve_prompts: prompts of the preserved concepts (from a split methods may see; none names an
            erased concept), for methods that calibrate on real prompts (ACE's gate); others ignore them.
        kinds: what some of the concepts are (``{"van gogh": "style"}``), when the caller knows, for methods
            that erase kinds differently (ACE's ``ungated_kinds``); others ignore it.
        base_fingerprint: fingerprint of the un-edited base model.
        progress: ``progress(done, total)`` for methods that iterate (ESD, ACE); None: silent.
    """

    targets: Targets
    encoder: PromptEncoder
    concepts: tuple[str, ...]
    pipe: Any = None
    guides: tuple[str, ...] | None = None
    preserve: tuple[str, ...] = ()
    preserve_prompts: tuple[str, ...] = ()
    kinds: Mapping[str, str] = field(default_factory=dict)
    base_fingerprint: str | None = None
    progress: Progress | None = None

    def guides_or(self, default: str) -> list[str]:
        return list(self.guides) if self.guides is not None else [default] * len(self.concepts)

    def prefetch(self, *prompt_sets: Sequence[str]) -> None:
        """Encode every prompt of ``prompt_sets`` in one batched pass; the calls that follow read the cache.

        Encoding the concepts, guides and retain set separately costs three passes through the text
        encoder (most of UCE's end-to-end time); a custom encoder without a cache is left alone.
        """
        if isinstance(self.encoder, TextEncoder):
            self.encoder.prefetch([text for texts in prompt_sets for text in texts])

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
            # the preserve prompts and kinds go with the edit: a method may have used them (ACE's gate)
            info={
                **(info or {}),
                **({"preserve_prompts": list(self.preserve_prompts)} if self.preserve_prompts else {}),
                **({"kinds": dict(self.kinds)} if self.kinds else {}),
            },
        )


MethodFn = Callable[[EraseRequest, Any], Edit]


@dataclass(frozen=True)
class Method:
    """A registered method and what the command line and ``erasekit compare`` need to know of it.

    Attributes:
        name: the registry name.
        config_cls: the frozen config dataclass (defaults = the reference's).
        fn: ``fn(request, cfg) -> Edit``.
        settings: named hyper-parameter sets (``--settings NAME``), e.g. RECE's ``"reference-style"``.
        takes_preserve: whether the method has a preserve term (ESD has none and refuses a preserve set).
        default_settings: the settings a comparison uses when none is named (ESD's ``"lora"``).
        settings_by_kind: the settings a comparison uses for a kind of concept (``{"style": "reference-style"}``).
        variants: table names of variants -> config overrides (``{"esd-x": {"variant": "x"}}``); the
            comparison lists the variants in place of the method.
        renamed_settings: old settings names -> new ones; the old names still work, with a DeprecationWarning.
    """

    name: str
    config_cls: type
    fn: MethodFn
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    takes_preserve: bool = True
    default_settings: str | None = None
    settings_by_kind: dict[str, str] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    renamed_settings: dict[str, str] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0]

    @property
    def source(self) -> str:
        """The paper the method follows: the first paragraph of its module's docstring, on one line."""
        doc = sys.modules[self.fn.__module__].__doc__ or ""
        return " ".join(doc.strip().split("\n\n")[0].split())

    def make_config(self, settings: str | None = None, **overrides: Any) -> Any:
        """The method's config: the named ``settings`` (a current name; None: none) with ``overrides`` on top.

        Raises:
            ConfigError: an unknown hyper-parameter or an ill-typed value.
        """
        return make_config(self.config_cls, {**self.settings.get(settings or "", {}), **overrides})

    def settings_name(self, name: str) -> str:
        """The current name of the settings ``name`` (an old name warns).

        Raises:
            ConfigError: the method has no such settings.
        """
        if name in self.renamed_settings:
            new = self.renamed_settings[name]
            warnings.warn(
                f"{self.name} settings {name!r} are now {new!r}; {name!r} goes in the next release.",
                DeprecationWarning,
                stacklevel=3,
            )
            name = new
        if name not in self.settings:
            known = ", ".join(sorted(self.settings)) or "none"
            close = difflib.get_close_matches(name, [*self.settings, *self.renamed_settings], n=1, cutoff=0.5)
            hint = f" Did you mean {self.renamed_settings.get(close[0], close[0])!r}?" if close else ""
            raise ConfigError(f"Method {self.name!r} has no settings {name!r}; its settings: {known}.{hint}")
        return name


REGISTRY: Registry[Method] = Registry("method", UnknownMethodError)


def register(
    name: str,
    config_cls: type,
    *,
    settings: dict[str, dict[str, Any]] | None = None,
    takes_preserve: bool = True,
    default_settings: str | None = None,
    settings_by_kind: dict[str, str] | None = None,
    variants: dict[str, dict[str, Any]] | None = None,
    renamed_settings: dict[str, str] | None = None,
) -> Callable[[MethodFn], MethodFn]:
    """Decorator: register ``fn`` as the method ``name`` with its config class and capabilities (see :class:`Method`).

    Raises:
        RegistryError: the name is taken.
        ConfigError: a default or per-kind settings name that ``settings`` does not define.
    """
    settings = dict(settings or {})
    for named in [default_settings, *(settings_by_kind or {}).values(), *(renamed_settings or {}).values()]:
        if named is not None and named not in settings:
            raise ConfigError(f"Method {name!r} names settings {named!r} but defines only {sorted(settings)}.")

    def wrap(fn: MethodFn) -> MethodFn:
        REGISTRY.add(
            name,
            Method(
                name,
                config_cls,
                fn,
                settings,
                takes_preserve,
                default_settings,
                dict(settings_by_kind or {}),
                dict(variants or {}),
                dict(renamed_settings or {}),
            ),
        )
        return fn

    return wrap


def get(name: str) -> Method:
    """The method registered as ``name``.

    Raises:
        UnknownMethodError: no such method; the message suggests the closest names.
    """
    return REGISTRY.get(name)


def available() -> list[str]:
    return REGISTRY.names()


from . import ace, advunlearn, esd, mace, nullspace, rece, receler, speed, spm, uce  # noqa: E402, F401
