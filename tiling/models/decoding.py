"""Network outputs as :class:`Detections` in image pixels, for both paths of ``UltralyticsModel``.

The lean path's rows after NMS (:func:`decode_rows`) are in the padded network input's pixels, masks as
prototype maps; the general path (:func:`predict_general`: heads the lean path does not know, such as
RT-DETR or YOLO26-seg, through Ultralytics' own ``predict``) gives letterboxed, centre-padded masks. Either
way each mask is decoded inside its box only.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..detections import Detections
from .base import InferSpec
from .masks import attach_masks, proto_logits, slice_map


def keypoints_from(flat: np.ndarray, kpt_shape, sx: float, sy: float) -> np.ndarray:
    """(N, K, 3) keypoints from a head's flat (N, K * D) rows in network pixels; D = 2 gets visibility 1."""
    k, dims = (int(v) for v in kpt_shape)
    kp = np.asarray(flat, np.float32).reshape(len(flat), k, dims)
    out = np.ones((len(kp), k, 3), np.float32)
    out[..., :dims] = kp[..., :3]
    out[..., 0] /= sx
    out[..., 1] /= sy
    return out


def decode_rows(d: np.ndarray, maps: np.ndarray | None, task: str, names: dict[int, str], kpt_shape,
                layout: tuple[int, ...]) -> Detections:
    """One image's rows after NMS (box, conf, class, then mask weights, an angle or keypoints) mapped from
    the network input's pixels to the image's; ``maps``: its (nm, ph/4, pw/4) prototype masks, or None.
    ``layout`` is (h, w, nh, nw, ph, pw): the image, its resized and its padded size."""
    h, w, nh, nw, ph, pw = layout
    sx, sy = nw / w, nh / h
    if task == "obb":  # (cx, cy, w, h, conf, class, angle)
        obb = np.concatenate([d[:, 0:1] / sx, d[:, 1:2] / sy, d[:, 2:4] / ((sx + sy) / 2), d[:, 6:7]], axis=1)
        return Detections.from_obb(obb, d[:, 4], d[:, 5], names, clip=(w, h))
    xyxy = np.clip(d[:, :4] / np.array([sx, sy, sx, sy], np.float32), 0, [w, h, w, h]).astype(np.float32)
    if task == "pose":
        kp = keypoints_from(d[:, 6:], kpt_shape, sx, sy)
        kp[..., 0] = np.clip(kp[..., 0], 0, w)  # clipped to the image, as Ultralytics does
        kp[..., 1] = np.clip(kp[..., 1], 0, h)
        return Detections(xyxy=xyxy, confidence=d[:, 4], class_id=d[:, 5], names=names, keypoints=kp)
    det = Detections(xyxy=xyxy, confidence=d[:, 4], class_id=d[:, 5], names=names)
    if maps is not None:
        coef = d[:, 6:]
        ratio_x, ratio_y = maps.shape[2] / pw, maps.shape[1] / ph
        det = attach_masks(det, (w, h), lambda k, r: proto_logits(maps, coef[k], r),
                           sx * ratio_x, sy * ratio_y, 0.0, 0.0, threshold=0.0)
    return det


def predict_general(yolo, images: Sequence[np.ndarray], spec: InferSpec, imgsz: int | None, names: dict[int, str],
                    kpt_shape: tuple[int, int] | None) -> list[Detections]:
    """``yolo.predict`` on equal-sized images (each at ``imgsz`` on its long side, or its own size), on the CPU."""
    h, w = images[0].shape[:2]
    res = yolo.predict(
        list(images), imgsz=imgsz or max(h, w), conf=spec.conf, iou=spec.iou,
        classes=list(spec.classes) if spec.classes is not None else None, max_det=spec.max_det, verbose=False,
        batch=len(images), device="cpu",
    )
    return [_detections(r, im, names, kpt_shape) for r, im in zip(res, images)]


def _detections(r, im: np.ndarray, names: dict[int, str], kpt_shape) -> Detections:
    """One Ultralytics result as Detections in the pixels of ``im``."""
    ih, iw = im.shape[:2]
    b = r.boxes
    if r.obb is not None:
        o = r.obb
        return Detections.from_obb(o.xywhr.numpy(), o.conf.numpy(), o.cls.numpy(), names, clip=(iw, ih))
    kp = None
    if kpt_shape is not None:
        data = r.keypoints.data.numpy() if r.keypoints is not None else np.zeros((0, *kpt_shape))
        kp = keypoints_from(data.reshape(len(b), -1), kpt_shape, 1.0, 1.0)  # already in image pixels
    det = Detections(xyxy=b.xyxy.numpy(), confidence=b.conf.numpy(), class_id=b.cls.numpy(), names=names,
                     keypoints=kp)
    if r.masks is not None and len(det):
        maps = r.masks.data.numpy().astype(np.float32)  # letterboxed input size, centre-padded
        mh, mw = maps.shape[1:]
        gain = min(mh / ih, mw / iw)
        pad_x, pad_y = (mw - iw * gain) / 2, (mh - ih * gain) / 2
        det = attach_masks(det, (iw, ih), lambda k, r_: slice_map(maps[k], r_), gain, gain, pad_x, pad_y,
                           threshold=0.5)
    return det
