"""The "What the model sees" tab: the picture the network is given in each mode, pixel for pixel: the
whole image shrunk to the model's input size, and one tile at its own resolution, side by side at the
same scale, with one small object cut out of both, so a student sees why small objects vanish."""
from __future__ import annotations

import cv2
import numpy as np
import streamlit as st

import tiling
from tiling.draw import network_input
from tiling.grid import tiles_array

from .resources import ImageItem

MODEL_INPUT = ":material/visibility: What the model sees"
CLOSE_UP = 48  # px of the tile around the object shown close up
OUTLINE = (255, 0, 255)  # BGR magenta: where the tile lies in the shrunk image


def busiest_tile(tiles, det: tiling.Detections) -> int:
    """The index of the tile holding the centres of the most of ``det`` (the first tile if none)."""
    if len(det) == 0:
        return 0
    centres = (det.xyxy[:, :2] + det.xyxy[:, 2:]) / 2
    boxes = tiles_array(list(tiles))
    inside = ((centres[None, :, 0] >= boxes[:, None, 0]) & (centres[None, :, 0] < boxes[:, None, 2])
              & (centres[None, :, 1] >= boxes[:, None, 1]) & (centres[None, :, 1] < boxes[:, None, 3]))
    return int(np.argmax(inside.sum(axis=1)))


def model_input_tab(item: ImageItem, pred: tiling.TiledPrediction, model, tiled: tiling.Detections,
                    patch_only: np.ndarray) -> None:
    stride = int(getattr(model, "stride", 32) or 32)
    full_in, shrink = network_input(item.image, pred.infer.imgsz, stride)
    only = tiled[patch_only] if patch_only.any() else tiled
    tile = pred.tiles[busiest_tile(pred.tiles, only)]
    tile_in, _ = network_input(item.image[tile.y0:tile.y1, tile.x0:tile.x1], None, stride)
    outlined = full_in.copy()
    corners = np.round(np.array([tile.x0, tile.y0, tile.x1, tile.y1]) * shrink).astype(int)
    cv2.rectangle(outlined, tuple(corners[:2]), tuple(corners[2:] - 1), OUTLINE, 2)
    h, w = item.shape[:2]
    st.markdown(f"The model is given a grid of pixels; these are the two grids, at the same scale (one pixel "
                f"of the model's input is one pixel here). **Left:** the whole {w} x {h} image shrunk "
                f"{1 / shrink:.1f} times to {full_in.shape[1]} x {full_in.shape[0]} (grey: padding). **Right:** "
                f"tile {tile.index}, the magenta square on the left, at its own {tile.width} x {tile.height} px: "
                f"every object keeps its real size.")
    widest = max(full_in.shape[1], tile_in.shape[1])
    left, right = st.columns([full_in.shape[1] / widest, tile_in.shape[1] / widest], gap="small")
    left.image(outlined, channels="BGR", width="stretch",
               caption=f"Full image: {full_in.shape[1]} x {full_in.shape[0]} input")
    right.image(tile_in, channels="BGR", width="stretch",
                caption=f"Tile {tile.index}: {tile_in.shape[1]} x {tile_in.shape[0]} input")
    close_ups(item, full_in, tile, only, shrink)


def close_ups(item: ImageItem, full_in: np.ndarray, tile, only: tiling.Detections, shrink: float) -> None:
    """One small object the patches found, cut out of both inputs and enlarged alike."""
    centres = (only.xyxy[:, :2] + only.xyxy[:, 2:]) / 2
    inside = ((centres[:, 0] >= tile.x0) & (centres[:, 0] < tile.x1) & (centres[:, 1] >= tile.y0)
              & (centres[:, 1] < tile.y1))
    inside &= only.confidence >= 0.5  # an object the model is sure of, not a doubtful speck
    if not inside.any():
        return
    sides = np.maximum(only.xyxy[:, 2] - only.xyxy[:, 0], only.xyxy[:, 3] - only.xyxy[:, 1])
    k = int(np.flatnonzero(inside)[np.argmin(np.abs(sides[inside] - 14))])  # a typical small one, about 14 px
    cx, cy = centres[k]
    h, w = item.shape[:2]
    x0, y0 = int(np.clip(cx - CLOSE_UP / 2, 0, w - CLOSE_UP)), int(np.clip(cy - CLOSE_UP / 2, 0, h - CLOSE_UP))
    sharp = item.image[y0:y0 + CLOSE_UP, x0:x0 + CLOSE_UP]
    small = max(1, round(CLOSE_UP * shrink))
    sx, sy = round(x0 * shrink), round(y0 * shrink)
    shrunk = full_in[sy:sy + small, sx:sx + small]  # the same place in the shrunk input
    side = 6 * CLOSE_UP
    name = only.names.get(int(only.class_id[k]), str(int(only.class_id[k])))
    st.markdown(f"**Close up:** a {name} of {sides[k]:.0f} px, as each input holds it (both enlarged to the "
                f"same size, each pixel a square).")
    a, b = st.columns(2, gap="small")
    a.image(cv2.resize(shrunk, (side, side), interpolation=cv2.INTER_NEAREST), channels="BGR", width="stretch",
            caption=f"In the shrunk image: {sides[k] * shrink:.1f} px across")
    b.image(cv2.resize(sharp, (side, side), interpolation=cv2.INTER_NEAREST), channels="BGR", width="stretch",
            caption=f"In the tile: {sides[k]:.0f} px across")
