"""Overlap of oriented (rotated) boxes: exact intersection areas, vectorized over many pairs.

Two convex quadrilaterals intersect in a convex polygon of at most 8 vertices. Each pair's polygon
is found by clipping one box by the four edge half-planes of the other (Sutherland-Hodgman), all
pairs at once in fixed-size arrays, and measured with the shoelace formula. This is exact, unlike
Ultralytics' ``probiou`` (a Gaussian approximation, which has no intersection area and so no IoS,
and rates a thin box inside a square as a poor match). Pairs come from the merge's spatial hash
over the enclosing boxes, so only boxes that can touch are measured.
"""
from __future__ import annotations

import numpy as np

from .geometry import enclosing_boxes, obb_corners

_MAX_VERTICES = 8


def _clip(poly: np.ndarray, count: np.ndarray, p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clip polygons (K, 8, 2) with ``count`` valid vertices by the half-plane left of edge p -> q (K, 2)."""
    k = len(poly)
    idx = np.arange(_MAX_VERTICES)
    valid = idx[None, :] < count[:, None]
    prev_idx = (idx[None, :] - 1) % np.maximum(count, 1)[:, None]
    prev = np.take_along_axis(poly, prev_idx[..., None], axis=1)
    edge = (q - p)[:, None, :]

    def side(pts):  # > 0 inside (left of the edge, for counter-clockwise boxes)
        return edge[..., 0] * (pts[..., 1] - p[:, None, 1]) - edge[..., 1] * (pts[..., 0] - p[:, None, 0])

    s_cur, s_prev = side(poly), side(prev)
    cur_in, prev_in = s_cur >= 0, s_prev >= 0
    denom = s_prev - s_cur
    t = np.where(denom != 0, s_prev / np.where(denom != 0, denom, 1), 0.0)
    cross = prev + t[..., None] * (poly - prev)
    # Each input edge (prev -> cur) emits: the crossing if it changes side, then cur if it is inside.
    cand = np.stack([cross, poly], axis=2).reshape(k, 2 * _MAX_VERTICES, 2)
    keep = np.stack([valid & (cur_in != prev_in), valid & cur_in], axis=2).reshape(k, 2 * _MAX_VERTICES)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :_MAX_VERTICES]
    out = np.take_along_axis(cand, order[..., None], axis=1)
    return out, np.minimum(keep.sum(axis=1), _MAX_VERTICES)


def _ccw(quads: np.ndarray) -> np.ndarray:
    """The same quadrilaterals with their corners in counter-clockwise order (y up) as clipping needs."""
    x, y = quads[..., 0], quads[..., 1]
    signed = np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1)
    return np.where((signed < 0)[:, None, None], quads[:, ::-1], quads)


def polygon_area(poly: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Areas of padded polygons (K, M, 2) with ``count`` valid vertices each."""
    idx = np.arange(poly.shape[1])
    nxt = (idx[None, :] + 1) % np.maximum(count, 1)[:, None]
    nx = np.take_along_axis(poly, nxt[..., None], axis=1)
    term = poly[..., 0] * nx[..., 1] - nx[..., 0] * poly[..., 1]
    return np.abs(np.where(idx[None, :] < count[:, None], term, 0.0).sum(axis=1)) / 2


def intersection_areas(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise intersection area of two (K, 5) oriented-box arrays (cx, cy, w, h, angle)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 5), np.asarray(b, np.float64).reshape(-1, 5)
    k = len(a)
    if k == 0:
        return np.zeros(0, np.float64)
    # Centred on a's centre: the same numbers far from the origin keep their precision.
    origin = a[:, None, :2]
    pa = _ccw(obb_corners(a).astype(np.float64) - origin)
    pb = _ccw(obb_corners(b).astype(np.float64) - origin)
    poly = np.zeros((k, _MAX_VERTICES, 2), np.float64)
    poly[:, :4] = pa
    count = np.full(k, 4)
    for e in range(4):
        poly, count = _clip(poly, count, pb[:, e], pb[:, (e + 1) % 4])
    return polygon_area(poly, count)


def pair_metric(a: np.ndarray, b: np.ndarray, metric: str = "iou") -> np.ndarray:
    """Row-wise IoU, IoS (intersection over the smaller area) or ``"inside"`` (the fraction of each box of
    ``a`` that lies in its ``b``) of two (K, 5) oriented-box arrays."""
    a, b = np.asarray(a, np.float64).reshape(-1, 5), np.asarray(b, np.float64).reshape(-1, 5)
    inter = intersection_areas(a, b)
    area_a = np.clip(a[:, 2], 0, None) * np.clip(a[:, 3], 0, None)
    area_b = np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None)
    denom = {"ios": np.minimum(area_a, area_b), "inside": area_a}.get(metric, area_a + area_b - inter)
    return np.where(denom > 0, np.minimum(inter / np.where(denom > 0, denom, 1), 1.0), 0.0)


