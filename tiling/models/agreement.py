"""How closely an 8-bit network reproduces the float one: the guard on copies made by :mod:`.quantize`.

After quantizing, the float and the 8-bit network run on the held-out calibration tiles
(:mod:`.calibration`) and their outputs are compared (:func:`agreement`): box F1 at IoU 0.5, and for
segmentation the masks' pixel IoU. Below :data:`AGREEMENT_BAR` the 8-bit copy is not used.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..detections import Detections
from ..evaluate import detection_iou
from ..geometry import paste_mask
from .base import InferSpec
from .runtimes import MIN_INT8_SIDE

AGREEMENT_BAR = 0.97  # box F1 (and mask IoU) of the 8-bit copy against the float model on held-out tiles
GUARD_SPEC = InferSpec(conf=0.25, iou=0.7, max_det=300)


def outputs(model, net, tiles: Sequence[np.ndarray]) -> list[Detections]:
    """``model``'s detections on each tile with ``net`` as its forward pass (tiles of a size run together,
    padded to the 8-bit floor, so both networks see the same inputs); the model itself is not changed
    (``UltralyticsModel.predict_with``)."""
    out: list[Detections | None] = [None] * len(tiles)
    for shape in {t.shape for t in tiles}:
        idx = [i for i, t in enumerate(tiles) if t.shape == shape]
        for k in range(0, len(idx), 8):
            part = idx[k : k + 8]
            for i, det in zip(part, model.predict_with(net, [tiles[i] for i in part], GUARD_SPEC, MIN_INT8_SIDE)):
                out[i] = det
    return out


def box_f1(reference: Sequence[Detections], test: Sequence[Detections], iou: float = 0.5) -> float:
    """F1 of ``test``'s boxes against ``reference``'s, tile by tile: pairs of the same class overlapping at
    ``iou`` or more (rotated IoU for oriented boxes) are matched one to one, the best-overlapping first."""
    n_ref = sum(len(d) for d in reference)
    n_test = sum(len(d) for d in test)
    if n_ref + n_test == 0:
        return 1.0
    pairs = sum(_matched_pairs(a, b, iou) for a, b in zip(reference, test))
    return 2 * pairs / (n_ref + n_test)


def _matched_pairs(a: Detections, b: Detections, iou: float) -> int:
    if len(a) == 0 or len(b) == 0:
        return 0
    overlap = detection_iou(a, b)  # of the rotated rectangles for oriented boxes
    overlap[a.class_id[:, None] != b.class_id[None, :]] = 0.0
    rows, cols = np.nonzero(overlap >= iou)
    used_a, used_b = np.zeros(len(a), bool), np.zeros(len(b), bool)
    count = 0
    for k in np.argsort(-overlap[rows, cols], kind="stable"):
        i, j = rows[k], cols[k]
        if not (used_a[i] or used_b[j]):
            used_a[i] = used_b[j] = True
            count += 1
    return count


def mask_iou(reference: Sequence[Detections], test: Sequence[Detections], shapes: Sequence[tuple]) -> float:
    """Pixel IoU of the two outputs' masks, each tile's instances pasted together, summed over tiles."""
    inter = union = 0
    for a, b, shape in zip(reference, test, shapes):
        canvases = []
        for det in (a, b):
            canvas = np.zeros(shape[:2], bool)
            for mask, box in zip(det.masks or [], det.mask_boxes if det.masks else []):
                paste_mask(canvas, mask, box)
            canvases.append(canvas)
        inter += int(np.count_nonzero(canvases[0] & canvases[1]))
        union += int(np.count_nonzero(canvases[0] | canvases[1]))
    return 1.0 if union == 0 else inter / union


def agreement(model, fp32_net, int8_net, tiles: Sequence[np.ndarray]) -> dict:
    """How closely the 8-bit network reproduces the float one on ``tiles``: box F1 at IoU 0.5 (and for
    segmentation the masks' pixel IoU); ``agreement`` is the lower of the two."""
    reference = outputs(model, fp32_net, tiles)
    test = outputs(model, int8_net, tiles)
    record = {"box_f1": round(box_f1(reference, test), 4), "held_out_tiles": len(tiles),
              "boxes_fp32": sum(len(d) for d in reference), "boxes_int8": sum(len(d) for d in test)}
    if model.task == "segment":
        record["mask_iou"] = round(mask_iou(reference, test, [t.shape for t in tiles]), 4)
    record["agreement"] = min(record["box_f1"], record.get("mask_iou", 1.0))
    return record
