"""What both label formats share: the error type, the size caps, reading a file or content safely.

Label files come from users: uploads in the app, paths on the command line. Paths and content have
separate functions, so uploaded content can never be taken for a path on the server. Every problem is
a one-line :class:`LabelError` naming the file and the line (YOLO) or field (COCO), and sizes are
capped: one upload must not cost minutes of CPU or gigabytes of memory.
"""
from __future__ import annotations

import math
import os
import reprlib
import warnings
from typing import Sequence

import numpy as np


class LabelError(ValueError):
    """A label file that cannot be used; the one-line message names the file and the line or field."""


def _env_limit(var: str, default: float, unit: int = 1) -> int:
    """``default * unit``, or ``$var * unit`` when it is a positive number: operators can move a cap without code."""
    raw = os.environ.get(var, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        warnings.warn(f"{var}={raw!r} is not a positive number; using {default:g}", stacklevel=2)
        value = default
    return int(value * unit)


MAX_LABEL_BYTES = _env_limit("PATCHWISE_MAX_LABEL_MB", 20, 1 << 20)  # per label file or upload
MAX_LABEL_ITEMS = _env_limit("PATCHWISE_MAX_LABEL_ITEMS", 200_000)  # YOLO lines; COCO images/annotations/categories
_JSON_CONTAINERS_PER_ITEM = 10  # annotation + bbox + segmentation lists, with room to spare
_MAX_CLASS_ID = 2**31 - 1  # class ids must fit 32 bits (exports, torch)
MAX_CLASS_NAME_BYTES = 256  # a category name, UTF-8: drawn beside every box (a model's names have the same cap)
_MAX_COORD = float(np.finfo(np.float32).max)  # boxes are stored as float32
_MAX_SIDE = 2**30  # larger than any image; keeps clipped pixel coordinates inside OpenCV's int range
_FLUSH_TOKENS = 1 << 16  # YOLO tokens held as strings (~60 bytes each) before conversion to 8-byte floats

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 40
_SHORT.maxlist = _SHORT.maxdict = 5
_SHORT.maxlevel = 2


def _shown(name: str) -> str:
    """The file name as it goes into a one-line message: no control characters, long names shortened."""
    text = "".join(c if c.isprintable() else "?" for c in str(name)[:300])
    return text if len(text) <= 120 else f"{text[:57]}...{text[-60:]}"


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be the file name (a str), got {type(name).__name__}")
    return _shown(name)


def _too_big(size: int, name: str) -> None:
    """Refuse content over MAX_LABEL_BYTES before any parsing: parse cost grows with size."""
    if size > MAX_LABEL_BYTES:
        raise LabelError(f"{name}: {size:,} bytes is over the {MAX_LABEL_BYTES / (1 << 20):g} MB limit for label "
                         "files (PATCHWISE_MAX_LABEL_MB)")


def _too_many(count: int, what: str, name: str) -> None:
    if count > MAX_LABEL_ITEMS:
        raise LabelError(f"{name}: more than {MAX_LABEL_ITEMS:,} {what}, the limit for label files "
                         "(PATCHWISE_MAX_LABEL_ITEMS)")


def _read_label_file(path: str | os.PathLike, parser: str) -> tuple[bytes, str]:
    """(content, shown name) of a label file, read no further than the size cap (a pipe or /dev/zero included)."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected a path, got {type(path).__name__} content: pass content to {parser}(data, name)")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a path (str or os.PathLike), got {type(path).__name__}")
    name = _shown(os.fsdecode(path))
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(MAX_LABEL_BYTES + 1) if size <= MAX_LABEL_BYTES else b""
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        hint = f"; content goes to {parser}(data, name)" if isinstance(path, str) and (
            "\n" in path or path.lstrip()[:1] in ("{", "[")) else ""
        raise LabelError(f"{name}: cannot read the file ({getattr(exc, 'strerror', None) or exc}){hint}") from exc
    _too_big(max(size, len(data)), name)
    return data, name


def _text(data: bytes | str, name: str, loader: str) -> str:
    """Content as text, size-checked first; bytes must be UTF-8 (a BOM is allowed)."""
    if isinstance(data, str):
        _too_big(len(data), name)
        return data.removeprefix("\ufeff")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        hint = f"; for a path use {loader}(path)" if isinstance(data, os.PathLike) else ""
        raise TypeError(f"expected label content (bytes or str), got {type(data).__name__}{hint}")
    raw = bytes(data)
    _too_big(len(raw), name)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise LabelError(f"{name} line {line}: not UTF-8 text (byte {exc.start:,})") from None


def _clip_boxes(xyxy: np.ndarray, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes clipped to [0, width] x [0, height], and which still have an area (the others are dropped)."""
    w, h = min(width, _MAX_SIDE), min(height, _MAX_SIDE)
    out = np.clip(xyxy, 0.0, np.array([w, h, w, h]))
    return out, (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])


def _image_size(image_shape: Sequence[int]) -> tuple[int, int]:
    h, w = int(image_shape[0]), int(image_shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"image_shape must be positive (height, width, ...), got {tuple(image_shape)}")
    return h, w
