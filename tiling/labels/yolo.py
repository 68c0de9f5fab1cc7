"""YOLO txt labels: ``cls cx cy w h [conf]`` boxes or ``cls x y x y ...`` polygons, normalized to the image."""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from ..detections import Detections
from ..rotated import quads_to_obb
from .base import (
    _FLUSH_TOKENS,
    _MAX_CLASS_ID,
    _MAX_COORD,
    LabelError,
    _check_name,
    _clip_boxes,
    _image_size,
    _read_label_file,
    _text,
    _too_many,
)


def _number(v: float) -> str:
    """A parsed value as the user probably wrote it (-1, 1.5, inf, 1e+308)."""
    return str(int(v)) if math.isfinite(v) and v == int(v) and abs(v) < 1e16 else repr(float(v))


# YOLO txt
def _yolo_fields_ok(n_fields: int) -> bool:
    """class + 4 box values, + an optional confidence, or class + an even number >= 6 of polygon values."""
    return n_fields in (5, 6) or (n_fields >= 7 and n_fields % 2 == 1)


def _yolo_flush(pending: dict, done: dict, problems: list) -> None:
    """Convert held rows to floats, one numpy call per field count (row by row only around a bad row)."""
    for k, (lines, rows) in pending.items():
        try:
            values = np.array(rows, np.float64)
        except ValueError:
            numeric = [_parses(r) for r in rows]
            bad = numeric.index(False)
            problems.append((lines[bad], f"not numbers: {' '.join(rows[bad][:8])[:60]!r}"))
            lines = [n for n, ok in zip(lines, numeric) if ok]
            values = np.array([r for r, ok in zip(rows, numeric) if ok], np.float64).reshape(-1, k)
        done.setdefault(k, []).append((np.array(lines, np.int64), values))
    pending.clear()


def _parses(row: list[str]) -> bool:
    try:
        np.array(row, np.float64)
    except ValueError:
        return False
    return True


def _lines(text: str, name: str) -> list[str]:
    """The lines (any newline convention), refused above MAX_LABEL_ITEMS before the split allocates them."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    _too_many(text.count("\n") + (not text.endswith("\n")), "lines", name)
    return text.split("\n")


OBB_FIELDS = 9  # fields of a YOLO-OBB row: the class and four corners


def _yolo_tables(text: str, name: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[int, str]]]:
    """(line numbers, float rows) per field count, and the problems found reading them.

    Rows are converted every _FLUSH_TOKENS tokens, so memory stays near 8 bytes per value.
    """
    pending: dict[int, tuple[list[int], list[list[str]]]] = {}
    done: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    problems: list[tuple[int, str]] = []
    held, miscounted = 0, False
    for n, line in enumerate(_lines(text, name), 1):
        parts = line.split()
        if not parts:
            continue
        if not _yolo_fields_ok(len(parts)):
            if not miscounted:  # the first is enough: problems are reported by their line
                values = f"{len(parts) - 1} value{'s' * (len(parts) != 2)}"
                problems.append((n, f"{values} after the class; expected 4 (cx cy w h), 5 (with a confidence) or "
                                    "an even number >= 6 (a polygon)"))
            miscounted = True
            continue
        lines, rows = pending.setdefault(len(parts), ([], []))
        lines.append(n)
        rows.append(parts)
        held += len(parts)
        if held >= _FLUSH_TOKENS:
            _yolo_flush(pending, done, problems)
            held = 0
    _yolo_flush(pending, done, problems)
    return [(np.concatenate([t[0] for t in v]), np.concatenate([t[1] for t in v])) for v in done.values()], problems


def _first_bad(bad: np.ndarray, lines: np.ndarray, problems: list, message) -> None:
    """Record the first row flagged in ``bad`` as (line, message(row index))."""
    if bad.any():
        k = int(np.argmax(bad))
        problems.append((int(lines[k]), message(k)))


def _yolo_check(lines: np.ndarray, values: np.ndarray, problems: list) -> None:
    """Classes must be integers in [0, 2**31); values finite (float32); box sizes not negative."""
    cls, coords = values[:, 0], values[:, 1:]
    _first_bad(~((cls >= 0) & (cls <= _MAX_CLASS_ID) & (cls == np.floor(cls))), lines, problems,
               lambda k: f"class {_number(cls[k])} is not an integer from 0 to {_MAX_CLASS_ID}")
    finite = np.abs(coords) <= _MAX_COORD  # False for NaN too
    _first_bad(~finite.all(axis=1), lines, problems,
               lambda k: f"value {_number(coords[k][~finite[k]][0])} is not a finite number")
    if coords.shape[1] in (4, 5):
        _first_bad((coords[:, 2] < 0) | (coords[:, 3] < 0), lines, problems,
                   lambda k: f"negative box size {_number(coords[k, 2])} x {_number(coords[k, 3])}")


def _yolo_xyxy(values: np.ndarray) -> np.ndarray:
    """Normalized xyxy of box rows (cx cy w h) or polygon rows (the polygon's bounding box)."""
    coords = values[:, 1:]
    if coords.shape[1] in (4, 5):
        cx, cy, bw, bh = coords[:, :4].T
        return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    pts = coords.reshape(len(coords), -1, 2)
    return np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1)


