"""The zoom tab: one region at full resolution, both modes side by side, picked with sliders or by a
click on a small overview of the whole image."""
from __future__ import annotations

import base64

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

import tiling

from .pictures import annotate, show
from .resources import ImageItem

OVERVIEW_SIDE = 640
GRID_CELLS = 32  # clickable cells along the long side of the overview

def default_zoom_center(item: ImageItem, tiled: tiling.Detections, patch_only: np.ndarray, size: int) -> tuple[int, int]:
    """The centre of the window holding the most objects that only the patches found."""
    h, w = item.image.shape[:2]
    pts = tiled.xyxy[patch_only] if patch_only.any() else tiled.xyxy
    if len(pts) == 0:
        return w // 2, h // 2
    centres = (pts[:, :2] + pts[:, 2:]) / 2
    near = (np.abs(centres[:, None, :] - centres[None, :, :]) < size / 2).all(axis=2).sum(axis=1)
    cx, cy = centres[int(np.argmax(near))]
    return int(cx), int(cy)


def _crop_dets(det: tiling.Detections, x0: int, y0: int, x1: int, y1: int) -> tiling.Detections:
    inside = (det.xyxy[:, 2] > x0) & (det.xyxy[:, 0] < x1) & (det.xyxy[:, 3] > y0) & (det.xyxy[:, 1] < y1)
    return det[inside].shifted(-x0, -y0)


def zoom(item: ImageItem, full: tiling.Detections, tiled: tiling.Detections, patch_only: np.ndarray) -> None:
    st.subheader("Zoom: the same region at full resolution")
    h, w = item.image.shape[:2]
    c1, c2, c3 = st.columns(3)
    kept = st.session_state.get("zoom_kept")  # the widgets' values survive while another tab is open
    if kept and kept[0] == item.key:
        for k, v in zip(("zoom_x", "zoom_y", "zoom_size"), kept[1:]):
            st.session_state.setdefault(k, v)
    st.session_state.setdefault("zoom_size", 384)
    size = c3.select_slider("Region size (px)", [128, 256, 384, 512, 768, 1024], key="zoom_size",
                            help="Width of the region shown at full resolution.")
    chosen_size = size
    size = min(size, w, h)
    if st.session_state.get("zoom_for") != item.key:  # a new image: jump to its most telling region
        st.session_state["zoom_for"] = item.key
        st.session_state["zoom_x"], st.session_state["zoom_y"] = default_zoom_center(item, tiled, patch_only, size)
    clicked = _clicked_cell(st.session_state.get("zoom_click"))
    if clicked is not None and clicked != st.session_state.get("zoom_applied"):  # a new click on the overview
        st.session_state["zoom_applied"] = clicked
        st.session_state["zoom_x"], st.session_state["zoom_y"] = min(clicked[0], w), min(clicked[1], h)
    cx = c1.slider("Region centre x", 0, w, key="zoom_x", help="Move the region left or right.")
    cy = c2.slider("Region centre y", 0, h, key="zoom_y", help="Move the region up or down.")
    st.session_state["zoom_kept"] = (item.key, cx, cy, chosen_size)
    x0, y0 = int(np.clip(cx - size // 2, 0, w - size)), int(np.clip(cy - size // 2, 0, h - size))
    x1, y1 = x0 + size, y0 + size
    picker = st.expander("Pick the region by clicking the image", expanded=False, key="zoom_picker",
                         on_change="rerun")
    if picker.open:  # drawn only when opened: the chart is the costliest part of this tab
        with picker:
            st.altair_chart(_overview_chart(item, tiled, (x0, y0, x1, y1)), on_select="rerun", key="zoom_click",
                            selection_mode="cell", width="content")
    crop = item.image[y0:y1, x0:x1]
    halo = patch_only[(tiled.xyxy[:, 2] > x0) & (tiled.xyxy[:, 0] < x1) & (tiled.xyxy[:, 3] > y0) &
                      (tiled.xyxy[:, 1] < y1)]
    with st.container(key="pair-zoom"):  # side by side on a phone too (ui.page_style)
        left, right = st.columns(2, gap="small")
    show(left, annotate(crop, _crop_dets(full, x0, y0, x1, y1), max_side=10_000),
         f"Full image, x {x0}-{x1}, y {y0}-{y1}")
    show(right, annotate(crop, _crop_dets(tiled, x0, y0, x1, y1), halo, max_side=10_000), "Patch-based, same region")


def _clicked_cell(state) -> tuple[int, int] | None:
    try:
        points = state["selection"]["cell"]
        return (int(points[0]["cx"]), int(points[0]["cy"])) if points else None
    except (KeyError, IndexError, TypeError):
        return None


def _overview_chart(item: ImageItem, det: tiling.Detections, region: tuple[int, int, int, int]):
    """A small picture of the whole image covered by invisible clickable cells, the region outlined."""
    h, w = item.image.shape[:2]
    preview = annotate(item.image, det, max_side=OVERVIEW_SIDE)
    ph, pw = preview.shape[:2]
    url = "data:image/jpeg;base64," + base64.b64encode(tiling.formats.encode_jpeg(preview, 80)).decode()
    xs = alt.Scale(domain=[0, w], nice=False, zero=False)
    ys = alt.Scale(domain=[h, 0], nice=False, zero=False)
    picture = alt.Chart(pd.DataFrame({"x": [w / 2], "y": [h / 2], "url": [url]})).mark_image(
        width=pw, height=ph).encode(x=alt.X("x:Q", scale=xs, axis=None), y=alt.Y("y:Q", scale=ys, axis=None),
                                    url="url:N")
    step = max(w, h) / GRID_CELLS
    gx, gy = np.meshgrid(np.arange(0, w, step), np.arange(0, h, step))
    cells = pd.DataFrame({"x0": gx.ravel(), "y0": gy.ravel()})
    cells["x1"], cells["y1"] = np.minimum(cells.x0 + step, w), np.minimum(cells.y0 + step, h)
    cells["cx"], cells["cy"] = ((cells.x0 + cells.x1) / 2).round(), ((cells.y0 + cells.y1) / 2).round()
    pick = alt.selection_point(name="cell", fields=["cx", "cy"], on="click", clear=False)
    grid = alt.Chart(cells).mark_rect(opacity=0.001, color="white").encode(
        x=alt.X("x0:Q", scale=xs, axis=None), x2="x1:Q", y=alt.Y("y0:Q", scale=ys, axis=None), y2="y1:Q",
        tooltip=[alt.Tooltip("cx:Q", title="x"), alt.Tooltip("cy:Q", title="y")]).add_params(pick)
    x0, y0, x1, y1 = region
    box = alt.Chart(pd.DataFrame({"x0": [x0], "y0": [y0], "x1": [x1], "y1": [y1]})).mark_rect(
        fill=None, stroke="#ff00ff", strokeWidth=2).encode(x=alt.X("x0:Q", scale=xs), x2="x1:Q",
                                                          y=alt.Y("y0:Q", scale=ys), y2="y1:Q")
    return alt.layer(picture, grid, box).properties(width=pw, height=ph).configure_view(stroke=None)
