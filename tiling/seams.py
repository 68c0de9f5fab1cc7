"""Where merging did its work: the overlap of two neighbouring tiles that holds the most duplicates,
and the window of it worth showing at full resolution.

Why a module: the page's "Seam" view must show duplicates a student can see, which the whole image
drawn at screen scale never does (a 10 px car and its twin are one dot). The choice of the seam and
the pairs to list are pure geometry over the raw detections and the merge's verdict on each, so
they are tested here without a page.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .detections import Detections
from .grid import Tile, tiles_array

SEAM_SIDE = 384  # px: the window shown; small enough that a 10 px object is 10 screen px in a column


@dataclass(frozen=True)
class Seam:
    """The overlap ``band`` (x0, y0, x1, y1) of tiles ``first`` and ``second``, the square ``window``
    around its densest duplicates, and how many raw detections in the band were merged away."""

    first: int
    second: int
    band: tuple[int, int, int, int]
    window: tuple[int, int, int, int]
    merged_away: int


@dataclass(frozen=True)
class MergedPair:
    """One raw detection merged into another: both indices into the raw detections, and the overlap."""

    dropped: int
    owner: int
    value: float
    rule: str


def overlap_bands(tiles: Sequence[Tile]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, bands): every pair of tiles that overlap, with their shared rectangle; a tile lying
    wholly inside another (a pyramid's finer level inside a coarser tile) shares no seam with it."""
    boxes = tiles_array(list(tiles)).astype(np.int64)
    if len(boxes) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.int64)
    i, j = np.triu_indices(len(boxes), k=1)
    bands = np.concatenate([np.maximum(boxes[i, :2], boxes[j, :2]), np.minimum(boxes[i, 2:], boxes[j, 2:])], axis=1)
    inside = (bands == boxes[i]).all(axis=1) | (bands == boxes[j]).all(axis=1)
    real = (bands[:, 2] > bands[:, 0]) & (bands[:, 3] > bands[:, 1]) & ~inside
    return i[real], j[real], bands[real]


def _centres(det: Detections) -> np.ndarray:
    return (det.xyxy[:, :2] + det.xyxy[:, 2:]) / 2


def _window(points: np.ndarray, band: np.ndarray, side: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A ``side`` square (at most the image) centred on the point of ``points`` with the most neighbours."""
    h, w = shape
    side_x, side_y = min(side, w), min(side, h)
    if len(points):
        near = (np.abs(points[:, None, :] - points[None, :, :]) < side / 4).all(axis=2).sum(axis=1)
        cx, cy = points[int(np.argmax(near))]
    else:
        cx, cy = (band[0] + band[2]) / 2, (band[1] + band[3]) / 2
    x0 = int(np.clip(round(cx - side_x / 2), 0, w - side_x))
    y0 = int(np.clip(round(cy - side_y / 2), 0, h - side_y))
    return x0, y0, x0 + side_x, y0 + side_y


def busiest_seam(tiles: Sequence[Tile], raw: Detections, merged_away: np.ndarray, image_shape,
                 side: int = SEAM_SIDE) -> Seam | None:
    """The overlap of two tiles whose band holds the centres of the most merged-away raw detections
    (each counted where it lies, so a corner shared by four tiles counts for each pair there); None
    when nothing was merged away or the image is one tile."""
    first, second, bands = overlap_bands(tiles)
    away = np.asarray(merged_away, bool)
    if len(bands) == 0 or not away.any():
        return None
    pts = _centres(raw[away])
    inside = ((pts[None, :, 0] >= bands[:, None, 0]) & (pts[None, :, 0] < bands[:, None, 2])
              & (pts[None, :, 1] >= bands[:, None, 1]) & (pts[None, :, 1] < bands[:, None, 3]))
    counts = inside.sum(axis=1)
    best = int(np.argmax(counts))
    if counts[best] == 0:
        return None
    band = bands[best]
    window = _window(pts[inside[best]], band, side, tuple(int(v) for v in image_shape[:2]))
    return Seam(int(first[best]), int(second[best]), tuple(int(v) for v in band), window, int(counts[best]))


def in_window(det: Detections, window: tuple[int, int, int, int]) -> np.ndarray:
    """Which detections have their centre inside ``window``."""
    x0, y0, x1, y1 = window
    c = _centres(det)
    return (c[:, 0] >= x0) & (c[:, 0] < x1) & (c[:, 1] >= y0) & (c[:, 1] < y1)


def merged_pairs(owner: np.ndarray, value: np.ndarray, rule: Sequence[str], shown: np.ndarray) -> list[MergedPair]:
    """The raw detections among ``shown`` that were merged into another, most overlapping first."""
    owner = np.asarray(owner)
    idx = [int(k) for k in np.flatnonzero(np.asarray(shown, bool)) if owner[k] >= 0 and owner[k] != k]
    pairs = [MergedPair(k, int(owner[k]), float(value[k]), str(rule[k])) for k in idx]
    return sorted(pairs, key=lambda p: -p.value)
