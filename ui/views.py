"""The main page's sections: results side by side, the tab names, teaching steps, the class map. The zoom,
seam, model-input, scores and detections tabs have a module each (``zoom_view``, ``seam_view``...)."""
from __future__ import annotations

import numpy as np
import streamlit as st

import tiling
from tiling.draw import colorize_class_map, downscale

from .pictures import LABELLED_AT_MOST, PREVIEW_SIDE, annotate, legend, preview_of, scale_tiles, show
from .resources import ImageItem
from .seam_view import seam_pictures

ZOOM, STEPS, TABLE, SCORES = (":material/zoom_in: Zoom", ":material/school: Step by step",
                               ":material/table: Detections", ":material/analytics: Scores")
CLASS_MAP = ":material/map: Class map"  # a tab for segmentation models only (ui.tabs)


HALO_CHOICES = ("small ones", "all", "none")
SMALL_WHEN_SHRUNK = 8  # px: an object this small in the shrunk whole image is too small to recognise


def halo_marks(choice: str, patch_only: np.ndarray, tiled: tiling.Detections, shrink: float) -> np.ndarray:
    """Which detections wear the ring: those only the patches found, all of them or only those the
    shrunk whole image makes smaller than SMALL_WHEN_SHRUNK px (the ones the lesson is about)."""
    if choice == "none":
        return np.zeros(len(tiled), bool)
    if choice == "all":
        return patch_only
    side = np.maximum(tiled.xyxy[:, 2] - tiled.xyxy[:, 0], tiled.xyxy[:, 3] - tiled.xyxy[:, 1])
    return patch_only & (side * shrink < SMALL_WHEN_SHRUNK)


def timing_caption(pred: tiling.TiledPrediction, cached: bool) -> str:
    t = pred.timings
    ran = (f"{t.get('total', 0):.2f} s: the model {t.get('infer', 0):.2f} s on {len(pred.tiles)} tiles, merging "
           f"{t.get('merge', 0) * 1000:.0f} ms")
    return f"Shown from memory: this image already ran with these settings (it took {ran})" if cached else f"Took {ran}"


def side_by_side(item: ImageItem, full: tiling.Detections, tiled: tiling.Detections, patch_only: np.ndarray,
                 pred: tiling.TiledPrediction, full_time: float | None, show_grid: bool, cached: bool = False) -> None:
    """The two results next to each other (on a phone too: the page style keeps this pair of columns)."""
    h, w = item.shape[:2]
    shrink = min(1.0, pred.infer.imgsz / max(h, w))
    with st.container(key="pair-results"):
        left, right = st.columns(2, gap="small")
    with left:
        st.subheader("Full image")
        # A delta on both sides keeps the two pictures level.
        st.metric("Objects found", len(full), delta="one pass, shrunk to the model's input", delta_color="off",
                  delta_arrow="off")
        show(st, annotate(item.image, full), f"Whole image, shrunk {1 / shrink:.1f}x to the model's "
             f"{pred.infer.imgsz} px: {item.name}")
        if full_time is not None:
            st.caption(f"Took {full_time:.2f} s" if full_time >= 0.01 else "Shown from memory (no model call)")
    with right:
        st.subheader("Patch-based")
        st.metric("Objects found", len(tiled), delta=f"{int(patch_only.sum())} only by patches" if len(tiled) else
                  "none found", delta_color="normal" if len(tiled) else "off", delta_arrow="auto" if len(tiled) else "off")
        picture = st.empty()
        choice = st.radio("Ring the objects only the patches found", HALO_CHOICES, horizontal=True, key="halo",
                          help="Small ones: those the shrunk whole image makes smaller than "
                               f"{SMALL_WHEN_SHRUNK} px, too small for the model to recognise.")
        marks = halo_marks(choice, patch_only, tiled, shrink)
        ring = f"; dashed black-and-white ring: {int(marks.sum())} found only by patches" if marks.any() else ""
        hidden = "; class labels hidden past 100 boxes (the Zoom tab shows them)" if len(tiled) > LABELLED_AT_MOST else ""
        show(picture, annotate(item.image, tiled, marks, pred.tiles if show_grid else None),
             f"{len(pred.tiles)} tiles at full resolution{ring}{hidden}")
        st.caption(timing_caption(pred, cached))


