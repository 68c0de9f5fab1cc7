"""Tracking scores against MOT ground truth: MOTA and IDF1 by py-motmetrics, HOTA by :mod:`.hota`.

Boxes match at IoU >= ``iou`` (0.5, the MOT Challenge's). py-motmetrics 1.4.0's own IoU helper calls
``np.asfarray``, which NumPy 2 removed, so the distance matrices (1 - IoU, NaN where no match is
allowed) are computed here and handed to its accumulator; the metrics are its own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..checks import number
from ..optional import require
from .hota import FramePairs, hota
from .mot import MotTracks, read_mot, tracks_of
from .result import FrameResult

MOTMETRICS = ["mota", "idf1", "motp", "num_switches", "num_false_positives", "num_misses", "num_objects",
              "num_unique_objects", "mostly_tracked"]


@dataclass(frozen=True)
class TrackScores:
    """One tracker run against the truth: ``mota``, ``idf1`` and ``hota`` (with ``deta``/``assa``), plus
    ``motp`` (mean 1 - IoU of matches; lower is better), identity ``switches``, ``false_positives``,
    ``misses``, truth boxes (``gt_boxes``) and objects (``gt_tracks``), ``mostly_tracked`` objects, and the
    ``frames`` scored."""

    mota: float
    idf1: float
    hota: float
    deta: float
    assa: float
    motp: float
    switches: int
    false_positives: int
    misses: int
    gt_boxes: int
    gt_tracks: int
    mostly_tracked: int
    frames: int

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every pair of (left, top, width, height) boxes: len(a) x len(b)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ax1, ay1, bx1, by1 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1[:, None], bx1[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(ay1[:, None], by1[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _as_tracks(value, ground_truth: bool) -> MotTracks:
    if isinstance(value, MotTracks):
        return value
    if isinstance(value, (str, os.PathLike)):
        return read_mot(value, ground_truth=ground_truth)
    return tracks_of(value)


def _dense(ids: np.ndarray) -> tuple[dict[int, int], int]:
    unique = np.unique(ids)
    return {int(v): k for k, v in enumerate(unique)}, len(unique)


def evaluate_tracks(ground_truth: str | os.PathLike | MotTracks | Sequence[FrameResult],
                    tracks: str | os.PathLike | MotTracks | Sequence[FrameResult],
                    iou: float = 0.5, frames: Sequence[int] | None = None) -> TrackScores:
    """Scores of ``tracks`` against ``ground_truth`` (each a MOT file, :class:`~.mot.MotTracks`, or frame
    results). ``frames`` (1-based) are the frames scored: by default every frame of the truth, or, when
    ``tracks`` are frame results, the frames they processed (a run with ``stride`` skips the others)."""
    mm = require("motmetrics", "video")
    iou = number("iou", iou, 0.05, 1.0)
    if frames is None and not isinstance(tracks, (str, os.PathLike, MotTracks)):
        tracks = list(tracks)
        frames = [f.index + 1 for f in tracks]
    gt, hyp = _as_tracks(ground_truth, True), _as_tracks(tracks, False)
    scored = sorted({int(f) for f in frames}) if frames is not None else sorted(set(gt.frame.tolist()))
    gt_index, n_gt = _dense(gt.track_id)
    tr_index, n_tr = _dense(hyp.track_id)
    acc = mm.MOTAccumulator(auto_id=False)
    pairs = []
    for f in scored:
        g_ids, g_box = gt.at(f)
        t_ids, t_box = hyp.at(f)
        sim = iou_xywh(g_box, t_box)
        acc.update(g_ids.tolist(), t_ids.tolist(), np.where(sim >= iou - 1e-12, 1.0 - sim, np.nan), frameid=f)
        pairs.append(FramePairs(np.array([gt_index[int(i)] for i in g_ids], np.int64),
                                np.array([tr_index[int(i)] for i in t_ids], np.int64), sim))
    summary = mm.metrics.create().compute(acc, metrics=MOTMETRICS, name="run")
    row = summary.iloc[0]
    h = hota(pairs, n_gt, n_tr)
    return TrackScores(
        mota=float(row["mota"]), idf1=float(row["idf1"]), hota=h.hota, deta=h.deta, assa=h.assa,
        motp=float(row["motp"]) if np.isfinite(row["motp"]) else 0.0, switches=int(row["num_switches"]),
        false_positives=int(row["num_false_positives"]), misses=int(row["num_misses"]),
        gt_boxes=int(row["num_objects"]), gt_tracks=int(row["num_unique_objects"]),
        mostly_tracked=int(row["mostly_tracked"]), frames=len(scored),
    )
