"""Compare detections with ground truth (precision, recall, AP50, AP50-95) or with each other.

AP follows COCO's definition (greedy matching by score, 101-point interpolated precision, per
class then averaged), without COCO's 100-detections-per-image cap by default: the images this
tool is for hold hundreds of objects. When predictions and ground truth both hold oriented boxes,
overlap is the exact IoU of the rotated rectangles (:mod:`tiling.rotated`), as DOTA scores them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import rotated
from .detections import Detections

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU matrix (for the moderate sizes of one image's predictions vs its labels)."""
    import torch
    from torchvision.ops import box_iou as tv_box_iou

    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float64)
    return tv_box_iou(torch.from_numpy(np.asarray(a, np.float64)), torch.from_numpy(np.asarray(b, np.float64))).numpy()


def detection_iou(a: Detections, b: Detections) -> np.ndarray:
    """(N, M) IoU of two sets of detections: of their oriented boxes when both have them, else of ``xyxy``."""
    if a.obb is not None and b.obb is not None:
        return rotated.iou_matrix(a.obb, b.obb)
    return box_iou(a.xyxy, b.xyxy)


def matched(pred: Detections, reference: Detections, iou: float = 0.5, class_aware: bool = True) -> np.ndarray:
    """For each prediction: does some reference box of the same class (or any class) overlap it at ``iou``?"""
    if len(pred) == 0 or len(reference) == 0:
        return np.zeros(len(pred), bool)
    m = detection_iou(pred, reference) >= iou
    if class_aware:
        m &= pred.class_id[:, None] == reference.class_id[None, :]
    return m.any(axis=1)


def _match_image(pred: Detections, gt: Detections, thresholds: np.ndarray):
    """COCO greedy matching for one image and one class.

    Returns the (T, P) true-positive table of the predictions and the (T, G) table of matched labels.
    """
    order = np.argsort(-pred.confidence, kind="mergesort")
    ious = detection_iou(pred[order], gt)
    tp = np.zeros((len(thresholds), len(order)), bool)
    gt_match = np.zeros((len(thresholds), len(gt)), bool)
    for t, thr in enumerate(thresholds):
        for d in range(len(order)):
            if len(gt) == 0:
                break
            cand = np.where(gt_match[t], -1.0, ious[d])
            g = int(np.argmax(cand))
            if cand[g] >= thr - 1e-10:
                gt_match[t, g] = True
                tp[t, d] = True
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return tp[:, inverse], gt_match


def _ap(tp_sorted: np.ndarray, n_gt: int) -> float:
    if n_gt == 0:
        return float("nan")
    if len(tp_sorted) == 0:
        return 0.0
    tps = np.cumsum(tp_sorted)
    fps = np.cumsum(~tp_sorted)
    recall = tps / n_gt
    precision = tps / np.maximum(tps + fps, np.finfo(float).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    return float(np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0).mean())


@dataclass
class Evaluation:
    precision: float
    recall: float
    ap50: float
    ap50_95: float
    per_class: object  # pandas DataFrame: class_id, class, n_gt, n_pred, tp, precision, recall, ap50, ap50_95
    tp: list[np.ndarray]  # per image: prediction is a true positive at IoU 0.5
    fn: list[np.ndarray]  # per image: ground-truth object was missed at IoU 0.5
    duplicates: int = 0  # false positives overlapping an already-found object of their class at IoU >= 0.5
    partials: int = 0  # other false positives lying mostly (>= 70%) inside one labelled object


def evaluate(
    predictions: Detections | Sequence[Detections],
    ground_truth: Detections | Sequence[Detections],
    max_det: int | None = None,
) -> Evaluation:
    """Score predictions (one ``Detections`` per image) against ground truth (confidences ignored)."""
    import pandas as pd

    preds = [predictions] if isinstance(predictions, Detections) else list(predictions)
    gts = [ground_truth] if isinstance(ground_truth, Detections) else list(ground_truth)
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} prediction sets for {len(gts)} ground-truth sets")
    if max_det is not None:
        preds = [p[np.argsort(-p.confidence, kind="mergesort")[:max_det]] for p in preds]
    names: dict[int, str] = {}
    for d in (*preds, *gts):
        names.update(d.names)
    classes = sorted(set(np.concatenate([d.class_id for d in (*preds, *gts)]).tolist()) if preds else set())
    tp_img = [np.zeros(len(p), bool) for p in preds]
    tp_gt = [np.zeros(len(g), bool) for g in gts]
    rows = [_class_row(c, names.get(c, str(c)), preds, gts, tp_img, tp_gt) for c in classes]
    frame = pd.DataFrame(rows, columns=["class_id", "class", "n_gt", "n_pred", "tp", "precision", "recall", "ap50",
                                        "ap50_95"])
    duplicates, partials = _false_positive_kinds(preds, gts, tp_img)
    n_pred = sum(len(p) for p in preds)
    n_gt = sum(len(g) for g in gts)
    tp = int(sum(t.sum() for t in tp_img))
    with_gt = frame[frame["n_gt"] > 0]
    return Evaluation(
        precision=tp / n_pred if n_pred else 0.0,
        recall=tp / n_gt if n_gt else 0.0,
        ap50=float(with_gt["ap50"].mean()) if len(with_gt) else 0.0,
        ap50_95=float(with_gt["ap50_95"].mean()) if len(with_gt) else 0.0,
        per_class=frame,
        tp=tp_img,
        fn=[~m for m in tp_gt],
        duplicates=duplicates,
        partials=partials,
    )


