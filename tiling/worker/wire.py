"""``Detections`` as plain arrays for the worker's pipe, and back, checked field by field on receipt.

The worker sends, per image, its count and which optional fields it has; the arrays follow in a fixed
order. The server rebuilds ``Detections`` only from arrays of the expected dtype and shape, finite,
with at most ``max_det`` rows, known class ids, and masks inside the image they came from.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..detections import Detections
from .protocol import ProtocolError

MAX_KEYPOINTS = 1000
MAX_NAMES = 10_000
MAX_NAME_CHARS = 1000


def to_wire(dets: Sequence[Detections]) -> tuple[list[dict], list[np.ndarray]]:
    """(one small dict per image, the arrays in order) for a worker's reply."""
    items, arrays = [], []
    for d in dets:
        fields = {"obb": d.obb is not None, "keypoints": d.keypoints is not None, "masks": d.masks is not None}
        items.append({"n": len(d), **fields})
        arrays += [d.xyxy.astype(np.float32), d.confidence.astype(np.float32), d.class_id.astype(np.int64)]
        if d.obb is not None:
            arrays.append(d.obb.astype(np.float32))
        if d.keypoints is not None:
            arrays.append(d.keypoints.astype(np.float32))
        if d.masks is not None:
            arrays.append(d.mask_boxes.astype(np.int32))
            arrays.append(np.concatenate([m.reshape(-1) for m in d.masks] or [np.zeros(0, bool)]).astype(np.uint8))
    return items, arrays


def _take(arrays: list, dtype: str, shape: tuple, what: str) -> np.ndarray:
    """The next array, refused unless it has ``dtype`` and ``shape`` (None: any length there) and is finite."""
    if not arrays:
        raise ProtocolError(f"the worker's reply ends before its {what}")
    a = arrays.pop(0)
    if a.dtype.name != dtype or a.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, a.shape)):
        raise ProtocolError(f"the worker sent {what} as {a.dtype}{list(a.shape)}, expected {dtype}{list(shape)}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ProtocolError(f"the worker sent {what} that are not finite numbers")
    return a


def _masks(arrays: list, n: int, hw: tuple[int, int]) -> tuple[list[np.ndarray], np.ndarray]:
    boxes = _take(arrays, "int32", (n, 4), "mask boxes")
    h, w = hw
    x0, y0, x1, y1 = boxes.T.astype(np.int64)
    if n and ((x0 < 0).any() or (y0 < 0).any() or (x1 > w).any() or (y1 > h).any() or (x1 < x0).any()
              or (y1 < y0).any()):
        raise ProtocolError("the worker sent a mask outside its image")
    sizes = (x1 - x0) * (y1 - y0)
    flat = _take(arrays, "uint8", (int(sizes.sum()),), "masks")
    ends = np.cumsum(sizes)
    masks = [flat[e - s : e].astype(bool).reshape(int(y1[i] - y0[i]), int(x1[i] - x0[i]))
             for i, (s, e) in enumerate(zip(sizes, ends))]
    return masks, boxes


def from_wire(items, arrays: list[np.ndarray], shapes: Sequence[tuple[int, int]], names: dict[int, str],
              max_det: int) -> list[Detections]:
    """``Detections`` for images of ``shapes`` (h, w) from a worker's reply, or a ``ProtocolError``."""
    if not isinstance(items, list) or len(items) != len(shapes):
        raise ProtocolError(f"the worker answered for {len(items) if isinstance(items, list) else '?'} images, "
                            f"not {len(shapes)}")
    arrays, known = list(arrays), np.array(sorted(names), np.int64)
    out = []
    for item, hw in zip(items, shapes):
        n = item.get("n") if isinstance(item, dict) else None
        if type(n) is not int or not 0 <= n <= max_det:
            raise ProtocolError(f"the worker sent {n!r} detections for one image (at most {max_det})")
        xyxy = _take(arrays, "float32", (n, 4), "boxes")
        conf = _take(arrays, "float32", (n,), "confidences")
        cls = _take(arrays, "int64", (n,), "class ids")
        if n and not np.isin(cls, known).all():
            raise ProtocolError("the worker sent a class id the model does not name")
        obb = _take(arrays, "float32", (n, 5), "oriented boxes") if item.get("obb") else None
        kp = _take(arrays, "float32", (n, None, 3), "keypoints") if item.get("keypoints") else None
        if kp is not None and kp.shape[1] > MAX_KEYPOINTS:
            raise ProtocolError(f"the worker sent {kp.shape[1]} keypoints per detection")
        masks, boxes = _masks(arrays, n, hw) if item.get("masks") else (None, None)
        out.append(Detections(xyxy=xyxy, confidence=conf, class_id=cls, masks=masks, mask_boxes=boxes,
                              names=names, obb=obb, keypoints=kp))
    if arrays:
        raise ProtocolError(f"the worker sent {len(arrays)} arrays more than its detections need")
    return out


def names_from_wire(raw) -> dict[int, str]:
    """A model's class names as the worker reports them, refused unless a bounded {int: str} mapping."""
    if not isinstance(raw, dict) or not 0 < len(raw) <= MAX_NAMES:
        raise ProtocolError("the worker reported no class names, or too many")
    try:
        names = {int(k): v for k, v in raw.items()}
    except (TypeError, ValueError, OverflowError):
        raise ProtocolError("the worker reported class names that are not numbered") from None
    if sorted(names) != list(range(len(names))):  # a class id sizes arrays here (per-class maps): 0..n-1 only
        raise ProtocolError("the worker reported class names not numbered 0 to n-1")
    if not all(isinstance(v, str) and len(v) <= MAX_NAME_CHARS for v in names.values()):
        raise ProtocolError("the worker reported class names that are not short text")
    return names
