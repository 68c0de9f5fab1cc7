"""The CLI's options for the three settings specs, made from the specs' fields: ``--tile-size`` is
``TileSpec.tile_size``, with the spec's default, its choices (a ``Literal`` field) and its type. A field
the specs share (``conf``, ``classes``) is one option that sets it in each."""
from __future__ import annotations

import argparse
import enum
import types
from dataclasses import MISSING, Field, fields
from typing import Any, Literal, Mapping, Union, get_args, get_origin, get_type_hints

from .checks import SettingError
from .cli_common import CliError, flag_of
from .grid import TileSpec
from .merge import MergeSpec
from .models import InferSpec
from .settings import SPECS

GROUPS = {TileSpec: "tiles", InferSpec: "model", MergeSpec: "merge"}

# What each field's option does, for --help; the default is appended from the spec.
HELP = {
    "tile_size": "tile size in pixels, or auto: tiles at the model's input size plus the finer level the objects they find call for",
    "overlap": "overlap of neighbouring tiles, a fraction in [0, 0.9)",
    "edge": "last row/column of tiles: trimmed to the image (less work) or full size, shifted back",
    "max_tiles": "refuse an image that would need more tiles than this",
    "offset_grid": "also run a second grid shifted by half a step: objects cut by the first grid's borders are "
                   "whole in it (1.2-1.8x the tiles)",
    "conf": "confidence threshold",
    "iou": "the model's own NMS IoU inside each tile",
    "classes": "keep only these class ids, e.g. 0,2 (default: all)",
    "max_det": "at most this many boxes per tile",
    "batch_size": "tiles per model call",
    "imgsz": "input size of the full-image pass, 32-4096",
    "include_full": "also merge a full-image pass: large objects whole, small ones by their tiles (default on)",
    "levels": "a tile pyramid: more tile sizes beside --tile-size, each enlarged to the model's input, e.g. 320 "
              "(with 640 px tiles: about 4x the work, +0.07 AP50 on small objects)",
    "method": "merge method across tiles: nms keeps the best box, wbf averages the boxes of one object "
              "(weighted boxes fusion, the default), soft lowers overlapping boxes' confidence (Soft-NMS), "
              "nmm joins them",
    "metric": "match metric for merging",
    "threshold": "two boxes match when their metric is at least this",
    "class_agnostic": "merge boxes of different classes too",
}


def _class_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected class ids separated by commas, got {text!r}") from None


def _value_type(hint: Any) -> Any:
    """The type an option parses to: the first of a union that is not None (``int | tuple[int, int]`` -> int)."""
    if get_origin(hint) in (Union, types.UnionType):
        return next(arg for arg in get_args(hint) if arg is not type(None))
    return hint


def _int_or(words: tuple[str, ...]):
    """A whole number, or one of ``words`` (``--tile-size auto``)."""
    def parse(text: str) -> int | str:
        if text in words:
            return text
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number or {' or '.join(words)}, got {text!r}") from None

    return parse


def _option(field: Field, hint: Any, texts: Mapping[str, str] = HELP) -> dict[str, Any]:
    """``add_argument`` keywords for one spec field."""
    default = field.default if field.default is not MISSING else None
    kind, text = _value_type(hint), texts.get(field.name, field.name.replace("_", " "))
    words = [w for arg in get_args(hint) if get_origin(arg) is Literal for w in get_args(arg)]
    if kind is int and words:  # a number, or a word such as "auto"
        return dict(type=_int_or(tuple(words)), default=default, help=text + f" (default {default})")
    if kind is bool:
        return dict(action="store_true" if not default else argparse.BooleanOptionalAction, default=default, help=text)
    shown = "" if default is None else f" (default {default})"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):  # a StrEnum choice: its values
        return dict(choices=[m.value for m in kind], default=default.value if default is not None else None,
                    help=text + shown)
    if get_origin(kind) is Literal:
        return dict(choices=get_args(kind), default=default, help=text + shown)
    if get_origin(kind) is tuple:  # a list of ids
        return dict(type=_class_list, default=default, help=text + shown)
    return dict(type=kind, default=default, help=text + shown)


def add_spec_args(parser: argparse.ArgumentParser) -> dict[type, Any]:
    """One option per field of the specs, in a group per spec; returns the groups (spec -> group), so
    options that are no spec field can join them."""
    groups, done = {}, set()
    for cls in SPECS:
        groups[cls] = group = parser.add_argument_group(GROUPS[cls])
        hints = get_type_hints(cls)
        for field in fields(cls):
            if field.name not in done:
                group.add_argument(flag_of(field.name), dest=field.name, **_option(field, hints[field.name]))
                done.add(field.name)
    return groups


def add_fields(group, cls: type, flags: Mapping[str, str], texts: Mapping[str, str]) -> None:
    """One option per field of another settings dataclass ``cls`` in ``group``, as the specs' are made:
    ``flags`` names a field's option where it is not :func:`flag_of` its name, ``texts`` is the help."""
    hints = get_type_hints(cls)
    for field in fields(cls):
        group.add_argument(flags.get(field.name) or flag_of(field.name), dest=field.name,
                           **_option(field, hints[field.name], texts))


def settings(args: argparse.Namespace) -> tuple[TileSpec, InferSpec, MergeSpec]:
    """The three specs from the options, or a one-line error naming the bad option."""
    try:
        tiles, infer, merge = (cls(**{f.name: getattr(args, f.name) for f in fields(cls)}) for cls in SPECS)
    except SettingError as exc:
        raise CliError.of_setting(exc) from None
    return tiles, infer, merge