def _class_row(c: int, name: str, preds: list[Detections], gts: list[Detections], tp_img: list[np.ndarray],
               tp_gt: list[np.ndarray]) -> dict:
    """One class's row of the per-class table, matched image by image; marks the class's true positives
    in ``tp_img`` and its found labels in ``tp_gt`` (at IoU 0.5)."""
    scores, tables, n_gt = [], [], 0
    for i, (p, g) in enumerate(zip(preds, gts)):
        pi, gi = np.flatnonzero(p.class_id == c), np.flatnonzero(g.class_id == c)
        n_gt += len(gi)
        table, found = _match_image(p[pi], g[gi], IOU_THRESHOLDS)
        tp_img[i][pi] = table[0]
        tp_gt[i][gi] = found[0]
        scores.append(p.confidence[pi])
        tables.append(table)
    score = np.concatenate(scores) if scores else np.zeros(0)
    table = np.concatenate(tables, axis=1) if tables else np.zeros((len(IOU_THRESHOLDS), 0), bool)
    order = np.argsort(-score, kind="mergesort")
    aps = [_ap(table[t, order], n_gt) for t in range(len(IOU_THRESHOLDS))]
    n_pred, tp = len(score), int(table[0].sum())
    return {"class_id": c, "class": name, "n_gt": n_gt, "n_pred": n_pred, "tp": tp,
            "precision": tp / n_pred if n_pred else float("nan"), "recall": tp / n_gt if n_gt else float("nan"),
            "ap50": aps[0], "ap50_95": float(np.nanmean(aps)) if n_gt else float("nan")}


def _false_positive_kinds(preds: list[Detections], gts: list[Detections], tp_img: list[np.ndarray]) -> tuple[int, int]:
    """(duplicates, partials) among the false positives: a second box on a found object of its class
    (IoU >= 0.5), or another box lying mostly (>= 70%) inside one labelled object."""
    duplicates = partials = 0
    for p, g, t in zip(preds, gts, tp_img):
        fp = p[~t]
        if len(fp) == 0 or len(g) == 0:
            continue
        same_class = fp.class_id[:, None] == g.class_id[None, :]
        dup = ((detection_iou(fp, g) >= 0.5) & same_class).any(axis=1)
        if fp.obb is not None and g.obb is not None:
            inside = rotated.iou_matrix(fp.obb, g.obb, "inside") >= 0.7
        else:
            inside = _inside_fraction(fp.xyxy, g.xyxy) >= 0.7
        duplicates += int(dup.sum())
        partials += int((~dup & inside.any(axis=1)).sum())
    return duplicates, partials


def _inside_fraction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M): the fraction of each box of ``a`` that lies inside each box of ``b``."""
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area = np.clip((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), 1e-9, None)
    return iw * ih / area[:, None]


def score_table(full_preds: Sequence[Detections], tiled_preds: Sequence[Detections], gts: Sequence[Detections],
                conf: float):
    """Both modes' scores, overall and per class, as the CLI's ``evaluate`` and the page's Scores tab
    show them: precision and recall of the boxes at ``conf`` and above (the boxes drawn), AP50 and
    AP50-95 over every box given (the whole precision-recall curve, down to the model's own floor)."""
    import pandas as pd

    rows = []
    for mode, preds in (("full image", full_preds), ("patches", tiled_preds)):
        shown = [p.filter(conf=conf) for p in preds]
        at_conf = evaluate(shown, gts)
        curve = evaluate(preds, gts)
        precision = at_conf.precision if sum(len(p) for p in shown) else float("nan")  # no box: undefined
        rows.append({"mode": mode, "class": "all", "precision": precision, "recall": at_conf.recall,
                     "AP50": curve.ap50, "AP50-95": curve.ap50_95})
        per = at_conf.per_class.set_index("class_id")
        for _, r in curve.per_class.iterrows():
            if r["n_gt"]:
                rows.append({"mode": mode, "class": r["class"], "precision": per.loc[r["class_id"], "precision"],
                             "recall": per.loc[r["class_id"], "recall"], "AP50": r["ap50"], "AP50-95": r["ap50_95"]})
    return pd.DataFrame(rows)