def parse_yolo_labels(data: bytes | str, image_shape: Sequence[int], name: str = "labels.txt", *,
                      names: dict[int, str] | None = None, obb: bool | None = None) -> Detections:
    """YOLO txt content (``cls cx cy w h [conf]`` or ``cls x y x y ...`` polygons, normalized) -> pixel boxes.

    ``data`` is content, never a path: uploads must not reach the file system. ``name`` is only used in
    messages. Boxes are clipped to the image (in normalized units, before scaling) and boxes left with
    no area are dropped: a zero-area label can never be matched. Anything malformed is a LabelError.

    YOLO-OBB labels (``cls x1 y1 x2 y2 x3 y3 x4 y4``) also get oriented boxes (``Detections.obb``, the
    smallest rectangle holding each row's corners) beside their usual enclosing boxes: ``obb=None``
    when every row of the file has four corners, ``obb=True`` always (other rows are an error),
    ``obb=False`` never. ``xyxy`` is the same either way, so nothing changes for upright models.
    """
    name = _check_name(name)
    h, w = _image_size(image_shape)
    tables, problems = _yolo_tables(_text(data, name, "load_yolo_labels"), name)
    for lines, values in tables:
        _yolo_check(lines, values, problems)
        if obb and values.shape[1] != OBB_FIELDS:
            problems.append((int(lines[0]), f"{values.shape[1] - 1} values after the class; an oriented box "
                                            "(YOLO-OBB) has 8: x1 y1 x2 y2 x3 y3 x4 y4"))
    if problems:
        line, message = min(problems, key=lambda p: p[0])  # the first line; on it, the first check failed
        raise LabelError(f"{name} line {line}: {message}")
    oriented = obb if obb is not None else bool(tables) and all(t[1].shape[1] == OBB_FIELDS for t in tables)
    if not tables:
        return Detections.empty(names, with_obb=bool(obb))
    lines = np.concatenate([t[0] for t in tables])
    order = np.argsort(lines, kind="stable")  # back to file order
    xyxy, keep = _clip_boxes(np.concatenate([_yolo_xyxy(t[1]) for t in tables])[order], 1.0, 1.0)
    classes = np.concatenate([t[1][:, 0] for t in tables])[order]
    rotated = None
    if oriented:
        quads = np.clip(np.concatenate([t[1][:, 1:] for t in tables])[order][keep].reshape(-1, 4, 2), 0.0, 1.0)
        rotated = quads_to_obb(quads * [w, h])
    return Detections(xyxy=(xyxy[keep] * [w, h, w, h]).astype(np.float32), class_id=classes[keep].astype(np.int64),
                      names=dict(names or {}), obb=rotated)


def load_yolo_labels(path: str | os.PathLike, image_shape: Sequence[int],
                     names: dict[int, str] | None = None, obb: bool | None = None) -> Detections:
    """A YOLO txt file -> pixel boxes (see parse_yolo_labels). A str is always a path; content is refused."""
    data, name = _read_label_file(path, "parse_yolo_labels")
    return parse_yolo_labels(data, image_shape, name, names=names, obb=obb)


def is_oriented_label_file(path: str | os.PathLike) -> bool:
    """True when every row of a YOLO label file has four corners (``cls x1 y1 ... x4 y4``, YOLO-OBB): the
    rule ``parse_yolo_labels`` uses for ``obb=None``. False for other rows, an empty file or none."""
    if not os.path.isfile(path):
        return False
    data, name = _read_label_file(path, "parse_yolo_labels")
    rows = [line.split() for line in _lines(_text(data, name, "parse_yolo_labels"), name)]
    rows = [r for r in rows if r]
    return bool(rows) and all(len(r) == OBB_FIELDS for r in rows)

