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
    st.markdown("The whole image is shrunk to the model's input; tiles keep every object at its real size, and "
                "smaller tiles mean more of them to run. One click runs this image at every tile size below and "
                "draws what each finds and the time it takes"
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
    for column, drawn in zip(st.columns(2, gap="medium"), charts(frame, "ap50" if item.labels is not None else "objects")):
        column.altair_chart(drawn, width="stretch")
    shown = frame[["tile size", "tiles", "objects", "seconds", *(["ap50"] if item.labels is not None else [])]]
    st.dataframe(shown, hide_index=True, width="stretch")
    st.caption("The ringed point is the tile size set in the sidebar. Times are for this server, as it ran. "
               "Tiles run at the image's own resolution, so every tile size shows objects at their real size: "
               "what changes with the size is the number of tiles (the time), not what one tile can see.")


def charts(frame: pd.DataFrame, y: str) -> tuple[alt.LayerChart, alt.LayerChart]:
    """Two panels over the tile sizes, in the sweep's order (whole image first, then smaller and smaller
    tiles), labels level: what each finds (or its AP50) and the seconds it took; the current size ringed."""
    title = {"objects": "objects found", "ap50": "AP50 against your labels"}[y]
    order = list(frame["tile size"])
    x = alt.X("tile size:N", sort=order, title="tile size", axis=alt.Axis(labelAngle=0, labelLimit=90))
    tip = ["tile size", "tiles", "objects", "seconds", *(["ap50"] if y == "ap50" else [])]

    def panel(field: str, name: str, colour: str) -> alt.LayerChart:
        base = alt.Chart(frame).encode(x=x, y=alt.Y(f"{field}:Q", title=name, scale=alt.Scale(zero=True)))
        line = base.mark_line(color=colour, strokeWidth=2)
        points = base.mark_circle(size=110, color=colour, opacity=1).encode(tooltip=tip)
        ring = base.transform_filter("datum.current").mark_point(size=420, color="#1565C0", strokeWidth=3)
        text = base.mark_text(dy=-14, fontSize=12).encode(text=alt.Text(f"{field}:Q", format=".2f" if field != "objects"
                                                                         else "d"))
        return alt.layer(line, points, ring, text).properties(height=260, title=name)

    return panel(y, title, "#C2185B"), panel("seconds", "seconds it took", "#455A64")
