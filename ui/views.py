"""The main page's sections: results side by side, zoom, teaching steps, table, downloads, scores."""
from __future__ import annotations

import json
import weakref
from collections import OrderedDict

import numpy as np
import pandas as pd
import streamlit as st

import tiling
from tiling.draw import colorize_class_map, downscale, line_width_for
from tiling.names import stem_of

from .resources import ImageItem

ZOOM, STEPS, TABLE, SCORES = (":material/zoom_in: Zoom", ":material/school: Step by step",
                               ":material/table: Detections", ":material/analytics: Scores")
VIEWS = (ZOOM, STEPS, TABLE, SCORES)  # the tabs under the side-by-side pictures
CLASS_MAP = ":material/map: Class map"  # a fifth tab for segmentation models
LABELLED_AT_MOST = 100  # boxes: past this, class labels on every box turn the picture into a wall of text
PREVIEW_SIDE = 1400  # px: what the browser gets (Streamlit re-encodes anything over 1460); analysis is full-size
HIGHLIGHT = (255, 0, 255)  # BGR magenta: found only by patches
MISSED = (0, 0, 255)  # red dashed: ground truth nobody found
FALSE_POS = (0, 215, 255)  # amber: prediction matching no ground truth


def annotate(image: np.ndarray, det: tiling.Detections, highlight: np.ndarray | None = None, tiles=None,
             max_side: int = PREVIEW_SIDE, extra: list[tuple[tiling.Detections, tuple, bool]] = ()) -> np.ndarray:
    """A downscaled picture of ``det`` on ``image``; ``highlight`` marks some detections with a halo."""
    preview, scale = _preview(image, max_side)
    small = det.scaled(scale)
    if tiles is not None:
        preview = tiling.draw_tiles(preview, _scale_tiles(tiles, scale), color=(255, 255, 255), alpha=0.5)
    lw = line_width_for(preview.shape)
    if highlight is not None and highlight.any():
        halo = small[highlight]
        pad = lw + 2
        halo.xyxy = halo.xyxy + np.array([-pad, -pad, pad, pad], np.float32)
        if halo.obb is not None:  # a rotated box's halo is the same box, grown on every side
            halo.obb = halo.obb + np.array([0, 0, 2 * pad, 2 * pad, 0], np.float32)
        preview = tiling.draw_detections(preview, halo, color=HIGHLIGHT, labels=False, masks=False,
                                         line_width=max(1, lw // 2))
    preview = tiling.draw_detections(preview, small, labels=max(preview.shape) >= 1200 and len(det) <= LABELLED_AT_MOST,
                                     line_width=lw)
    for other, colour, dashed in extra:
        preview = tiling.draw_detections(preview, other.scaled(scale), color=colour, dashed=dashed, labels=False,
                                         masks=False, line_width=lw + 1)
    return preview


def _scale_tiles(tiles, scale: float) -> list[tiling.Tile]:
    return [tiling.Tile(int(t.x0 * scale), int(t.y0 * scale), int(t.x1 * scale), int(t.y1 * scale), t.index, t.row,
                        t.col) for t in tiles]


_PREVIEWS: OrderedDict = OrderedDict()


def _preview(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The downscaled copy of a full-resolution image, made once per image (every tab draws on it)."""
    key = (id(image), max_side)
    hit = _PREVIEWS.get(key)
    if hit is not None and hit[0]() is image:
        _PREVIEWS.move_to_end(key)
        return hit[1], hit[2]
    preview, scale = downscale(image, max_side)
    if scale == 1.0:  # nothing was computed: keep no reference
        return preview, scale
    _PREVIEWS[key] = (weakref.ref(image), preview, scale)
    while len(_PREVIEWS) > 24:
        _PREVIEWS.popitem(last=False)
    return preview, scale


def show(target, image: np.ndarray, caption: str) -> None:
    """A BGR picture sent as one JPEG we encode ourselves.

    Given an array, Streamlit encodes a quality-100 JPEG, decodes it again and re-encodes it when it is
    wider than its content width: three codec passes per picture on every rerun. This is one.
    """
    target.image(tiling.formats.encode_jpeg(image, 85), caption=caption, width="stretch", output_format="JPEG")


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
    left, right = st.columns(2, gap="small")
    show(left, annotate(crop, _crop_dets(full, x0, y0, x1, y1), max_side=10_000),
         f"Full image, x {x0}-{x1}, y {y0}-{y1}")
    show(right, annotate(crop, _crop_dets(tiled, x0, y0, x1, y1), halo, max_side=10_000), "Patch-based, same region")


OVERVIEW_SIDE = 640
GRID_CELLS = 32  # clickable cells along the long side of the overview


def _clicked_cell(state) -> tuple[int, int] | None:
    try:
        points = state["selection"]["cell"]
        return (int(points[0]["cx"]), int(points[0]["cy"])) if points else None
    except (KeyError, IndexError, TypeError):
        return None


def _overview_chart(item: ImageItem, det: tiling.Detections, region: tuple[int, int, int, int]):
    """A small picture of the whole image covered by invisible clickable cells, the region outlined."""
    import base64

    import altair as alt

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
            preview, scale = _preview(item.image, PREVIEW_SIDE)
            tiles = _scale_tiles(pred.tiles, scale)
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


def legend(names: dict[int, str]) -> str:
    """HTML chips, one per class, in the colours the pictures use."""
    import html

    chips = []
    for c, name in sorted(names.items()):
        b, g, r = tiling.class_color(c)
        chips.append(f'<span style="display:inline-block;margin:0 14px 4px 0"><span style="display:inline-block;'
                     f'width:14px;height:14px;border-radius:3px;vertical-align:-2px;margin-right:6px;'
                     f'background:rgb({r},{g},{b})"></span>{html.escape(name)}</span>')
    return "<div>" + ("".join(chips) or "No object of any class was found.") + "</div>"


def table(frame: pd.DataFrame) -> None:
    st.dataframe(frame, width="stretch", hide_index=True, height=320)


def detections_frame(tiled: tiling.Detections, patch_only: np.ndarray) -> pd.DataFrame:
    frame = tiled.to_dataframe()
    frame.insert(2, "found by", np.where(patch_only, "patches only", "both"))
    if tiled.keypoints is not None:  # one column, not three per point: how many of the points the model saw
        seen = (tiled.keypoints[..., 2] >= tiling.formats.KEYPOINT_VISIBLE).sum(axis=1)
        frame["keypoints seen"] = [f"{int(k)} of {tiled.keypoints.shape[1]}" for k in seen]
    keep = [c for c in ("class", "found by", "confidence", "x0", "y0", "x1", "y1", "width", "height", "cx", "cy",
                        "obb_w", "obb_h", "angle_deg", "keypoints seen", "mask_area", "truncated") if c in frame.columns]
    return frame[keep]


def export_zip(results: dict[str, tuple[ImageItem, tiling.Detections, tiling.Detections]], png: bool = False,
               progress=None) -> bytes:
    """The zip of every image's results (``tiling.formats.results_zip``), from the page's items."""
    return tiling.formats.results_zip({name: (item.image, full, det) for name, (item, full, det) in results.items()},
                                     png=png, progress=progress)


def downloads(item: ImageItem, full: tiling.Detections, tiled: tiling.Detections) -> None:
    stem = stem_of(item.name)
    st.caption("The files hold the patch-based result, as in the table; the full-image result is the last "
               "picture.")
    cols = st.columns(7 if tiled.obb is not None else 6)
    cols[0].download_button("CSV", tiling.to_csv(tiled), f"{stem}.csv", "text/csv", on_click="ignore",
                            icon=":material/download:", key="dl_csv")
    cols[1].download_button("JSON", tiling.to_json(tiled), f"{stem}.json", "application/json", on_click="ignore",
                            icon=":material/download:", key="dl_json")
    coco = tiling.formats.to_coco_dataset({item.name: (item.shape, tiled)}, tiled.names)
    cols[2].download_button("COCO JSON", json.dumps(coco), f"{stem}_coco.json", "application/json",
                            on_click="ignore", icon=":material/download:", key="dl_coco",
                            help="A whole COCO file (images, categories, annotations with scores) that pycocotools "
                                 "loads.")
    cols[3].download_button("YOLO txt", tiling.to_yolo_txt(tiled, item.image.shape), f"{stem}.txt", "text/plain",
                            on_click="ignore", icon=":material/download:", key="dl_yolo",
                            help="YOLO-OBB corner lines for oriented boxes" if tiled.obb is not None else None)
    if tiled.obb is not None:
        cols[6].download_button("DOTA txt", tiling.formats.to_dota_txt(tiled, with_conf=True), f"{stem}_dota.txt",
                                "text/plain", on_click="ignore", icon=":material/download:", key="dl_dota",
                                help="One oriented box a line: four corners in pixels, class, difficulty 0, "
                                     "confidence.")
    cols[4].download_button("Patches PNG", lambda: tiling.encode_png(tiling.draw_detections(item.image, tiled)),
                            f"{stem}_patches.png", "image/png", on_click="ignore", icon=":material/image:",
                            key="dl_png_tiled")
    cols[5].download_button("Full PNG", lambda: tiling.encode_png(tiling.draw_detections(item.image, full)),
                            f"{stem}_full.png", "image/png", on_click="ignore", icon=":material/image:",
                            key="dl_png_full")


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
