"""HOTA (Luiten et al., "HOTA: A Higher Order Metric for Evaluating Multi-Object Tracking", IJCV 2021).

Computed here, with SciPy's assignment, because no maintained package that installs beside this project
provides it: py-motmetrics 1.4.0 has MOTA and IDF1 but no HOTA, and the ``trackeval`` package on PyPI (a
fork of the paper's TrackEval) requires ``opencv-python``, which overwrites the headless OpenCV this
project runs on, and NumPy >= 2.3. The steps are the paper's, as its reference code (TrackEval's
``metrics/hota.py``, MIT) takes them: a global alignment score per (truth id, tracker id) pair from
soft IoU-weighted co-occurrence, a per-frame Hungarian matching that maximises alignment x IoU, then at
each localisation threshold alpha = 0.05, 0.10, ... 0.95 the detection accuracy DetA = TP / (TP + FN +
FP) and the association accuracy AssA (the mean over true positives of their pair's TPA / (TPA + FNA +
FPA)); HOTA_alpha = sqrt(DetA x AssA), and HOTA is its mean over alpha.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

ALPHAS = np.arange(0.05, 0.99, 0.05)
_EPS = np.finfo(float).eps


@dataclass(frozen=True)
class HotaScores:
    """HOTA and its parts, each the mean over the localisation thresholds :data:`ALPHAS`."""

    hota: float
    deta: float
    assa: float
    loca: float


@dataclass(frozen=True)
class FramePairs:
    """One frame for scoring: truth ids, tracker ids (both 0-based, dense over the clip) and their IoUs
    (len(gt_ids) x len(tracker_ids))."""

    gt_ids: np.ndarray
    tracker_ids: np.ndarray
    similarity: np.ndarray


def _alignment(frames: Sequence[FramePairs], n_gt: int, n_tr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global alignment score per (truth, tracker) pair, and each id's frame count."""
    potential = np.zeros((n_gt, n_tr))
    gt_count, tr_count = np.zeros((n_gt, 1)), np.zeros((1, n_tr))
    for f in frames:
        sim = f.similarity
        denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
        soft = np.where(denom > _EPS, sim / np.where(denom > _EPS, denom, 1.0), 0.0)
        potential[f.gt_ids[:, None], f.tracker_ids[None, :]] += soft
        gt_count[f.gt_ids] += 1
        tr_count[0, f.tracker_ids] += 1
    return potential / np.maximum(gt_count + tr_count - potential, _EPS), gt_count, tr_count


def hota(frames: Sequence[FramePairs], n_gt: int, n_tr: int) -> HotaScores:
    """HOTA over one sequence of frames; ``n_gt``/``n_tr``: how many distinct ids each side has."""
    n_gt_dets = sum(len(f.gt_ids) for f in frames)
    n_tr_dets = sum(len(f.tracker_ids) for f in frames)
    if n_gt_dets == 0 or n_tr_dets == 0:
        return HotaScores(0.0, 0.0, 0.0, 1.0)
    align, gt_count, tr_count = _alignment(frames, n_gt, n_tr)
    k = len(ALPHAS)
    tp, fn, fp, loc = np.zeros(k), np.zeros(k), np.zeros(k), np.zeros(k)
    matches = np.zeros((k, n_gt, n_tr))
    for f in frames:
        if len(f.gt_ids) == 0 or len(f.tracker_ids) == 0:
            fn += len(f.gt_ids)
            fp += len(f.tracker_ids)
            continue
        score = align[f.gt_ids[:, None], f.tracker_ids[None, :]] * f.similarity
        rows, cols = linear_sum_assignment(-score)
        sim = f.similarity[rows, cols]
        for a, alpha in enumerate(ALPHAS):
            ok = sim >= alpha - _EPS
            n = int(ok.sum())
            tp[a] += n
            fn[a] += len(f.gt_ids) - n
            fp[a] += len(f.tracker_ids) - n
            loc[a] += sim[ok].sum()
            matches[a, f.gt_ids[rows[ok]], f.tracker_ids[cols[ok]]] += 1
    ass = np.array([np.sum(m * (m / np.maximum(1, gt_count + tr_count - m))) for m in matches]) / np.maximum(1, tp)
    det = tp / np.maximum(1, tp + fn + fp)
    loca = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
    return HotaScores(float(np.mean(np.sqrt(det * ass))), float(det.mean()), float(ass.mean()), float(loca.mean()))
