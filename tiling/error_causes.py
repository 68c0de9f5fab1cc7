"""Why each false positive is one: the words a score needs before a student believes it.

"Its 11 boxes are all false positives" while the boxes visibly sit on objects reads as a bug. Each
false positive at IoU 0.5 has one of three causes, tried in this order:

* ``duplicate``: it overlaps (IoU >= 0.5) a labelled object of its class that another, better box
  already matched; only one box per object counts.
* ``wrong class``: it overlaps (IoU >= 0.5) a labelled object, of another class.
* ``wrong place``: it overlaps no labelled object at IoU 0.5: background, or a box too large, too
  small or shifted (its best IoU says how close it came).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from .detections import Detections
from .evaluate import detection_iou

MATCH_IOU = 0.5


class Cause(str, Enum):
    DUPLICATE = "duplicate"
    WRONG_CLASS = "wrong class"
    WRONG_PLACE = "wrong place"

    @classmethod
    def from_value(cls, value: str) -> Cause:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"no false-positive cause {value!r}; the causes are "
                             f"{', '.join(c.value for c in cls)}") from None


@dataclass(frozen=True)
class FalsePositives:
    """The false positives of one image: their indices into the predictions, each one's cause, its best
    IoU with any labelled object (of any class) and that object's index (-1: no label overlaps it)."""

    index: np.ndarray
    cause: np.ndarray  # str values of Cause
    best_iou: np.ndarray
    best_label: np.ndarray

    def count(self, cause: Cause) -> int:
        return int((self.cause == cause.value).sum())

    def of(self, cause: Cause) -> np.ndarray:
        """Indices into the predictions of the false positives with ``cause``."""
        return self.index[self.cause == cause.value]


def false_positive_causes(pred: Detections, gt: Detections, tp: np.ndarray) -> FalsePositives:
    """The cause of every prediction that ``tp`` (``Evaluation.tp[i]`` at IoU 0.5) does not mark true."""
    index = np.flatnonzero(~np.asarray(tp, bool))
    if len(index) == 0:
        return FalsePositives(index, np.zeros(0, dtype=object), np.zeros(0), np.zeros(0, np.int64))
    if len(gt) == 0:
        return FalsePositives(index, np.full(len(index), Cause.WRONG_PLACE.value, dtype=object), np.zeros(len(index)),
                              np.full(len(index), -1, np.int64))
    fp = pred[index]
    iou = detection_iou(fp, gt)
    on_object = iou >= MATCH_IOU - 1e-10
    same = fp.class_id[:, None] == gt.class_id[None, :]
    cause = np.where((on_object & same).any(axis=1), Cause.DUPLICATE.value,
                     np.where(on_object.any(axis=1), Cause.WRONG_CLASS.value, Cause.WRONG_PLACE.value)).astype(object)
    best = iou.max(axis=1)
    return FalsePositives(index, cause, best, np.where(best > 0, iou.argmax(axis=1), -1))


def cause_sentence(fps: FalsePositives, n_pred: int) -> str:
    """One sentence a student reads under the scores: how many false positives and why."""
    if len(fps.index) == 0:
        return "none of its boxes is a false positive" if n_pred else "it drew no box"
    parts = [f"{fps.count(c)} {c.value}" for c in Cause if fps.count(c)]
    near = int(((fps.cause == Cause.WRONG_PLACE.value) & (fps.best_iou >= 0.1)).sum())
    tail = (f" ({near} of the wrong-place boxes do sit on an object, but overlap it by less than "
            f"IoU {MATCH_IOU}: too large, too small or shifted)") if near else ""
    return f"{len(fps.index)} of its {n_pred} boxes are false positives: {', '.join(parts)}{tail}"
