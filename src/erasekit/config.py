"""Method configs from user overrides: unknown names and ill-typed values fail with a clear error.

Configs are frozen dataclasses whose fields are the method's own knobs. Overrides come from Python
(``erase(..., lamb=0.1)``) or the CLI (``--set lamb=0.1``, a string), so values are parsed against
the field's annotation: ``float``, ``int``, ``bool``, ``str``, ``Literal[...]`` and ``X | None``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
import warnings
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from .errors import ConfigError

C = TypeVar("C")


def make_config(cls: type[C], overrides: dict[str, Any]) -> C:
    """``cls(**overrides)`` with every name checked and every value parsed to its field's type."""
    hints = get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    values = {}
    for name, value in overrides.items():
        if name not in fields:
            close = difflib.get_close_matches(name, fields, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{cls.__name__} has no hyper-parameter {name!r}.{hint} Valid: {', '.join(fields)}.")
        values[name] = parse_value(value, hints[name], f"{cls.__name__}.{name}")
    return cls(**values)


def parse_value(value: Any, annotation: Any, where: str) -> Any:
    """``value`` as ``annotation``; strings (from the CLI) are parsed, other types must match."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return parse_value(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}.")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif annotation in (int, float):
        exact = int if annotation is int else (int, float)
        if isinstance(value, exact) and not isinstance(value, bool):
            return annotation(value)
        if isinstance(value, str):
            try:
                return annotation(value)
            except ValueError:
                pass
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: "a,b" from the CLI
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if isinstance(items, (list, tuple)):
            return tuple(parse_value(v, args[0], f"{where} item") for v in items)
    else:
        return value
    type_name = getattr(annotation, "__name__", str(annotation))
    example = {"float": "0.5", "int": "3", "bool": "true", "str": "text"}.get(type_name)
    fix = f" (e.g. {where.rsplit('.', 1)[-1]}={example})" if example else ""
    raise ConfigError(f"{where} expects {type_name}, got {value!r}{fix}.")


def config_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain JSON-able values, for edit metadata and ``erasekit methods``."""
    return dataclasses.asdict(cfg)


def renamed(new_value: Any, old_value: Any, *, new: str, old: str, stacklevel: int = 3) -> Any:
    """The value of an option renamed in this release: ``new_value``, or ``old_value`` given under the old name.

    The old name warns (DeprecationWarning: it goes in the next release); both names with different
    values is an error.

    Raises:
        ConfigError: ``new_value`` and ``old_value`` both given and different.
    """
    if old_value is None:
        return new_value
    warnings.warn(f"{old} is now {new}; {old} goes in the next release.", DeprecationWarning, stacklevel=stacklevel)
    if new_value is not None and new_value != old_value:
        raise ConfigError(f"{new} {new_value!r} and {old} {old_value!r} disagree: give {new} only.")
    return old_value


def check_count(name: str, value: Any) -> None:
    """Raises ConfigError unless ``value`` is a whole number >= 1 (``name``: the option, e.g. ``--num-processes``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}.")
