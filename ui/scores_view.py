"""The Scores tab: precision, recall and AP50 of both modes against the image's labels, scored as the
CLI's ``evaluate`` scores them (tiling.evaluate.score_table), and why each false positive is one, with
pictures of a few."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

import tiling
from tiling.error_causes import Cause, FalsePositives, cause_sentence, false_positive_causes
from tiling.evaluate import score_table

from .pictures import annotate, show
from .resources import ImageItem

MISSED = (0, 0, 255)  # red dashed: ground truth nobody found
FALSE_POS = (0, 215, 255)  # amber: prediction matching no ground truth
LABEL = (80, 200, 60)  # green: the labelled object next to a false positive
CROP_SIDE = 96  # px of the image around a false positive, shown 2x
CROPS_PER_CAUSE = 4
METRICS = ("precision", "recall", "AP50")


def number(value) -> str:
    """A score as text: three decimals, a dash where it is undefined (never "None" or "nan")."""
    return "–" if value is None or pd.isna(value) else f"{value:.3f}"


def scores(item: ImageItem, full_all: tiling.Detections, tiled_all: tiling.Detections, conf: float,
           floor: float) -> None:
    """``full_all`` and ``tiled_all``: every box down to the model's floor ``floor``; the page shows those
    at ``conf`` and above."""
    gt = item.labels
    full, tiled = full_all.filter(conf=conf), tiled_all.filter(conf=conf)
    frame = score_table([full_all], [tiled_all], [gt], conf)
    st.markdown(f"**Scored as `patchwise evaluate` scores:** precision and recall count the boxes shown, at "
                f"confidence **{conf:.2f}** and above (the sidebar's slider); AP50 ranks every box the model gave, "
                f"down to confidence {floor:.2f}, so it does not move with the slider. (The CLI ranks down to "
                "0.001, so its AP50 can be slightly higher.)")
    st.dataframe(frame[["mode", "class", *METRICS]].style.format({m: number for m in METRICS}), hide_index=True,
                 width="stretch")
    for column, drawn in zip(st.columns(len(METRICS), gap="small"), charts(frame)):
        column.altair_chart(drawn, width="stretch")
    ev_full, ev_tiled = tiling.evaluate(full, gt), tiling.evaluate(tiled, gt)
    fp_full = false_positive_causes(full, gt, ev_full.tp[0])
    fp_tiled = false_positive_causes(tiled, gt, ev_tiled.tp[0])
    if ev_full.tp[0].sum() == 0:
        st.info(f"The full-image pass found none of the {len(gt)} labelled objects: its recall is 0 and its "
                "precision undefined (a dash) when it drew no box at all.")
    st.markdown(f"**Full image:** {cause_sentence(fp_full, len(full))}.  \n"
                f"**Patches:** {cause_sentence(fp_tiled, len(tiled))}.")
    left, right = st.columns(2, gap="small")
    for column, name, det, ev, fps in ((left, "Full image", full, ev_full, fp_full),
                                       (right, "Patches", tiled, ev_tiled, fp_tiled)):
        missed = gt[ev.fn[0]]
        show(column, annotate(item.image, det, extra=[(missed, MISSED, True), (det[fps.index], FALSE_POS, False)]),
             f"{name}: {len(missed)} of {len(gt)} labelled objects missed (red dashed), {len(fps.index)} false "
             "positives (amber)")
    gallery(item, tiled, fp_tiled, "patches")
    gallery(item, full, fp_full, "the full image")


def charts(frame: pd.DataFrame) -> list[alt.LayerChart]:
    """One chart per metric, classes down the side and the two modes as bars, every value written at its
    bar's end (a zero shows as "0.000", an undefined value as a dash), so nothing is invisible."""
    long = frame.melt(id_vars=["mode", "class"], value_vars=list(METRICS), var_name="metric")
    long["text"] = long["value"].map(number)
    long["bar"] = long["value"].fillna(0.0)
    out = []
    for metric in METRICS:
        base = alt.Chart(long[long["metric"] == metric]).encode(
            y=alt.Y("class:N", sort=list(dict.fromkeys(frame["class"])), title=None), yOffset="mode:N")
        bars = base.mark_bar().encode(
            x=alt.X("bar:Q", scale=alt.Scale(domain=[0, 1.3]), title=metric, axis=alt.Axis(values=[0, 0.5, 1])),
            color=alt.Color("mode:N", legend=alt.Legend(orient="top", title=None)),
            tooltip=["mode", "class", alt.Tooltip("text:N", title=metric)])
        text = base.mark_text(align="left", dx=3, fontSize=11).encode(x="bar:Q", text="text:N")
        out.append(alt.layer(bars, text).properties(height=70 + 56 * frame["class"].nunique()))
    return out


def gallery(item: ImageItem, det: tiling.Detections, fps: FalsePositives, mode: str) -> None:
    """A few false positives of each cause, cut out at twice their size with the labels around them."""
    if len(fps.index) == 0:
        return
    st.markdown(f"**False positives of {mode}, up close** (amber: the box, green: the labelled objects there)")
    for cause in Cause:
        chosen = fps.of(cause)[:CROPS_PER_CAUSE]
        if len(chosen) == 0:
            continue
        columns = st.columns(CROPS_PER_CAUSE, gap="small")
        for column, k in zip(columns, chosen):
            at = int(np.flatnonzero(fps.index == k)[0])
            label = int(fps.best_label[at])
            c = int(item.labels.class_id[label]) if label >= 0 else -1
            on = (f" on a {item.labels.names.get(c, det.names.get(c, str(c)))}, IoU {fps.best_iou[at]:.2f}"
                  if label >= 0 else ", on no labelled object")
            name = det.names.get(int(det.class_id[k]), str(int(det.class_id[k])))
            column.image(close_up(item, det[[int(k)]]), caption=f"{cause.value}: {name} {det.confidence[k]:.2f}{on}",
                         width="stretch", channels="BGR")


def close_up(item: ImageItem, one: tiling.Detections) -> np.ndarray:
    """The image around one detection (at least CROP_SIDE px), its box amber and the labels green, 2x."""
    h, w = item.shape[:2]
    x0, y0, x1, y1 = one.xyxy[0]
    side = int(max(CROP_SIDE, x1 - x0 + 24, y1 - y0 + 24))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(np.clip(cx - side / 2, 0, max(0, w - side)))
    top = int(np.clip(cy - side / 2, 0, max(0, h - side)))
    window = (left, top, min(w, left + side), min(h, top + side))
    crop = np.ascontiguousarray(item.image[window[1]:window[3], window[0]:window[2]])
    big = np.repeat(np.repeat(crop, 2, axis=0), 2, axis=1)
    gt = item.labels
    near = (gt.xyxy[:, 2] > window[0]) & (gt.xyxy[:, 0] < window[2]) & (gt.xyxy[:, 3] > window[1]) & (
        gt.xyxy[:, 1] < window[3])
    labels = gt[near].shifted(-window[0], -window[1]).scaled(2.0)
    out = tiling.draw_detections(big, labels, color=LABEL, labels=False, masks=False, line_width=2)
    return tiling.draw_detections(out, one.shifted(-window[0], -window[1]).scaled(2.0), color=FALSE_POS,
                                  masks=False, line_width=2)
