"""Merge duplicate detections from overlapping tiles and views: NMS, WBF, Soft-NMS or NMM, matched by
IoU or IoS (:mod:`tiling.merge_pairs` finds the overlapping pairs).

Greedy suppression is resolved in vectorized rounds over those pairs (each round settles every box
whose better-ranked neighbours are settled), which gives exactly the result of the classic
one-box-at-a-time greedy loop.

Ranking puts whole boxes before boxes cut by an inner tile edge (``data["truncated"]``), then by
confidence, so the piece of an object seen at a tile border never beats the whole object seen by
the neighbouring tile; a cut piece lying mostly inside a whole box of the same class is treated
as part of it whatever the metric (and, held to a stricter overlap, whatever class the piece got),
and two cut pieces of different classes that are nearly the same box are one piece. Views of several
scales (the full-image pass, the levels of a tile pyramid; ``data["scale"]``): a coarse view's box of an
object small to it is left to the finer views (:func:`coarse_guesses`).

Oriented boxes (``Detections.obb``) are matched by the exact IoU or IoS of the rotated rectangles
(:mod:`tiling.rotated`); their enclosing boxes still drive the spatial hash and the cut-piece flags (a
rotated box cut at a tile edge has a corner, so its enclosing box, on that edge). A merged group keeps
the keypoints of its best-ranked member, for every method: fusing keypoints of different views
would average a point seen whole with one guessed at a tile border.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Sequence, get_args

import numpy as np

from . import checks, merge_fuse, rotated
from .detections import Detections
from .geometry import enclosing_boxes, paste_mask
from .grid import Tile, tiles_array
from .merge_pairs import detection_metric, overlapping_pairs, pair_metric  # noqa: F401  (pair_metric: public)

Method = Literal["nms", "nmm", "wbf", "soft"]
Metric = Literal["ios", "iou"]
METHODS: tuple[str, ...] = get_args(Method)
METRICS: tuple[str, ...] = get_args(Metric)
PARTIAL_IOS = 0.5  # a cut piece this much inside a whole box of its class is part of that box
PARTIAL_IOS_OTHER_CLASS = 0.7  # ... and this much inside a whole box of another class
COARSE_SMALL = 24.0  # input px: a box smaller than this in a coarser view is that view's guess, left out
EDGE_MARGIN = 1.5  # px: a box this close to an inner tile edge was cut by it


class Rule(StrEnum):
    """Why a raw detection is in the answer, or which rule merged it into the detection that kept it."""

    KEPT = "kept"
    FILTERED = "below conf or class not shown"
    OVERLAP = "overlap"  # the merge's own metric at its threshold, same class (or class-agnostic)
    CUT_PIECE = "cut piece inside a whole box"
    CUT_TWINS = "two cut pieces of one object"
    COARSE_GUESS = "a coarse view's guess at an object small to it (finer tiles own those)"
    LOWERED = "kept with its confidence lowered by the overlap (Soft-NMS)"


RULE_CODES = {rule: code for code, rule in enumerate(Rule)}


@dataclass(frozen=True)
class MergeSpec:
    """How the raw tile detections become one answer: which to keep (``conf``, ``classes``), how
    duplicates are found (``metric`` at ``threshold``, across classes with ``class_agnostic``) and how
    they are resolved (``method``: NMS keeps the best of a group, NMM fuses it)."""

    conf: float = 0.25
    method: Method = "wbf"
    metric: Metric = "iou"
    threshold: float = 0.45
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


def _flag(det: Detections, key: str) -> np.ndarray:
    value = det.data.get(key)
    return np.zeros(len(det), bool) if value is None else np.asarray(value).astype(bool)


def coarse_guesses(det: Detections) -> np.ndarray:
    """True for boxes a shrunk view, coarser than the finest in ``det``, saw at under :data:`COARSE_SMALL` input
    pixels (``data["scale"]``: model input pixels per image pixel of the view that found each box): a
    small object the full-image pass barely resolves, where the tiles looked at it closer."""
    scale = det.data.get("scale")
    if scale is None or len(det) == 0:
        return np.zeros(len(det), bool)
    scale = np.asarray(scale, np.float64)
    side = np.maximum(det.xyxy[:, 2] - det.xyxy[:, 0], det.xyxy[:, 3] - det.xyxy[:, 1])
    return (scale < scale.max() - 1e-9) & (scale < 1.0 - 1e-9) & (side * scale < COARSE_SMALL)


def _rank(det: Detections, demoted: np.ndarray) -> np.ndarray:
    """rank[i] = position of detection i in greedy order (0 = first): whole boxes first, cut pieces
    after them, each by confidence."""
    order = np.lexsort((np.arange(len(det)), -det.confidence.astype(np.float64), demoted))
    rank = np.empty(len(det), np.int64)
    rank[order] = np.arange(len(det))
    return rank


def match_edges(det: Detections, metric: str, threshold: float, class_agnostic: bool):
    """Directed edges (better -> worse) between detections that match each other: ``(src, dst, rank)``."""
    src, dst, rank, _, _ = _edges(det, metric, threshold, class_agnostic)
    return src, dst, rank


def _edges(det: Detections, metric: str, threshold: float, class_agnostic: bool):
    """``(src, dst, rank, rule, value)``: the matching edges, the :class:`Rule` code that matched each
    (the first that holds, in the order the rules are tried) and the overlap it measured."""
    i, j = overlapping_pairs(det.xyxy)
    same = det.class_id[i] == det.class_id[j]
    truncated = _flag(det, "truncated")
    if not class_agnostic:  # other-class pairs stay only where one is a cut piece
        keep = same | truncated[i] | truncated[j]
        i, j, same = i[keep], j[keep], same[keep]
    rank = _rank(det, truncated)
    swap = rank[i] > rank[j]
    src, dst = np.where(swap, j, i), np.where(swap, i, j)
    value = detection_metric(det, src, dst, metric)
    match = (value >= max(threshold, 1e-9)) & (same | class_agnostic)
    rule = np.where(match, RULE_CODES[Rule.OVERLAP], -1)
    partial = np.flatnonzero(truncated[dst] & ~truncated[src] & ~match)
    if len(partial):
        # A piece cut at a tile edge lying inside a whole box is that object, even when the piece
        # alone looked like another class (half a truck is car-sized): stricter across classes.
        p = partial
        inside = value[p] if metric == "ios" else detection_metric(det, src[p], dst[p], "ios")
        hit = inside >= np.where((same | class_agnostic)[p], PARTIAL_IOS, PARTIAL_IOS_OTHER_CLASS)
        match[p[hit]], rule[p[hit]], value[p[hit]] = True, RULE_CODES[Rule.CUT_PIECE], inside[hit]
    twin = np.flatnonzero(truncated[dst] & truncated[src] & ~same & ~match)
    if len(twin):
        # Two pieces cut at the same place, given different classes (a tile's own NMS is class-aware):
        # one piece, for the same reason.
        iou = detection_metric(det, src[twin], dst[twin], "iou")
        hit = iou >= PARTIAL_IOS_OTHER_CLASS
        match[twin[hit]], rule[twin[hit]], value[twin[hit]] = True, RULE_CODES[Rule.CUT_TWINS], iou[hit]
    return src[match], dst[match], rank, rule[match], value[match]


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
    """Keep the detections ``spec`` asks for (``conf``, ``classes``) but a coarse view's guesses
    (:func:`coarse_guesses`), then resolve duplicates by ``spec.method``. ``spec`` defaults to
    :class:`MergeSpec`; keywords change its fields, as in ``merge(det, method="nmm", threshold=0.5)``.

    * NMS keeps the best-ranked detection of each group, with the group's highest confidence.
    * WBF (weighted boxes fusion) keeps it too, its box the confidence-weighted mean of the group's
      whole boxes (:func:`~tiling.merge_fuse.weighted_boxes`). Keypoints are the kept one's; so are the
      masks (and their mask boxes), which the fused box may differ from by the members' spread; oriented
      boxes are not averaged (their angles may differ): with ``obb``, WBF keeps the best box, as NMS.
    * Soft-NMS keeps the best one and also the ones it overlaps, their confidence lowered by the overlap
      and still at or above ``conf`` (:func:`~tiling.merge_fuse.soft_decayed`); cut pieces are removed.
    * NMM fuses each kept detection with those it suppressed: the union of their boxes (and masks),
      the highest confidence, the class of the kept one. An oriented box fuses into the smallest box
      at the kept one's angle holding every member's corners (its enclosing box, within the union of
      the members' enclosing boxes, is the new ``xyxy``). Keypoints are the kept detection's.

    Results are sorted by confidence.
    """
    spec = checks.with_changes(spec, MergeSpec, changes)
    shown = detections.filter_mask(conf=spec.conf, classes=spec.classes) & ~coarse_guesses(detections)
    detections = detections if shown.all() else detections[shown]
    n = len(detections)
    if n == 0:
        return detections[np.arange(0)]
    keep, owner, rule, value = _groups(detections, spec)
    d = np.flatnonzero(~keep)
    conf = detections.confidence.copy()
    np.maximum.at(conf, owner, detections.confidence)
    kept_idx = np.flatnonzero(keep)
    if spec.method == "soft" and len(d):
        extra, lowered = merge_fuse.soft_decayed(detections.confidence, keep, rule == RULE_CODES[Rule.OVERLAP],
                                                 value, spec.conf)
        conf[extra] = lowered
        kept_idx = np.sort(np.concatenate([kept_idx, extra]))
    out = detections[kept_idx]
    out.confidence = conf[kept_idx]
    if spec.method == "wbf" and len(d) and detections.obb is None:
        out.xyxy = merge_fuse.weighted_boxes(detections, owner, kept_idx,
                                             _flag(detections, "truncated"))
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


def _groups(detections: Detections, spec: MergeSpec):
    """``(keep, owner, rule, value)`` over ``detections`` (already filtered): each suppressed one belongs
    to its best-ranked kept neighbour (``owner``; a kept one owns itself), with the rule and overlap of
    that edge."""
    n = len(detections)
    src, dst, rank, rules, values = _edges(detections, spec.metric, spec.threshold, spec.class_agnostic)
    keep = greedy_keep(n, src, dst)
    by_keeper = keep[src] & ~keep[dst]
    s, d, r, v = src[by_keeper], dst[by_keeper], rules[by_keeper], values[by_keeper]
    order = np.lexsort((rank[s], d))
    s, d, r, v = s[order], d[order], r[order], v[order]
    first = np.r_[True, d[1:] != d[:-1]] if len(d) else np.zeros(0, bool)
    owner = np.arange(n)
    owner[d[first]] = s[first]
    rule = np.full(n, RULE_CODES[Rule.KEPT])
    rule[d[first]] = r[first]
    value = np.ones(n)
    value[d[first]] = v[first]
    return keep, owner, rule, value


@dataclass(frozen=True)
class MergeExplanation:
    """What the merge did with each raw detection (indices into the detections given to :func:`explain`)."""

    kept: np.ndarray  # bool (n,): in the answer
    owner: np.ndarray  # int (n,): the detection it was merged into; itself if kept, -1 if filtered out
    rule: np.ndarray  # object (n,): the :class:`Rule` that decided it
    value: np.ndarray  # float (n,): its overlap with ``owner`` under that rule (1 for kept, nan for filtered)


def explain(detections: Detections, spec: MergeSpec | None = None, **changes) -> MergeExplanation:
    """Why each raw detection survives or which one it was merged into, and by which rule (the
    teaching page's seam view). ``merge(detections, spec)`` returns exactly the ``kept`` ones (with
    Soft-NMS, those it lowered are ``kept`` with the rule :attr:`Rule.LOWERED`)."""
    spec = checks.with_changes(spec, MergeSpec, changes)
    n = len(detections)
    guess = coarse_guesses(detections)
    shown = np.flatnonzero(detections.filter_mask(conf=spec.conf, classes=spec.classes) & ~guess)
    kept, owner = np.zeros(n, bool), np.full(n, -1)
    rule = np.where(guess, Rule.COARSE_GUESS, Rule.FILTERED).astype(object)
    value = np.full(n, np.nan)
    if len(shown):
        part = detections[shown]
        k, o, r, v = _groups(part, spec)
        rules = np.array(list(Rule), object)
        kept[shown], owner[shown], rule[shown], value[shown] = k, shown[o], rules[r], v
        if spec.method == "soft":
            lowered, _ = merge_fuse.soft_decayed(part.confidence, k, r == RULE_CODES[Rule.OVERLAP], v, spec.conf)
            kept[shown[lowered]], rule[shown[lowered]] = True, Rule.LOWERED
    return MergeExplanation(kept, owner, rule, value)


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
