"""Validation shared by the settings specs: strict types and ranges, with messages a user can act on.

Strings, booleans and NaN are refused where a number is meant: ``tile_size="640"`` or ``True`` would
otherwise be accepted by ``int()`` and run something the caller did not ask for. Every refusal is a
:class:`SettingError` naming the field, so a caller names it its own way (a CLI flag, a page control)
without parsing the message.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import fields, replace
from typing import Any, Iterable, TypeVar

T = TypeVar("T")


class SettingError(ValueError):
    """A refused setting: ``field`` is the settings field, ``message`` what is wrong with its value, in
    words that follow the setting's name ("must be in [0, 1], got 2"); ``name`` is how the message names
    it (the field, or e.g. "merge threshold", "tile_size (x)"). ``str()`` is ``f"{name} {message}"``."""

    def __init__(self, field: str, message: str, name: str | None = None) -> None:
        super().__init__(field, message, name)  # all three in args: the error pickles (Ray ships it)
        self.field, self.message, self.name = field, message, name or field

    def __str__(self) -> str:
        return f"{self.name} {self.message}"


class UnknownSetting(SettingError, TypeError):
    """A keyword no settings class has (a ``TypeError``, as an unknown keyword argument is); ``field``
    is the first unknown name and ``message`` the whole sentence."""

    def __str__(self) -> str:
        return self.message


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def number(field: str, value: Any, lo: float, hi: float, *, hi_open: bool = False, name: str | None = None) -> float:
    """A finite real in [lo, hi] (or [lo, hi) with ``hi_open``)."""
    if not _is_number(value) or not math.isfinite(float(value)):
        raise SettingError(field, f"must be a number, got {value!r}", name)
    value = float(value)
    if value < lo or value > hi or (hi_open and value == hi):
        raise SettingError(field, f"must be in [{lo:g}, {hi:g}{')' if hi_open else ']'}, got {value:g}", name)
    return value


def whole(field: str, value: Any, lo: int, hi: int, *, name: str | None = None) -> int:
    """A whole number in [lo, hi]; 640.0 is accepted, 640.5, "640" and True are not."""
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) != int(value):
        raise SettingError(field, f"must be a whole number, got {value!r}", name)
    value = int(value)
    if not lo <= value <= hi:
        raise SettingError(field, f"must be between {lo} and {hi}, got {value}", name)
    return value


def flag(field: str, value: Any, *, name: str | None = None) -> bool:
    if not isinstance(value, (bool,)) and value not in (0, 1):
        raise SettingError(field, f"must be True or False, got {value!r}", name)
    return bool(value)


def choice(field: str, value: Any, options: tuple[str, ...], *, name: str | None = None) -> str:
    text = str(value).lower() if isinstance(value, str) else value
    if text not in options:
        raise SettingError(field, f"must be one of {', '.join(options)}, got {value!r}", name)
    return text


def class_ids(field: str, value: Iterable | None, *, name: str | None = None) -> tuple[int, ...] | None:
    """None (every class) or a sorted tuple of distinct class ids >= 0."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise SettingError(field, f"must be a list of class ids, got {value!r}", name)
    entry = f"{name or field} entry"
    return tuple(sorted({whole(field, v, 0, 1_000_000, name=entry) for v in value}))


def with_changes(spec: T | None, cls: type[T], changes: dict[str, Any]) -> T:
    """``spec`` (or the defaults of ``cls``) with some fields changed, validated again."""
    base = cls() if spec is None else spec
    if not isinstance(base, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(base).__name__}")
    refuse_unknown(changes, field_names(cls), cls.__name__)
    return replace(base, **changes) if changes else base


def refuse_unknown(changes: Iterable[str], known: set[str], owner: str | None = None) -> None:
    """An :class:`UnknownSetting` for the names in ``changes`` outside ``known`` (the settings of ``owner``,
    a class name, or of a whole run when None), listing the known ones."""
    unknown = sorted(set(changes) - known)
    if unknown:
        lead, its = (f"{owner} has no setting", "its") if owner else ("unknown setting", "the")
        raise UnknownSetting(unknown[0], f"{lead} {', '.join(unknown)}; {its} settings are {', '.join(sorted(known))}")


def field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}
