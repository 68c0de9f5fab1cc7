"""The main page's sections: results side by side, the tab names, teaching steps, scores, the class map.
The zoom and detections tabs have a module each (``zoom_view``, ``table_view``)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import tiling
from tiling.draw import colorize_class_map, downscale

from .pictures import PREVIEW_SIDE, annotate, legend, preview_of, scale_tiles, show
from .resources import ImageItem

ZOOM, STEPS, TABLE, SCORES = (":material/zoom_in: Zoom", ":material/school: Step by step",
                               ":material/table: Detections", ":material/analytics: Scores")
CLASS_MAP = ":material/map: Class map"  # a tab for segmentation models only (ui.tabs)
MISSED = (0, 0, 255)  # red dashed: ground truth nobody found
FALSE_POS = (0, 215, 255)  # amber: prediction matching no ground truth


def side_by_side(item: ImageItem, full: tiling.Detections, tiled: tiling.Detections, patch_only: np.ndarray,
                 pred: tiling.TiledPrediction, full_time: float | None, show_grid: bool, cached: bool = False) -> None:
    left, right = st.columns(2, gap="small")
    with left:
        st.subheader("Full image")
        # A delta on both sides keeps the two pictures level.
        st.metric("Objects found", len(full), delta="one pass, shrunk to the model's input", delta_color="off",
                  delta_arrow="off")
        show(st, annotate(item.image, full), f"Whole image shrunk to the model's input: {item.name}")
        if full_time is not None:
            st.caption(f"{full_time:.2f} s" if full_time >= 0.01 else "from the cache (no model call)")
    with right:
        st.subheader("Patch-based")
        st.metric("Objects found", len(tiled), delta=f"{int(patch_only.sum())} only by patches" if len(tiled) else
                  "none found", delta_color="normal" if len(tiled) else "off", delta_arrow="auto" if len(tiled) else "off")
        show(st, annotate(item.image, tiled, patch_only, pred.tiles if show_grid else None),
             f"{len(pred.tiles)} tiles; magenta halo: found only by patches")
        t = pred.timings
        ran = (f"{t.get('total', 0):.2f} s in all: model {t.get('infer', 0):.2f} s, merge "
               f"{t.get('merge', 0) * 1000:.0f} ms")
        st.caption(f"from the cache (no model call); it took {ran} when it ran" if cached else ran)


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
    if raw_tab.open:
        with raw_tab:
            raw = pred.raw.filter(conf=pred.merge.conf, classes=pred.merge.classes)
            by_tile = tiling.Detections(raw.xyxy, raw.confidence,
                                        raw.data.get("tile_index", np.zeros(len(raw))) % 20, names={}, obb=raw.obb)
            show(st, annotate(item.image, by_tile), f"{len(raw)} raw boxes, coloured by the tile that produced them: "
                 f"{len(raw) - len(merged)} are duplicates or pieces at the overlaps")
    if merged_tab.open:
        with merged_tab:
            show(st, annotate(item.image, merged), f"{len(merged)} objects after merging")


CLASS_MAP_TEXT = ("Every pixel coloured by the class the segmentation model gives it, from its masks on "
                  "half-overlapping tiles blended without seams (tiling.stitch_dense); pale grey: no object.")


def dense(item: ImageItem, cmap: np.ndarray, names: dict[int, str]) -> None:
    preview, _ = downscale(colorize_class_map(cmap, image=item.image), PREVIEW_SIDE)
    present = [int(c) for c in np.unique(cmap) if c >= 0]
    st.html(legend({c: names.get(c, str(c)) for c in present}))
    show(st, preview, "Class map: each class in its colour over a pale copy of the image")


def scores(item: ImageItem, full: tiling.Detections, tiled: tiling.Detections) -> None:
    """Precision, recall and AP50 of both modes against the image's labels, and where each went wrong."""
    gt = item.labels
    ev_full, ev_tiled = tiling.evaluate(full, gt), tiling.evaluate(tiled, gt)
    rows = []
    for mode, ev in (("full image", ev_full), ("patches", ev_tiled)):
        rows.append({"mode": mode, "class": "all", "precision": ev.precision, "recall": ev.recall, "AP50": ev.ap50})
        for _, r in ev.per_class.iterrows():
            if r["n_gt"] > 0:
                rows.append({"mode": mode, "class": r["class"], "precision": r["precision"], "recall": r["recall"],
                             "AP50": r["ap50"]})
    frame = pd.DataFrame(rows)
    if ev_full.tp[0].sum() == 0:
        st.info(f"The full-image pass found none of the {len(gt)} labelled objects"
                + (f" (its {len(full)} boxes are all false positives, amber below)" if len(full) else "")
                + ": its bars are at zero, and its precision is undefined (a dash) when it found nothing at all.")
    number = lambda v: "–" if v is None or pd.isna(v) else f"{v:.3f}"  # noqa: E731  undefined: a dash, not "None"
    st.dataframe(frame.style.format({"precision": number, "recall": number, "AP50": number}), hide_index=True,
                 width="stretch")
    long = frame.melt(id_vars=["mode", "class"], value_vars=["precision", "recall", "AP50"], var_name="metric")
    long["class · metric"] = long["class"] + " · " + long["metric"]
    st.bar_chart(long, x="class · metric", y="value", color="mode", stack=False, height=300)
    missed = gt[ev_tiled.fn[0]]
    false_pos = tiled[~ev_tiled.tp[0]]
    missed_full = gt[ev_full.fn[0]]
    false_full = full[~ev_full.tp[0]]
    left, right = st.columns(2, gap="small")
    show(left, annotate(item.image, full, extra=[(missed_full, MISSED, True), (false_full, FALSE_POS, False)]),
         f"Full image: {len(missed_full)} of {len(gt)} labelled objects missed (red dashed), "
         f"{len(false_full)} false positives (amber)")
    show(right, annotate(item.image, tiled, extra=[(missed, MISSED, True), (false_pos, FALSE_POS, False)]),
         f"Patches: {len(missed)} missed (red dashed), {len(false_pos)} false positives (amber)")
