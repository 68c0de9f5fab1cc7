"""Merge duplicate detections from overlapping tiles: NMS or NMM, matched by IoU or IoS.

Candidate pairs come from a uniform spatial hash, so the work and memory grow with the number of
overlapping pairs, not N^2. Greedy suppression is resolved in vectorized rounds over those pairs
(each round settles every box whose better-ranked neighbours are settled), which gives exactly the
result of the classic one-box-at-a-time greedy loop.

Ranking puts whole boxes before boxes cut by an inner tile edge (``data["truncated"]``), then by
confidence, so the piece of an object seen at a tile border never beats the whole object seen by
the neighbouring tile; a cut piece lying mostly inside a whole box of the same class is treated
as part of it whatever the metric (and, held to a stricter overlap, whatever class the piece got),
and two cut pieces of different classes that are nearly the same box are one piece.

Oriented boxes (``Detections.obb``) are matched by the exact IoU or IoS of the rotated rectangles
(:mod:`tiling.rotated`); their enclosing boxes still drive the spatial hash and the cut-piece flags (a
rotated box cut at a tile edge has a corner, so its enclosing box, on that edge). A merged group keeps
the keypoints of its best-ranked member, for NMS and NMM alike: fusing keypoints of different views
would average a point seen whole with one guessed at a tile border.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence, get_args

import numpy as np

from . import checks, rotated
from .detections import Detections
from .geometry import enclosing_boxes, paste_mask
from .grid import Tile, tiles_array

Method = Literal["nms", "nmm"]
Metric = Literal["ios", "iou"]
METHODS: tuple[str, ...] = get_args(Method)
METRICS: tuple[str, ...] = get_args(Metric)
PARTIAL_IOS = 0.5  # a cut piece this much inside a whole box of its class is part of that box
PARTIAL_IOS_OTHER_CLASS = 0.7  # ... and this much inside a whole box of another class
EDGE_MARGIN = 1.5  # px: a box this close to an inner tile edge was cut by it
_MAX_CELLS_PER_BOX = 16


@dataclass(frozen=True)
class MergeSpec:
    """How the raw tile detections become one answer: which to keep (``conf``, ``classes``), how
    duplicates are found (``metric`` at ``threshold``, across classes with ``class_agnostic``) and how
    they are resolved (``method``: NMS keeps the best of a group, NMM fuses it)."""

    conf: float = 0.25
    method: Method = "nms"
    metric: Metric = "ios"
    threshold: float = 0.5
    class_agnostic: bool = False
    classes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "conf", checks.number("conf", self.conf, 0.0, 1.0))
        object.__setattr__(self, "method", checks.choice("method", self.method, METHODS, name="merge method"))
        object.__setattr__(self, "metric", checks.choice("metric", self.metric, METRICS, name="merge metric"))
        object.__setattr__(self, "threshold",
                           checks.number("threshold", self.threshold, 0.0, 1.0, name="merge threshold"))
        object.__setattr__(self, "class_agnostic", checks.flag("class_agnostic", self.class_agnostic))
        object.__setattr__(self, "classes", checks.class_ids("classes", self.classes))


def truncated_flags(xyxy: np.ndarray, tile_index: np.ndarray, tiles: Sequence[Tile], image_shape) -> np.ndarray:
    """True for boxes that touch a tile edge lying inside the image (the object was cut there).

    The merge ranks whole boxes before cut pieces; ``tile_index`` -1 (the full-image pass) is never cut.
    """
    if len(xyxy) == 0:
        return np.zeros(0, bool)
    h, w = image_shape[:2]
    tb = tiles_array(list(tiles)).astype(np.float32)[np.maximum(tile_index, 0)]
    m = EDGE_MARGIN
    cut = (
        ((xyxy[:, 0] <= tb[:, 0] + m) & (tb[:, 0] > 0))
        | ((xyxy[:, 1] <= tb[:, 1] + m) & (tb[:, 1] > 0))
        | ((xyxy[:, 2] >= tb[:, 2] - m) & (tb[:, 2] < w))
        | ((xyxy[:, 3] >= tb[:, 3] - m) & (tb[:, 3] < h))
    )
    return cut & (tile_index >= 0)


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


def _rank(det: Detections) -> np.ndarray:
    """rank[i] = position of detection i in greedy order (0 = first)."""
    truncated = det.data.get("truncated")
    truncated = np.zeros(len(det), bool) if truncated is None else truncated.astype(bool)
    order = np.lexsort((np.arange(len(det)), -det.confidence.astype(np.float64), truncated))
    rank = np.empty(len(det), np.int64)
    rank[order] = np.arange(len(det))
    return rank


def match_edges(det: Detections, metric: str, threshold: float, class_agnostic: bool):
    """Directed edges (better -> worse) between detections that match each other."""
    i, j = overlapping_pairs(det.xyxy)
    same = det.class_id[i] == det.class_id[j]
    truncated = det.data.get("truncated")
    truncated = np.zeros(len(det), bool) if truncated is None else truncated.astype(bool)
    if not class_agnostic:  # other-class pairs stay only where one is a cut piece
        keep = same | truncated[i] | truncated[j]
        i, j, same = i[keep], j[keep], same[keep]
    rank = _rank(det)
    swap = rank[i] > rank[j]
    src, dst = np.where(swap, j, i), np.where(swap, i, j)
    value = detection_metric(det, src, dst, metric)
    match = (value >= max(threshold, 1e-9)) & (same | class_agnostic)
    partial = truncated[dst] & ~truncated[src]
    if partial.any():
        # A piece cut at a tile edge lying inside a whole box is that object, even when the piece
        # alone looked like another class (half a truck is car-sized): stricter across classes.
        p = np.flatnonzero(partial)
        inside = value[p] if metric == "ios" else detection_metric(det, src[p], dst[p], "ios")
        match[p] |= inside >= np.where((same | class_agnostic)[p], PARTIAL_IOS, PARTIAL_IOS_OTHER_CLASS)
    twin = np.flatnonzero(truncated[dst] & truncated[src] & ~same)
    if len(twin):
        # Two pieces cut at the same place, given different classes (a tile's own NMS is class-aware):
        # one piece, for the same reason.
        match[twin] |= detection_metric(det, src[twin], dst[twin], "iou") >= PARTIAL_IOS_OTHER_CLASS
    return src[match], dst[match], rank


def greedy_keep(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Greedy suppression over directed edges, resolved in vectorized rounds. Returns a keep mask."""
    state = np.zeros(n, np.int8)  # 0 undecided, 1 kept, 2 suppressed
    while True:
        undecided = state == 0
        if not undecided.any():
            return state == 1
        live = undecided[dst]
        s, d = src[live], dst[live]
        suppressed = np.zeros(n, bool)
        suppressed[d[state[s] == 1]] = True
        blocked = np.zeros(n, bool)
        blocked[d[state[s] == 0]] = True
        state[undecided & suppressed] = 2
        state[undecided & ~suppressed & ~blocked] = 1
        src, dst = s, d


