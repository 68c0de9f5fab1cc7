"""Exact clipping of labelled objects to a tile, and the share of each object's area the tile holds.

Boxes are intersected as rectangles; polygons and oriented boxes are clipped ring by ring against the
tile's four edges (Sutherland-Hodgman). Against a convex window that keeps, inside the window, the same
winding as the ring had, so the clipped ring's area is exactly the area inside (a piece cut in two stays
one ring joined along the tile's edge, with no area there; a hole joined to its outline by a slit stays
a hole). A clipped oriented box is re-fitted as the smallest rectangle around its clipped polygon, as
YOLO-OBB needs four corners. Keypoints outside the tile become absent (0, 0, visibility 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .objects import Kind, LabelledObject

_ROUNDING = 1e-9  # an object exactly at the threshold is kept, whatever the last bit of its area sum
Window = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels (continuous: pixel i spans [i, i+1))


@dataclass
class Clipped:
    """An object as one tile holds it, in the tile's pixels: ``fraction`` of its area is inside; ``cut``
    when part of it is outside."""

    obj: LabelledObject
    fraction: float
    cut: bool


def ring_area(ring: np.ndarray) -> float:
    """Signed area of a closed ring (positive when counter-clockwise in x-right, y-up axes)."""
    if len(ring) < 3:
        return 0.0
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def object_area(obj: LabelledObject) -> float:
    """Area of an object: the sum of its rings' areas (a hole is a slit-joined part of its outline)."""
    return float(sum(abs(ring_area(r)) for r in obj.rings))


def _half_plane(pts: np.ndarray, axis: int, bound: float, keep_below: bool) -> np.ndarray:
    """The ring clipped to ``pts[:, axis] <= bound`` (``keep_below``) or ``>= bound``."""
    if len(pts) == 0:
        return pts
    s = (bound - pts[:, axis]) if keep_below else (pts[:, axis] - bound)
    nxt, s_next = np.roll(pts, -1, axis=0), np.roll(s, -1)
    inside, crosses = s >= 0, (s >= 0) != (s_next >= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(crosses, s / (s - s_next), 0.0)
    cut = pts + t[:, None] * (nxt - pts)
    cut[:, axis] = bound  # exactly on the edge, whatever the rounding of t
    both = np.stack([pts, cut], axis=1).reshape(-1, 2)
    return both[np.stack([inside, crosses], axis=1).reshape(-1)]


def clip_ring(ring: np.ndarray, window: Window) -> np.ndarray:
    """A ring (K, 2) clipped to the window; empty (0, 2) when nothing of it is inside."""
    x0, y0, x1, y1 = window
    pts = np.asarray(ring, np.float64).reshape(-1, 2)
    for axis, bound, below in ((0, x0, False), (0, x1, True), (1, y0, False), (1, y1, True)):
        pts = _half_plane(pts, axis, bound, below)
    return pts


def _inside(obj: LabelledObject, window: Window) -> bool:
    ox0, oy0, ox1, oy1 = obj.xyxy
    x0, y0, x1, y1 = window
    return x0 <= ox0 and y0 <= oy0 and ox1 <= x1 and oy1 <= y1


def _overlaps(obj: LabelledObject, window: Window) -> bool:
    ox0, oy0, ox1, oy1 = obj.xyxy
    x0, y0, x1, y1 = window
    return ox0 < x1 and x0 < ox1 and oy0 < y1 and y0 < oy1


def _keypoints(kpts: np.ndarray | None, window: Window) -> np.ndarray | None:
    """Keypoints in tile pixels; those outside the tile (or absent) become (0, 0, 0)."""
    if kpts is None:
        return None
    x0, y0, x1, y1 = window
    out = kpts.astype(np.float64).copy()
    out[:, :2] -= (x0, y0)
    inside = (kpts[:, 2] > 0) & (kpts[:, 0] >= x0) & (kpts[:, 0] < x1) & (kpts[:, 1] >= y0) & (kpts[:, 1] < y1)
    out[~inside] = 0.0
    return out


def _refit(poly: np.ndarray) -> np.ndarray:
    """The smallest rectangle around a clipped oriented box, as four corners."""
    return cv2.boxPoints(cv2.minAreaRect(poly.astype(np.float32))).astype(np.float64)


def clip_object(obj: LabelledObject, window: Window, area: float | None = None) -> Clipped | None:
    """The object as the tile at ``window`` holds it, or None when none of its area is inside.
    ``area``: the object's whole area, when the caller has it already."""
    if not _overlaps(obj, window):
        return None
    shift = np.array(window[:2], np.float64)
    if _inside(obj, window):
        moved = LabelledObject(obj.class_id, obj.kind, [r - shift for r in obj.rings], _keypoints(obj.keypoints, window))
        return Clipped(moved, 1.0, False)
    total = object_area(obj) if area is None else area
    rings = [clip_ring(r, window) for r in obj.rings]
    rings = [r for r in rings if len(r) >= 3 and abs(ring_area(r)) > 0.0]
    inside = float(sum(abs(ring_area(r)) for r in rings))
    if inside <= 0.0 or total <= 0.0:
        return None
    if obj.kind is Kind.OBB:
        rings = [_refit(np.concatenate(rings))]
    elif obj.kind in (Kind.BOX, Kind.POSE):  # a rectangle clipped by a rectangle: its four corners again
        (bx0, by0), (bx1, by1) = rings[0].min(axis=0), rings[0].max(axis=0)
        rings = [np.array([[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]])]
    moved = LabelledObject(obj.class_id, obj.kind, [r - shift for r in rings], _keypoints(obj.keypoints, window))
    return Clipped(moved, min(1.0, inside / total), True)


def clip_to_tile(objects: list[LabelledObject], areas: list[float], window: Window, min_visibility: float,
                 candidates: list[int] | None = None) -> tuple[list[tuple[int, Clipped]], list[int]]:
    """(index, clipped object) of every object with at least ``min_visibility`` of its area in the tile,
    and the indices of those the tile cuts below it (dropped). ``candidates``: the indices that may touch
    the tile (tiling.dataset.index), else all."""
    kept, dropped = [], []
    for i in range(len(objects)) if candidates is None else candidates:
        c = clip_object(objects[i], window, areas[i])
        if c is None:
            continue
        if not c.cut or c.fraction >= min_visibility - _ROUNDING:
            kept.append((i, c))
        else:
            dropped.append(i)
    return kept, dropped
