"""Instance masks decoded only inside their boxes, from prototype maps or Ultralytics' mask maps.

Decoding a mask over the whole tile and cropping it later would cost a tile-sized array per
detection; here each mask costs its box.
"""
from __future__ import annotations

import math

import numpy as np

from ..detections import Detections
from ..geometry import mask_boxes_for


def proto_logits(maps: np.ndarray, coef: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = region
    crop = maps[:, y0:y1, x0:x1]  # clipped at the map's edge for boxes touching the tile border
    return (coef @ crop.reshape(crop.shape[0], -1)).reshape(crop.shape[1:])


def slice_map(mask_map: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = region
    return mask_map[y0:y1, x0:x1]


def attach_masks(det: Detections, size: tuple[int, int], sample, sx: float, sy: float, px: float, py: float,
                  threshold: float) -> Detections:
    """Decode each mask only inside its box; map (sx, sy, px, py): image px -> mask-map px."""
    import cv2

    w, h = size
    boxes = mask_boxes_for(det.xyxy)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    masks = []
    for k, (bx0, by0, bx1, by1) in enumerate(boxes):
        u0, v0 = bx0 * sx + px, by0 * sy + py
        u1, v1 = bx1 * sx + px, by1 * sy + py
        a0, b0 = max(0, int(math.floor(u0)) - 1), max(0, int(math.floor(v0)) - 1)
        a1, b1 = int(math.ceil(u1)) + 1, int(math.ceil(v1)) + 1
        logits = sample(k, (a0, b0, a1, b1))
        b1, a1 = b0 + logits.shape[0], a0 + logits.shape[1]  # clipped by the map's extent
        out_w = max(1, int(round((a1 - a0) / sx)))
        out_h = max(1, int(round((b1 - b0) / sy)))
        up = cv2.resize(np.ascontiguousarray(logits, dtype=np.float32), (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        ox, oy = int(round((a0 - px) / sx)), int(round((b0 - py) / sy))
        m = np.zeros((by1 - by0, bx1 - bx0), bool)
        ys0, xs0 = by0 - oy, bx0 - ox
        src = up[max(0, ys0) : ys0 + m.shape[0], max(0, xs0) : xs0 + m.shape[1]] > threshold
        m[max(0, -ys0) : max(0, -ys0) + src.shape[0], max(0, -xs0) : max(0, -xs0) + src.shape[1]] = src
        masks.append(m)
    return Detections(det.xyxy, det.confidence, det.class_id, masks=masks, mask_boxes=boxes, names=det.names,
                      data=det.data)