def iou_matrix(a: np.ndarray, b: np.ndarray, metric: str = "iou") -> np.ndarray:
    """(N, M) IoU (or another :func:`pair_metric`) of oriented boxes, measured only where their enclosing
    boxes meet."""
    a, b = np.asarray(a, np.float64).reshape(-1, 5), np.asarray(b, np.float64).reshape(-1, 5)
    out = np.zeros((len(a), len(b)), np.float64)
    if len(a) == 0 or len(b) == 0:
        return out
    ea, eb = enclosing_boxes(a), enclosing_boxes(b)
    touch = (np.minimum(ea[:, None, 2], eb[None, :, 2]) > np.maximum(ea[:, None, 0], eb[None, :, 0])) & (
        np.minimum(ea[:, None, 3], eb[None, :, 3]) > np.maximum(ea[:, None, 1], eb[None, :, 1])
    )
    i, j = np.nonzero(touch)
    out[i, j] = pair_metric(a[i], b[j], metric)
    return out


def fuse_at_angle(keeper: np.ndarray, member_corners: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """NMM's fused oriented box: for each keeper, the smallest box at the keeper's own angle that holds
    every corner of its group. ``keeper`` (N, 5) all boxes, ``member_corners`` (N, 4, 2) their corners,
    ``owner[i]`` the index of the box ``i`` is fused into (itself when it is kept or alone)."""
    keeper = np.asarray(keeper, np.float64)
    ang = keeper[owner, 4]
    c, s = np.cos(ang), np.sin(ang)
    rel = member_corners.astype(np.float64) - keeper[owner, None, :2]
    u = rel[..., 0] * c[:, None] + rel[..., 1] * s[:, None]  # along the keeper's width axis
    v = -rel[..., 0] * s[:, None] + rel[..., 1] * c[:, None]  # along its height axis
    n = len(keeper)
    lo_u, hi_u = np.full(n, np.inf), np.full(n, -np.inf)
    lo_v, hi_v = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(lo_u, owner, u.min(axis=1))
    np.maximum.at(hi_u, owner, u.max(axis=1))
    np.minimum.at(lo_v, owner, v.min(axis=1))
    np.maximum.at(hi_v, owner, v.max(axis=1))
    out = keeper.copy()
    used = np.flatnonzero(np.isfinite(lo_u))  # boxes that own a group (every kept box owns itself)
    lo_u, hi_u, lo_v, hi_v = lo_u[used], hi_u[used], lo_v[used], hi_v[used]
    mu, mv = (lo_u + hi_u) / 2, (lo_v + hi_v) / 2
    ca, sa = np.cos(keeper[used, 4]), np.sin(keeper[used, 4])
    out[used, 0] = keeper[used, 0] + mu * ca - mv * sa
    out[used, 1] = keeper[used, 1] + mu * sa + mv * ca
    out[used, 2] = hi_u - lo_u
    out[used, 3] = hi_v - lo_v
    return out.astype(np.float32)


def quads_to_obb(quads: np.ndarray) -> np.ndarray:
    """(N, 5) oriented boxes from (N, 4, 2) corner lists (YOLO-OBB and DOTA labels): the smallest
    rectangle holding each quadrilateral. For a convex one, that rectangle has a side along one of its
    edges, so the four edge directions are the only candidates: exact for the rectangles labels hold and
    for the clamped, slightly skewed ones at an image's border."""
    quads = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    if len(quads) == 0:
        return np.zeros((0, 5), np.float32)
    edges = np.roll(quads, -1, axis=1) - quads
    angles = np.arctan2(edges[..., 1], edges[..., 0])  # (N, 4) candidate directions
    c, s = np.cos(angles)[..., None], np.sin(angles)[..., None]
    u = quads[:, None, :, 0] * c + quads[:, None, :, 1] * s  # (N, 4 directions, 4 points)
    v = -quads[:, None, :, 0] * s + quads[:, None, :, 1] * c
    du, dv = u.max(-1) - u.min(-1), v.max(-1) - v.min(-1)
    best = np.argmin(du * dv, axis=1)
    rows = np.arange(len(quads))
    a = angles[rows, best]
    mu = (u.max(-1) + u.min(-1))[rows, best] / 2
    mv = (v.max(-1) + v.min(-1))[rows, best] / 2
    cx, cy = mu * np.cos(a) - mv * np.sin(a), mu * np.sin(a) + mv * np.cos(a)
    return np.stack([cx, cy, du[rows, best], dv[rows, best], a], axis=1).astype(np.float32)
