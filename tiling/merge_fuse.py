"""How a merged group becomes one detection beyond keeping its best member: weighted box fusion and
Soft-NMS. :func:`tiling.merge.merge` finds the groups; these functions only combine their members."""
from __future__ import annotations

import numpy as np

from .detections import Detections

SOFT_FLOOR = 0.01  # a Soft-NMS decayed confidence below this is dropped


def weighted_boxes(det: Detections, owner: np.ndarray, kept_idx: np.ndarray, partial: np.ndarray) -> np.ndarray:
    """Each kept detection's box as the confidence-weighted mean of its group's boxes (weighted boxes
    fusion): overlapping tiles and the full pass each place an object's edges slightly differently, and
    their mean is closer to the truth than the most confident one alone. ``partial`` members (pieces cut
    at a tile edge) describe part of an object and carry no weight; a group with no other member keeps
    its own box."""
    weight = np.where(partial, 0.0, det.confidence.astype(np.float64))
    weight[kept_idx] = np.maximum(weight[kept_idx], 1e-12)  # the kept box always counts
    total = np.bincount(owner, weight, len(det))
    sums = np.stack([np.bincount(owner, weight * det.xyxy[:, c], len(det)) for c in range(4)], axis=1)
    return (sums[kept_idx] / total[kept_idx, None]).astype(det.xyxy.dtype)


def soft_decayed(confidence: np.ndarray, keep: np.ndarray, overlap_suppressed: np.ndarray, value: np.ndarray,
                 conf: float) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, confidences)`` of the detections Soft-NMS returns beside the kept ones: those
    suppressed for overlapping a better box (not cut pieces, which are parts of that box), each with its
    confidence decayed linearly by the overlap, ``conf * (1 - overlap)``, and still at or above ``conf``
    (the merge's own threshold; at least :data:`SOFT_FLOOR`). A crowd's neighbours keep a lower place in
    the ranking instead of vanishing."""
    idx = np.flatnonzero(~keep & overlap_suppressed)
    decayed = confidence[idx] * (1.0 - np.clip(value[idx], 0.0, 1.0))
    live = decayed >= max(SOFT_FLOOR, conf)
    return idx[live], decayed[live].astype(confidence.dtype)
