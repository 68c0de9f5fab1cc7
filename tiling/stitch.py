"""Stitch dense per-pixel outputs (heatmaps, class maps, any ``fn(tile) -> H x W x C``) over tiles.

Overlapping tiles are blended with a weight window, so there are no seams. ``pad`` gives ``fn``
context beyond each tile (real neighbouring pixels inside the image, reflected pixels beyond its
edges) and is cropped off after, so ``fn``'s own border artefacts stay out of the result.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from .grid import plan_tiles
from .models import InferSpec, as_model

WINDOWS = ("uniform", "hann")


def weight_window(height: int, width: int, window: str = "hann") -> np.ndarray:
    """Strictly positive (H, W) weights: high in the middle of a tile, low (never zero) at its edges."""
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    if window == "uniform":
        return np.ones((height, width), np.float32)
    wy = np.hanning(height + 2)[1:-1].astype(np.float32)
    wx = np.hanning(width + 2)[1:-1].astype(np.float32)
    return np.outer(wy, wx) + 1e-6


def stitch_dense(
    image: np.ndarray,
    fn: Callable[[np.ndarray], np.ndarray],
    tile_size=256,
    overlap=0.5,
    pad: int = 16,
    window: str = "hann",
) -> np.ndarray:
    """Run ``fn`` on overlapping tiles of ``image`` and blend the outputs into one float32 map.

    ``fn`` receives an (h + 2*pad, w + 2*pad, C) tile and returns an array of the same height and
    width (2-D or with channels). The result has the image's height and width and ``fn``'s channels.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be H x W or H x W x C, got shape {image.shape}")
    pad = int(pad)
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    h, w = image.shape[:2]
    tiles = plan_tiles((h, w), tile_size=tile_size, overlap=overlap, edge="shift", max_tiles=None)  # every window full size: one blending window shape
    src = image
    if pad:
        mode = cv2.BORDER_REFLECT_101 if min(h, w) > 1 else cv2.BORDER_REPLICATE
        src = cv2.copyMakeBorder(np.ascontiguousarray(image), pad, pad, pad, pad, mode)
        if image.ndim == 3 and src.ndim == 2:
            src = src[..., None]
    acc = None
    weight = np.zeros((h, w), np.float32)
    for t in tiles:
        window_in = src[t.y0 : t.y1 + 2 * pad, t.x0 : t.x1 + 2 * pad]
        out = np.asarray(fn(window_in))
        if out.shape[:2] != window_in.shape[:2]:
            raise ValueError(
                f"fn must return an array of the tile's height and width {window_in.shape[:2]}, got {out.shape[:2]}"
            )
        out = out[pad : out.shape[0] - pad, pad : out.shape[1] - pad].astype(np.float32)
        if acc is None:
            acc = np.zeros((h, w, *out.shape[2:]), np.float32)
        wgt = weight_window(t.height, t.width, window)
        acc[t.y0 : t.y1, t.x0 : t.x1] += out * (wgt if out.ndim == 2 else wgt[..., None])
        weight[t.y0 : t.y1, t.x0 : t.x1] += wgt
    assert acc is not None
    return acc / (weight if acc.ndim == 2 else weight[..., None])


def segmentation_scores(model, conf: float = 0.25, iou: float = 0.7) -> Callable[[np.ndarray], np.ndarray]:
    """An ``fn`` for :func:`stitch_dense` that turns a segmentation model into per-pixel class scores.

    Channel 0 is background (a constant 0.5 prior, so a pixel becomes an object only where a mask
    scores above it), channel ``c + 1`` is the best confidence of a class-``c`` mask covering the pixel.
    """
    model = as_model(model)
    spec = InferSpec(conf=conf, iou=iou)
    n_classes = max(model.names) + 1 if model.names else 1

    def fn(tile: np.ndarray) -> np.ndarray:
        tile = np.ascontiguousarray(tile)
        det = model.predict([tile], spec)[0]
        scores = np.zeros((*tile.shape[:2], n_classes + 1), np.float32)
        scores[..., 0] = 0.5
        if det.masks is None:
            return scores
        for k in range(len(det)):
            x0, y0, x1, y1 = (int(v) for v in det.mask_boxes[k])  # type: ignore[index]
            region = scores[y0:y1, x0:x1, int(det.class_id[k]) + 1]
            m = det.masks[k][: region.shape[0], : region.shape[1]]
            region[m] = np.maximum(region[m], det.confidence[k])
        return scores

    return fn


def dense_class_map(image: np.ndarray, model, tile_size=640, overlap=0.5, pad: int = 32, conf: float = 0.25,
                    iou: float = 0.7, window: str = "hann") -> np.ndarray:
    """(H, W) int class map (-1 = background) from a segmentation model, blended over tiles without seams."""
    scores = stitch_dense(image, segmentation_scores(model, conf, iou), tile_size, overlap, pad, window)
    return scores.argmax(axis=2).astype(np.int32) - 1
