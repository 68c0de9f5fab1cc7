"""The one result type that flows through the whole library.

Masks are kept cropped to their boxes: a 4000x3000 image with 2,000 instances would need 24 GB as
full-image boolean masks, and a few MB as crops. Oriented boxes and keypoints are small fixed-size
arrays per detection and travel the same way, so every stage that selects, shifts or joins
detections carries them without knowing which kind it holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from .geometry import enclosing_boxes, mask_boxes_for, obb_corners, paste_mask


def _as(values, dtype, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(values if values is not None else np.zeros((0, *shape_tail)), dtype=dtype)
    if arr.size == 0:
        arr = arr.reshape((0, *shape_tail))
    if arr.shape[1:] != shape_tail:
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, shape_tail))}), got {arr.shape}")
    return arr


@dataclass
class Detections:
    """Boxes in image pixels, with confidences, classes and optional box-cropped masks.

    ``masks[i]`` is a boolean array covering the integer box ``mask_boxes[i]`` = (x0, y0, x1, y1),
    exclusive at x1/y1, in the same coordinates as ``xyxy``. ``data`` holds extra per-detection
    arrays (``tile_index``, ``truncated``, ``source``...) that follow every selection and merge.

    ``obb`` (N, 5): oriented boxes (cx, cy, w, h, angle in radians, clockwise in image coordinates as
    Ultralytics has it); ``xyxy`` is then the axis-aligned box enclosing each (clipped to the image by
    whoever made it), which is what grids, ranking and spatial hashing use. ``keypoints`` (N, K, 3):
    x, y and a visibility or confidence per point.
    """

    xyxy: np.ndarray
    confidence: np.ndarray | None = None
    class_id: np.ndarray | None = None
    masks: list[np.ndarray] | None = None
    mask_boxes: np.ndarray | None = None
    names: dict[int, str] = field(default_factory=dict)
    data: dict[str, np.ndarray] = field(default_factory=dict)
    obb: np.ndarray | None = None
    keypoints: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = _as(self.xyxy, np.float32, (4,), "xyxy")
        n = len(self.xyxy)
        conf = np.ones(n) if self.confidence is None else self.confidence
        classes = np.zeros(n) if self.class_id is None else self.class_id
        self.confidence = _as(conf, np.float32, (), "confidence").reshape(-1)
        self.class_id = _as(classes, np.int64, (), "class_id").reshape(-1)
        if len(self.confidence) != n or len(self.class_id) != n:
            raise ValueError(
                f"xyxy has {n} rows but confidence has {len(self.confidence)} and class_id {len(self.class_id)}"
            )
        if self.masks is not None:
            if len(self.masks) != n:
                raise ValueError(f"{len(self.masks)} masks for {n} boxes")
            if self.mask_boxes is None:
                self.mask_boxes = mask_boxes_for(self.xyxy)
            self.mask_boxes = _as(self.mask_boxes, np.int32, (4,), "mask_boxes")
            for m, (x0, y0, x1, y1) in zip(self.masks, self.mask_boxes):
                if m.shape != (y1 - y0, x1 - x0):
                    raise ValueError(f"mask of shape {m.shape} does not match its box {(x0, y0, x1, y1)}")
        if self.obb is not None:
            self.obb = _as(self.obb, np.float32, (5,), "obb")
            if len(self.obb) != n:
                raise ValueError(f"obb has {len(self.obb)} rows for {n} boxes")
        if self.keypoints is not None:
            kp = np.asarray(self.keypoints, np.float32)
            if kp.ndim != 3 or kp.shape[2] != 3 or len(kp) != n:
                raise ValueError(f"keypoints must have shape ({n}, K, 3), got {kp.shape}")
            self.keypoints = kp
        self.names = {int(k): str(v) for k, v in (self.names or {}).items()}
        for key, value in self.data.items():
            value = np.asarray(value)
            if len(value) != n:
                raise ValueError(f"data[{key!r}] has {len(value)} rows, expected {n}")
            self.data[key] = value

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def empty(cls, names: dict[int, str] | None = None, with_masks: bool = False, with_obb: bool = False,
              keypoints: int = 0) -> Detections:
        """No detections, of the kind a model makes: with masks, oriented boxes or ``keypoints`` points."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            masks=[] if with_masks else None,
            mask_boxes=np.zeros((0, 4), np.int32) if with_masks else None,
            names=dict(names or {}),
            obb=np.zeros((0, 5), np.float32) if with_obb else None,
            keypoints=np.zeros((0, keypoints, 3), np.float32) if keypoints else None,
        )

    @classmethod
    def empty_for(cls, model) -> Detections:
        """No detections, of the kind ``model`` makes (its ``task``: masks, oriented boxes, or its
        ``kpt_shape`` keypoints), so that an empty result still has that kind's columns."""
        task = getattr(model, "task", "detect")
        points = int((getattr(model, "kpt_shape", None) or (0,))[0]) if task == "pose" else 0
        return cls.empty(getattr(model, "names", None), with_masks=task == "segment", with_obb=task == "obb",
                         keypoints=points)

    @classmethod
    def from_obb(cls, obb, confidence=None, class_id=None, names: dict[int, str] | None = None,
                 keypoints=None, clip: tuple[int, int] | None = None) -> Detections:
        """Detections from oriented boxes (N, 5); ``xyxy`` becomes their enclosing boxes, clipped to
        ``clip`` = (width, height) when given."""
        obb = _as(obb, np.float32, (5,), "obb")
        xyxy = enclosing_boxes(obb)
        if clip is not None:
            xyxy = np.clip(xyxy, 0, [clip[0], clip[1], clip[0], clip[1]]).astype(np.float32)
        return cls(xyxy=xyxy, confidence=confidence, class_id=class_id, names=dict(names or {}), obb=obb,
                   keypoints=keypoints)

    @classmethod
    def concat(cls, parts: Sequence[Detections], names: dict[int, str] | None = None) -> Detections:
        """Join detections; masks are kept only when every part has them, oriented boxes and keypoints
        when every non-empty part has them (keypoints also need one count of points)."""
        parts = [p for p in parts if p is not None]
        merged_names: dict[int, str] = {}
        for p in parts:
            merged_names.update(p.names)
        merged_names.update(names or {})
        if not parts:
            return cls.empty(merged_names)
        with_masks = all(p.masks is not None for p in parts)
        keys = [k for k in parts[0].data if all(k in p.data for p in parts[1:])]  # the first part's order, always
        filled = [p for p in parts if len(p)] or parts
        with_obb = all(p.obb is not None for p in filled)
        kp_counts = {p.keypoints.shape[1] if p.keypoints is not None else -1 for p in filled}
        with_kp = len(kp_counts) == 1 and -1 not in kp_counts
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            masks=[m for p in parts for m in p.masks] if with_masks else None,  # type: ignore[union-attr]
            mask_boxes=np.concatenate([p.mask_boxes for p in parts]) if with_masks else None,  # type: ignore[misc]
            names=merged_names,
            data={k: np.concatenate([p.data[k] for p in parts]) for k in keys},
            obb=np.concatenate([p.obb if p.obb is not None else np.zeros((0, 5), np.float32) for p in parts])
            if with_obb else None,
            keypoints=np.concatenate([p.keypoints for p in parts if p.keypoints is not None]) if with_kp else None,
        )

    # -- access ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index) -> Detections:
        """Select by integer array, boolean mask or slice; always returns ``Detections``."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        if isinstance(index, slice):
            index = np.arange(len(self))[index]
        index = np.asarray(index)
        if index.dtype == bool:
            if len(index) != len(self):
                raise IndexError(f"boolean index of length {len(index)} for {len(self)} detections")
            index = np.flatnonzero(index)
        index = index.astype(np.int64).reshape(-1)
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            masks=[self.masks[i] for i in index] if self.masks is not None else None,
            mask_boxes=self.mask_boxes[index] if self.mask_boxes is not None else None,
            names=dict(self.names),
            data={k: v[index] for k, v in self.data.items()},
            obb=self.obb[index] if self.obb is not None else None,
            keypoints=self.keypoints[index] if self.keypoints is not None else None,
        )

    @property
    def has_masks(self) -> bool:
        return self.masks is not None

    @property
    def has_obb(self) -> bool:
        return self.obb is not None

    @property
    def has_keypoints(self) -> bool:
        return self.keypoints is not None

    def corners(self) -> np.ndarray:
        """(N, 4, 2) corner points of each box: the oriented box's when there is one, else the axis-aligned one's."""
        if self.obb is not None:
            return obb_corners(self.obb)
        x0, y0, x1, y1 = self.xyxy.T
        return np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1), np.stack([x1, y1], 1),
                         np.stack([x0, y1], 1)], axis=1)

    @property
    def area(self) -> np.ndarray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    @property
    def class_names(self) -> list[str]:
        return [self.names.get(int(c), str(int(c))) for c in self.class_id]

    def mask_areas(self) -> np.ndarray:
        if self.masks is None:
            raise ValueError("these detections have no masks")
        return np.array([int(m.sum()) for m in self.masks], dtype=np.int64)

    def full_mask(self, i: int, shape: tuple[int, int]) -> np.ndarray:
        """Mask ``i`` pasted into an (H, W) canvas: for drawing or evaluation of one object at a time."""
        if self.masks is None:
            raise ValueError("these detections have no masks")
        canvas = np.zeros(shape, dtype=bool)
        paste_mask(canvas, self.masks[i], self.mask_boxes[i])  # type: ignore[index]
        return canvas

    # -- transforms --------------------------------------------------------------------------
    def shifted(self, dx: float, dy: float) -> Detections:
        """The same detections moved by (dx, dy) pixels (tile -> image coordinates)."""
        out = self[np.arange(len(self))]
        out.xyxy = out.xyxy + np.array([dx, dy, dx, dy], np.float32)
        if out.mask_boxes is not None:
            out.mask_boxes = out.mask_boxes + np.array([dx, dy, dx, dy], np.int32)
        if out.obb is not None:
            out.obb = out.obb + np.array([dx, dy, 0, 0, 0], np.float32)
        if out.keypoints is not None:
            out.keypoints = out.keypoints + np.array([dx, dy, 0], np.float32)
        return out

    def scaled(self, factor: float) -> Detections:
        """The same detections on an image resized by ``factor`` (for previews); masks resized too."""
        import cv2

        out = self[np.arange(len(self))]
        out.xyxy = out.xyxy * np.float32(factor)
        if out.obb is not None:
            out.obb = out.obb * np.array([factor, factor, factor, factor, 1], np.float32)
        if out.keypoints is not None:
            out.keypoints = out.keypoints * np.array([factor, factor, 1], np.float32)
        if out.masks is not None:
            boxes = mask_boxes_for(out.mask_boxes * float(factor))  # type: ignore[operator]
            out.masks = [
                cv2.resize(m.astype(np.uint8), (int(b[2] - b[0]), int(b[3] - b[1])), interpolation=cv2.INTER_NEAREST)
                .astype(bool)
                for m, b in zip(out.masks, boxes)
            ]
            out.mask_boxes = boxes
        return out

    def filter_mask(self, conf: float | None = None, classes: Iterable[int] | None = None) -> np.ndarray:
        """True for the detections at or above ``conf`` whose class is one of ``classes`` (None: any)."""
        keep = np.ones(len(self), dtype=bool)
        if conf is not None:
            keep &= self.confidence >= conf
        if classes is not None:
            keep &= np.isin(self.class_id, np.fromiter(classes, dtype=np.int64))
        return keep

    def filter(self, conf: float | None = None, classes: Iterable[int] | None = None) -> Detections:
        keep = self.filter_mask(conf, classes)
        return self if keep.all() else self[keep]

    def to_dataframe(self):
        """One row per detection: class, confidence, box, size, plus any ``data`` columns."""
        import pandas as pd

        w = self.xyxy[:, 2] - self.xyxy[:, 0]
        h = self.xyxy[:, 3] - self.xyxy[:, 1]
        frame = pd.DataFrame(
            {
                "class_id": self.class_id,
                "class": self.class_names,
                "confidence": self.confidence.astype(np.float64).round(4),
                "x0": self.xyxy[:, 0].astype(np.float64).round(1),
                "y0": self.xyxy[:, 1].astype(np.float64).round(1),
                "x1": self.xyxy[:, 2].astype(np.float64).round(1),
                "y1": self.xyxy[:, 3].astype(np.float64).round(1),
                "width": w.astype(np.float64).round(1),
                "height": h.astype(np.float64).round(1),
            }
        )
        if self.masks is not None:
            frame["mask_area"] = self.mask_areas()
        if self.obb is not None:
            for k, col in enumerate(("cx", "cy", "obb_w", "obb_h")):
                frame[col] = self.obb[:, k].astype(np.float64).round(1)
            frame["angle_deg"] = np.degrees(self.obb[:, 4].astype(np.float64)).round(2)
        if self.keypoints is not None:
            for k in range(self.keypoints.shape[1]):
                for j, part in enumerate(("x", "y", "conf")):
                    frame[f"kp{k}_{part}"] = self.keypoints[:, k, j].astype(np.float64).round(3 if j == 2 else 1)
        for key, value in self.data.items():
            if value.ndim == 1:
                frame[key] = value
        return frame

    def __repr__(self) -> str:
        masks = ", masks" if self.masks is not None else ""
        masks += ", obb" if self.obb is not None else ""
        masks += f", keypoints={self.keypoints.shape[1]}" if self.keypoints is not None else ""
        return f"Detections(n={len(self)}{masks}, classes={sorted(set(self.class_id.tolist()))})"
