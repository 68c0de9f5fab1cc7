"""The "Which tile size?" tab: one click sweeps tile sizes on the current image and charts the trade-off."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

import tiling

from . import resources as res

SWEEP = ":material/insights: Which tile size?"
_SWEEPS = res.SharedCache(max_entries=16, ttl=3600)


def _label(size: int) -> str:
    return "whole image" if size == 0 else f"{size} px"


def sweep_tab(item: res.ImageItem, model, model_key: str, settings) -> None:
    st.markdown("Smaller tiles show small objects larger, but there are more of them to run. One click runs "
                "this image at every tile size below and draws what each finds against the time it takes"
                + (" (and its AP50 against your labels)." if item.labels is not None else "."))
    key = (item.key, model_key, settings.tiles.overlap, settings.infer, settings.merge, item.labels is not None)
    if st.button("Run the sweep", key="sweep_go", icon=":material/play_arrow:",
                 help="Runs the model once per tile size: whole image, 1280, 960, 640, 480 and 320 px."):
        st.session_state["sweep_for"] = key
    if st.session_state.get("sweep_for") != key:
        return
    bar = st.progress(0.0, text="Trying tile sizes…")
    rows = _SWEEPS.get(key, lambda: tiling.sweep_tile_sizes(
        item.image, model, tiles=settings.tiles, infer=settings.infer, merge=settings.merge, labels=item.labels,
        progress=lambda done, total: bar.progress(done / total, text=f"Tile size {done} of {total}")))
    bar.empty()
    frame = pd.DataFrame(rows)
    frame["tile size"] = frame["size"].map(_label)
    frame["current"] = frame["size"] == settings.tiles.size_xy[0]
    st.altair_chart(chart(frame, "ap50" if item.labels is not None else "objects"), width="stretch")
    shown = frame[["tile size", "tiles", "objects", "seconds", *(["ap50"] if item.labels is not None else [])]]
    st.dataframe(shown, hide_index=True, width="stretch")
    st.caption("The ringed point is the tile size set in the sidebar. Times are for this server, as it ran.")


def chart(frame: pd.DataFrame, y: str) -> alt.LayerChart:
    """Seconds against objects found (or AP50), a point per tile size, the current one ringed."""
    title = {"objects": "objects found", "ap50": "AP50 against your labels"}[y]
    base = alt.Chart(frame).encode(x=alt.X("seconds:Q", title="seconds"), y=alt.Y(f"{y}:Q", title=title))
    points = base.mark_circle(size=120, color="#C2185B").encode(tooltip=["tile size", "tiles", "objects", "seconds"])
    ring = base.transform_filter("datum.current").mark_point(size=420, color="#1565C0", strokeWidth=3)
    text = base.mark_text(align="left", dx=9, dy=-9, fontSize=13).encode(text="tile size:N")
    return alt.layer(points, ring, text).properties(height=320)