def merge(detections: Detections, spec: MergeSpec | None = None, **changes) -> Detections:
    """Keep the detections ``spec`` asks for (``conf``, ``classes``), then remove (NMS) or fuse (NMM)
    duplicates. ``spec`` defaults to :class:`MergeSpec`; keywords change its fields, as in
    ``merge(det, method="nmm", metric="iou", threshold=0.5)``.

    NMM fuses each kept detection with those it suppressed: the union of their boxes (and masks),
    the highest confidence, the class of the kept one. An oriented box fuses into the smallest box
    at the kept one's angle holding every member's corners (its enclosing box, within the union of
    the members' enclosing boxes, is the new ``xyxy``). Keypoints are the kept detection's.
    Results are sorted by confidence.
    """
    spec = checks.with_changes(spec, MergeSpec, changes)
    detections = detections.filter(conf=spec.conf, classes=spec.classes)
    n = len(detections)
    if n == 0:
        return detections[np.arange(0)]
    src, dst, rank = match_edges(detections, spec.metric, spec.threshold, spec.class_agnostic)
    keep = greedy_keep(n, src, dst)
    # Each suppressed detection belongs to its best-ranked kept neighbour.
    by_keeper = keep[src] & ~keep[dst]
    s, d = src[by_keeper], dst[by_keeper]
    order = np.lexsort((rank[s], d))
    s, d = s[order], d[order]
    first = np.r_[True, d[1:] != d[:-1]] if len(d) else np.zeros(0, bool)
    owner = np.arange(n)
    owner[d[first]] = s[first]
    conf = detections.confidence.copy()
    np.maximum.at(conf, owner, detections.confidence)
    kept_idx = np.flatnonzero(keep)
    out = detections[kept_idx]
    out.confidence = conf[kept_idx]
    if spec.method == "nmm" and len(d):
        boxes = detections.xyxy.copy()
        np.minimum.at(boxes[:, 0], owner, detections.xyxy[:, 0])
        np.minimum.at(boxes[:, 1], owner, detections.xyxy[:, 1])
        np.maximum.at(boxes[:, 2], owner, detections.xyxy[:, 2])
        np.maximum.at(boxes[:, 3], owner, detections.xyxy[:, 3])
        out.xyxy = boxes[kept_idx]
        if detections.obb is not None:
            fused = rotated.fuse_at_angle(detections.obb, detections.corners(), owner)[kept_idx]
            out.obb = fused
            enclosing = enclosing_boxes(fused)
            out.xyxy = np.concatenate([np.maximum(enclosing[:, :2], out.xyxy[:, :2]),
                                       np.minimum(enclosing[:, 2:], out.xyxy[:, 2:])], axis=1)
        if detections.masks is not None:
            _union_masks(detections, out, kept_idx, owner)
    order = np.argsort(-out.confidence, kind="stable")
    return out[order]


def _union_masks(src: Detections, out: Detections, kept_idx: np.ndarray, owner: np.ndarray) -> None:
    members = np.flatnonzero(owner != np.arange(len(owner)))
    position = {int(k): p for p, k in enumerate(kept_idx)}
    groups: dict[int, list[int]] = {}
    for m in members:
        groups.setdefault(int(owner[m]), []).append(int(m))
    masks = list(out.masks)  # type: ignore[arg-type]
    mboxes = out.mask_boxes.copy()  # type: ignore[union-attr]
    for keeper, extra in groups.items():
        idx = [keeper, *extra]
        bx = src.mask_boxes[idx]  # type: ignore[index]
        box = np.array([bx[:, 0].min(), bx[:, 1].min(), bx[:, 2].max(), bx[:, 3].max()], np.int32)
        canvas = np.zeros((box[3] - box[1], box[2] - box[0]), bool)
        for k in idx:
            b = src.mask_boxes[k] - np.array([box[0], box[1], box[0], box[1]])  # type: ignore[index]
            paste_mask(canvas, src.masks[k], b)  # type: ignore[index]
        p = position[keeper]
        masks[p] = canvas
        mboxes[p] = box
    out.masks = masks
    out.mask_boxes = mboxes
