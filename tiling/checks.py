"""Validation shared by the settings specs: strict types and ranges, with messages a user can act on.

Strings, booleans and NaN are refused where a number is meant: ``tile_size="640"`` or ``True`` would
otherwise be accepted by ``int()`` and run something the caller did not ask for.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import fields, replace
from typing import Any, Iterable, TypeVar

T = TypeVar("T")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def number(name: str, value: Any, lo: float, hi: float, *, hi_open: bool = False) -> float:
    """A finite real in [lo, hi] (or [lo, hi) with ``hi_open``)."""
    if not _is_number(value) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if value < lo or value > hi or (hi_open and value == hi):
        raise ValueError(f"{name} must be in [{lo:g}, {hi:g}{')' if hi_open else ']'}, got {value:g}")
    return value


def whole(name: str, value: Any, lo: int, hi: int) -> int:
    """A whole number in [lo, hi]; 640.0 is accepted, 640.5, "640" and True are not."""
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) != int(value):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool,)) and value not in (0, 1):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def choice(name: str, value: Any, options: tuple[str, ...]) -> str:
    text = str(value).lower() if isinstance(value, str) else value
    if text not in options:
        raise ValueError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return text


def class_ids(name: str, value: Iterable | None) -> tuple[int, ...] | None:
    """None (every class) or a sorted tuple of distinct class ids >= 0."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list of class ids, got {value!r}")
    return tuple(sorted({whole(f"{name} entry", v, 0, 1_000_000) for v in value}))


def with_changes(spec: T | None, cls: type[T], changes: dict[str, Any]) -> T:
    """``spec`` (or the defaults of ``cls``) with some fields changed, validated again."""
    base = cls() if spec is None else spec
    if not isinstance(base, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(base).__name__}")
    unknown = set(changes) - field_names(cls)
    if unknown:
        raise TypeError(f"{cls.__name__} has no setting {', '.join(sorted(unknown))}; "
                        f"its settings are {', '.join(sorted(field_names(cls)))}")
    return replace(base, **changes) if changes else base


def field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}
