"""The Seam tab: where two tiles overlap and merging did the most work, at full resolution: the raw boxes
from each tile (coloured by tile), then the merged answer, and the rule that merged each pair."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import tiling
from tiling.draw import draw_numbers
from tiling.merge import explain
from tiling.seams import busiest_seam, in_window, merged_pairs

from .resources import ImageItem

SEAM = ":material/join_inner: Seam"
ZOOM = 2  # the window is drawn this many times larger: a 10 px object becomes 20 screen px
TILE_COLOURS = ((255, 255, 0), (0, 140, 255), (255, 255, 255), (200, 0, 255))  # BGR: cyan, orange, white, violet


def seam_tab(item: ImageItem, pred: tiling.TiledPrediction) -> None:
    raw = pred.raw
    why = explain(raw, pred.merge)
    away = ~why.kept & (why.owner >= 0)
    seam = busiest_seam(pred.tiles, raw, away, item.shape[:2])
    if seam is None:
        st.info("Merging removed nothing on this image: no two tiles found the same object. Try smaller tiles "
                "or more overlap in the sidebar.")
        return
    x0, y0, x1, y1 = seam.window
    shown = in_window(raw, seam.window) & (why.owner >= 0)
    merged = pred.detections[in_window(pred.detections, seam.window)]
    idx = np.flatnonzero(shown)
    number = {int(k): n for n, k in enumerate(idx, 1)}
    tiles_here = list(dict.fromkeys(int(t) for t in raw.data["tile_index"][idx]))
    colour = {t: TILE_COLOURS[k % len(TILE_COLOURS)] for k, t in enumerate(tiles_here)}
    st.markdown(f"The overlap of tiles **{seam.first}** and **{seam.second}** is where merging removed the most "
                f"boxes ({seam.merged_away}). Below, {x1 - x0} x {y1 - y0} px of it at x {x0}-{x1}, y {y0}-{y1}, "
                f"drawn {ZOOM}x: every tile that sees an object there reports it, so before merging one object "
                "has two or four boxes.")
    crop = np.repeat(np.repeat(item.image[y0:y1, x0:x1], ZOOM, axis=0), ZOOM, axis=1)
    left, right = st.columns(2, gap="small")
    before = _raw_picture(crop, raw[idx], [number[int(k)] for k in idx], [colour[int(t)] for t in
                          raw.data["tile_index"][idx]], pred.tiles, tiles_here, colour, seam.window)
    left.metric("Boxes before merging", len(idx), delta="from every tile here", delta_color="off", delta_arrow="off")
    left.image(before, channels="BGR", width="stretch",
               caption="Raw boxes, coloured by tile: " + ", ".join(f"tile {t}" for t in tiles_here)
               + " (the lines are those tiles' edges)")
    right.metric("Boxes after merging", len(merged), delta=f"{len(idx) - len(merged)} duplicates removed",
                 delta_color="off", delta_arrow="off")
    after = tiling.draw_detections(crop, merged.shifted(-x0, -y0).scaled(ZOOM), line_width=2, labels=False,
                                   masks=False)
    right.image(after, channels="BGR", width="stretch",
                caption=f"After merging ({pred.merge.method.upper()} by {pred.merge.metric.upper()} at "
                        f"{pred.merge.threshold:.2f}): one box per object, in its class colour")
    pairs = merged_pairs(why.owner, why.value, why.rule, shown)
    if pairs:
        st.markdown("**Which rule merged each pair** (numbers as in the left picture)")
        st.dataframe(_pairs_frame(raw, pairs, number), hide_index=True, width="stretch")


def _raw_picture(crop: np.ndarray, raw: tiling.Detections, numbers: list[int], colours: list[tuple],
                 tiles, tiles_here: list[int], colour: dict, window) -> np.ndarray:
    """The raw boxes in their tiles' colours, numbered, with those tiles' edges across the window."""
    x0, y0 = window[:2]
    out = crop.copy()
    for t in tiles_here:
        if t < 0:
            continue
        tile = tiles[t]
        edge = tiling.Tile((tile.x0 - x0) * ZOOM, (tile.y0 - y0) * ZOOM, (tile.x1 - x0) * ZOOM, (tile.y1 - y0) * ZOOM)
        out = tiling.draw_tiles(out, [edge], color=colour[t], line_width=2, alpha=0.9)
    small = raw.shifted(-x0, -y0).scaled(ZOOM)
    for k in range(len(small)):
        out = tiling.draw_detections(out, small[[k]], color=colours[k], labels=False, masks=False, line_width=2)
    return draw_numbers(out, small.xyxy, numbers, colours)


def _pairs_frame(raw: tiling.Detections, pairs, number: dict[int, int]) -> pd.DataFrame:
    tile = raw.data["tile_index"]

    def who(k: int) -> str:
        name = raw.names.get(int(raw.class_id[k]), str(int(raw.class_id[k])))
        source = f"tile {int(tile[k])}" if tile[k] >= 0 else "full image"
        return f"#{number.get(k, '?')} {name} {raw.confidence[k]:.2f} ({source})"

    return pd.DataFrame([{"box removed": who(p.dropped), "merged into": who(p.owner) if p.owner in number else
                          f"{who(p.owner)}, outside this window", "rule": p.rule, "overlap": round(p.value, 2)}
                         for p in pairs])
