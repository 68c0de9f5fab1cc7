"""YOLO label rows (detect, segment, oriented-box and pose) read into objects in image pixels, exactly as
written: nothing is dropped or clipped silently, a bad row is a one-line error naming file and line."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..labels.base import LabelError, _read_label_file, _text
from .clip import ring_area
from .objects import DatasetError, Kind, LabelledObject

OUTSIDE_TOLERANCE = 1e-3  # normalized: rounding of a coordinate written at the image's edge
OBB_FIELDS = 9


def _row_kind(n_fields: int, all_obb: bool, kpt_shape: tuple[int, int] | None, task: str) -> Kind | None:
    """The kind of a row of ``n_fields`` fields, or None when the count fits no kind the task allows."""
    if kpt_shape is not None or task == "pose":
        k, dims = kpt_shape or (0, 3)
        return Kind.POSE if n_fields == 5 + k * dims else None
    if task == "obb" or (task == "auto" and all_obb):
        return Kind.OBB if n_fields == OBB_FIELDS else None
    if n_fields == 5:
        return Kind.BOX
    return Kind.POLYGON if n_fields >= 7 and n_fields % 2 == 1 else None


def _expected(kpt_shape: tuple[int, int] | None, task: str) -> str:
    if kpt_shape is not None:
        return f"5 + {kpt_shape[0]}x{kpt_shape[1]} values (cls cx cy w h and the keypoints of kpt_shape)"
    if task == "obb":
        return "9 values (cls x1 y1 x2 y2 x3 y3 x4 y4)"
    return "cls cx cy w h, or cls and an even number >= 6 of polygon values"


def _check_row(values: np.ndarray, where: str, names: dict[int, str], kind: Kind) -> None:
    cls = values[0]
    if not (cls >= 0 and cls == int(cls)):
        raise DatasetError(f"{where}: class {values[0]:g} is not a whole number >= 0")
    if int(cls) not in names:
        known = f"0-{max(names)}" if names else "none"
        raise DatasetError(f"{where}: class {int(cls)} is not among the dataset's names (known: {known})")
    if not np.isfinite(values).all():
        raise DatasetError(f"{where}: a value is not a finite number")
    coords = values[1:5] if kind in (Kind.BOX, Kind.POSE) else values[1:]
    if kind in (Kind.BOX, Kind.POSE):
        cx, cy, w, h = coords
        if w < 0 or h < 0:
            raise DatasetError(f"{where}: negative box size {w:g} x {h:g}")
        coords = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    bad = (coords < -OUTSIDE_TOLERANCE) | (coords > 1 + OUTSIDE_TOLERANCE)
    if bad.any():
        raise DatasetError(f"{where}: label outside the image (coordinate {coords[bad][0]:.4g}; YOLO coordinates "
                           "are 0-1 of the image's size)")


def _object(values: np.ndarray, kind: Kind, size: np.ndarray, kpt_shape: tuple[int, int] | None) -> LabelledObject:
    """One checked row as an object in pixels (coordinates a rounding outside the image moved onto its edge)."""
    cls = int(values[0])
    if kind in (Kind.BOX, Kind.POSE):
        cx, cy, w, h = values[1:5]
        x0, y0, x1, y1 = np.clip([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 0.0, 1.0) * np.tile(size, 2)
        ring = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
        kpts = None
        if kind is Kind.POSE:
            k, dims = kpt_shape or (0, 3)
            raw = values[5:].reshape(k, dims)
            vis = raw[:, 2] if dims == 3 else np.where((raw[:, 0] > 0) | (raw[:, 1] > 0), 2.0, 0.0)
            kpts = np.column_stack([np.clip(raw[:, :2], 0.0, 1.0) * size, vis])
        return LabelledObject(cls, kind, [ring], kpts)
    ring = np.clip(values[1:].reshape(-1, 2), 0.0, 1.0) * size
    return LabelledObject(cls, kind, [ring.astype(np.float64)])


def read_yolo_rows(path: Path, width: int, height: int, names: dict[int, str],
                   kpt_shape: tuple[int, int] | None = None, task: str = "auto") -> list[LabelledObject]:
    """The objects of one YOLO label file, in pixels of a ``width`` x ``height`` image. A missing file is
    an image without objects, as Ultralytics has it. Every row of nine values, in a file of nothing else,
    is an oriented box (YOLO-OBB) unless ``task`` says otherwise."""
    if not path.is_file():
        return []
    try:
        data, shown = _read_label_file(path, "parse_yolo_labels")
        text = _text(data, shown, "read_yolo_rows")
    except LabelError as exc:
        raise DatasetError(str(exc)) from None
    rows = [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    all_obb = bool(rows) and all(len(r) == OBB_FIELDS for _, r in rows)
    size = np.array([width, height], np.float64)
    objects = []
    for n, parts in rows:
        where = f"{shown} line {n}"
        kind = _row_kind(len(parts), all_obb, kpt_shape, task)
        if kind is None:
            raise DatasetError(f"{where}: {len(parts) - 1} values after the class; expected {_expected(kpt_shape, task)}")
        try:
            values = np.array(parts, np.float64)
        except ValueError:
            raise DatasetError(f"{where}: not numbers: {' '.join(parts)[:60]!r}") from None
        _check_row(values, where, names, kind)
        obj = _object(values, kind, size, kpt_shape)
        if sum(abs(ring_area(r)) for r in obj.rings) > 0:  # a zero-area label can be matched by nothing
            objects.append(obj)
    return objects

