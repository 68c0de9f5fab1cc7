"""Geometry on plain arrays under :class:`~tiling.detections.Detections`: the corners and enclosing boxes
of oriented boxes, and masks kept cropped to integer boxes."""
from __future__ import annotations

import numpy as np


def obb_corners(obb: np.ndarray) -> np.ndarray:
    """(N, 4, 2) corners of oriented boxes (cx, cy, w, h, angle), in order around the box."""
    obb = np.asarray(obb, np.float64).reshape(-1, 5)
    c, s = np.cos(obb[:, 4]), np.sin(obb[:, 4])
    hw, hh = obb[:, 2] / 2, obb[:, 3] / 2
    ux, uy = c * hw, s * hw  # half the width along the box's own x axis
    vx, vy = -s * hh, c * hh  # half the height along its y axis
    cx, cy = obb[:, 0], obb[:, 1]
    pts = np.stack([
        np.stack([cx + ux + vx, cy + uy + vy], 1), np.stack([cx + ux - vx, cy + uy - vy], 1),
        np.stack([cx - ux - vx, cy - uy - vy], 1), np.stack([cx - ux + vx, cy - uy + vy], 1),
    ], axis=1)
    return pts.astype(np.float32)


def enclosing_boxes(obb: np.ndarray) -> np.ndarray:
    """(N, 4) axis-aligned boxes enclosing oriented boxes."""
    pts = obb_corners(obb)
    return np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1).astype(np.float32)


def mask_boxes_for(xyxy: np.ndarray) -> np.ndarray:
    """Integer boxes covering every pixel a float box touches."""
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    lo = np.floor(xyxy[:, :2])
    hi = np.maximum(np.ceil(xyxy[:, 2:]), lo + 1)
    return np.concatenate([lo, hi], axis=1).astype(np.int32)


def paste_mask(canvas: np.ndarray, mask: np.ndarray, box: np.ndarray) -> None:
    """OR ``mask`` (covering ``box``) into ``canvas``, clipping to the canvas."""
    x0, y0, x1, y1 = (int(v) for v in box)
    h, w = canvas.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    canvas[cy0:cy1, cx0:cx1] |= mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
