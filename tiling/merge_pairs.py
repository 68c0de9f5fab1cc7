"""Which detections may be duplicates, and how much two of them overlap: IoU or IoS of boxes (or of
rotated rectangles), and every overlapping pair found through a uniform spatial hash, so the work and
memory grow with the number of overlapping pairs, not N^2."""
from __future__ import annotations

import numpy as np

from . import rotated
from .detections import Detections

_MAX_CELLS_PER_BOX = 16


def pair_metric(a: np.ndarray, b: np.ndarray, metric: str = "iou") -> np.ndarray:
    """Row-wise IoU or IoS (intersection over the smaller area) of two (K, 4) box arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    denom = np.minimum(area_a, area_b) if metric == "ios" else area_a + area_b - inter
    return np.where(denom > 0, inter / np.where(denom > 0, denom, 1), 0.0)


def detection_metric(det: Detections, src: np.ndarray, dst: np.ndarray, metric: str) -> np.ndarray:
    """IoU or IoS of the pairs (src[k], dst[k]): of the rotated rectangles when ``det`` has oriented boxes."""
    if det.obb is not None:
        return rotated.pair_metric(det.obb[src], det.obb[dst], metric)
    return pair_metric(det.xyxy[src], det.xyxy[dst], metric)


def overlapping_pairs(xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) of boxes whose interiors intersect, without an N x N matrix."""
    xyxy = np.asarray(xyxy, np.float64)
    n = len(xyxy)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    size = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
    cell = max(float(np.median(size)) * 2.0, 1.0)
    c0 = np.floor(xyxy[:, :2] / cell).astype(np.int64)
    c1 = np.floor(xyxy[:, 2:] / cell).astype(np.int64)
    span = c1 - c0 + 1
    counts = span[:, 0] * span[:, 1]
    big = counts > _MAX_CELLS_PER_BOX
    pairs_i, pairs_j = [], []
    if big.any():  # few huge boxes: compare each with every box directly
        for b in np.flatnonzero(big):
            others = np.arange(n)
            pairs_i.append(np.full(n, b))
            pairs_j.append(others)
    small = np.flatnonzero(~big)
    if len(small) > 1:
        cnt = counts[small]
        owner = np.repeat(small, cnt)
        offset = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        sw = span[owner, 0]
        cx = c0[owner, 0] + offset % sw
        cy = c0[owner, 1] + offset // sw
        cx -= cx.min()
        cy -= cy.min()
        key = cy * (int(cx.max()) + 1) + cx
        order = np.argsort(key, kind="stable")
        key, owner = key[order], owner[order]
        starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
        sizes = np.diff(np.r_[starts, len(key)])
        group_start = np.repeat(starts, sizes)
        group_end = group_start + np.repeat(sizes, sizes)
        pos = np.arange(len(key))
        n_after = group_end - pos - 1
        left = np.repeat(pos, n_after)
        right = left + 1 + (np.arange(n_after.sum()) - np.repeat(np.cumsum(n_after) - n_after, n_after))
        pairs_i.append(owner[left])
        pairs_j.append(owner[right])
    if not pairs_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i = np.concatenate(pairs_i)
    j = np.concatenate(pairs_j)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    ok = lo != hi
    code = np.unique(lo[ok] * n + hi[ok])
    lo, hi = code // n, code % n
    a, b = xyxy[lo], xyxy[hi]
    touch = (np.minimum(a[:, 2], b[:, 2]) > np.maximum(a[:, 0], b[:, 0])) & (
        np.minimum(a[:, 3], b[:, 3]) > np.maximum(a[:, 1], b[:, 1])
    )
    return lo[touch], hi[touch]