EXPLANATION = """
**Why tiling finds small objects.** A detector sees a fixed number of pixels (say 640 on the long
side). A 4000-pixel photo is shrunk more than six times to fit, and a 20-pixel car becomes 3 pixels:
too small to recognise. Cutting the photo into 640-pixel tiles and running the model on each keeps
every object at its real size. Tiles overlap, so an object cut by one tile's edge is whole in the next.

**Merging duplicates.** Overlaps make the same object appear in two or four tiles. Boxes that match
are merged: *NMS* keeps the best one, *NMM* fuses them into one box. Whether two boxes match is
measured by **IoU** (overlap ÷ union: both boxes must be alike) or **IoS** (overlap ÷ the smaller
box: a half-object cut at a tile edge, lying inside the whole one, counts as the same object).
For oriented boxes both are measured on the rotated rectangles themselves, not on the upright boxes
around them, so two long objects side by side at an angle stay two.
"""


def teaching(item: ImageItem, pred: tiling.TiledPrediction, merged: tiling.Detections) -> None:
    st.markdown(EXPLANATION)
    grid, raw_tab, merged_tab = st.tabs(["1. The tile grid", "2. Raw detections per tile", "3. After merging"],
                                        key="steps", on_change="rerun")
    if grid.open:
        with grid:
            preview, scale = preview_of(item.image, PREVIEW_SIDE)
            tiles = scale_tiles(pred.tiles, scale)
            show(st, tiling.draw_tiles(preview, tiles, color=None, numbers=len(tiles) <= 400, alpha=0.9),
                 f"{len(pred.tiles)} tiles of {pred.tiles[0].width}x{pred.tiles[0].height} px"
                 + ("; the last column and row end at the image's edge, with the same overlap, so they are smaller"
                    if len({(t.width, t.height) for t in pred.tiles}) > 1 else ""))
    if raw_tab.open or merged_tab.open:
        close = seam_pictures(item, pred)  # the seam where merging removed the most boxes, at full resolution
    if raw_tab.open:
        with raw_tab:
            raw = pred.raw.filter(conf=pred.merge.conf, classes=pred.merge.classes)
            st.markdown(f"**{len(raw)} raw boxes** from {len(pred.tiles)} tiles: {len(raw) - len(merged)} of them "
                        "are the same object seen again by a neighbouring tile, or a piece of one cut by a tile's "
                        "edge." + (" Up close, where tiles overlap, coloured by tile:" if close else ""))
            if close:
                show(st, close.before, f"{len(close.raw_idx)} raw boxes in {close.seam.window[2] - close.seam.window[0]}"
                     f" px of the overlap of tiles {close.seam.first} and {close.seam.second}, drawn 2x")
    if merged_tab.open:
        with merged_tab:
            st.markdown(f"**{len(merged)} objects after merging.**" + (" The same place as in step 2:" if close else ""))
            if close:
                show(st, close.after, f"{close.n_after} boxes after merging (there were {len(close.raw_idx)})")
            show(st, annotate(item.image, merged), f"All {len(merged)} objects after merging, on the whole image")


CLASS_MAP_TEXT = ("Every pixel coloured by the class the segmentation model gives it, from its masks on "
                  "half-overlapping tiles blended without seams (tiling.stitch_dense); pale grey: no object.")


def dense(item: ImageItem, cmap: np.ndarray, names: dict[int, str]) -> None:
    preview, _ = downscale(colorize_class_map(cmap, image=item.image), PREVIEW_SIDE)
    present = [int(c) for c in np.unique(cmap) if c >= 0]
    st.html(legend({c: names.get(c, str(c)) for c in present}))
    show(st, preview, "Class map: each class in its colour over a pale copy of the image")
