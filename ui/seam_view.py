"""The Seam tab: where two tiles overlap and merging did the most work, at full resolution: the raw boxes
from each tile (coloured by tile), then the merged answer, and the rule that merged each pair."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

import tiling
from tiling.draw import draw_numbers
from tiling.merge import MergeExplanation, explain
from tiling.seams import Seam, busiest_seam, in_window, merged_pairs

from .resources import ImageItem

SEAM = ":material/join_inner: Seam"
ZOOM = 2  # the window is drawn this many times larger: a 10 px object becomes 20 screen px
TILE_COLOURS = ((255, 255, 0), (0, 140, 255), (255, 255, 255), (200, 0, 255))  # BGR: cyan, orange, white, violet


@dataclass
class SeamPictures:
    """The busiest seam's window drawn before and after merging (ZOOM times larger), and what they show."""

    seam: Seam
    before: np.ndarray
    after: np.ndarray
    raw_idx: np.ndarray  # indices into the raw detections drawn in ``before``, numbered from 1
    n_after: int
    tiles_here: list[int]
    why: MergeExplanation


def seam_pictures(item: ImageItem, pred: tiling.TiledPrediction) -> SeamPictures | None:
    """The pictures of the seam where merging removed the most boxes; None when it removed none."""
    raw = pred.raw
    why = explain(raw, pred.merge)
    seam = busiest_seam(pred.tiles, raw, ~why.kept & (why.owner >= 0), item.shape[:2])
    if seam is None:
        return None
    x0, y0, x1, y1 = seam.window
    idx = np.flatnonzero(in_window(raw, seam.window) & (why.owner >= 0))
    merged = pred.detections[in_window(pred.detections, seam.window)]
    tile_of = raw.data["tile_index"][idx]
    tiles_here = list(dict.fromkeys(int(t) for t in tile_of))
    colour = {t: TILE_COLOURS[k % len(TILE_COLOURS)] for k, t in enumerate(tiles_here)}
    crop = np.repeat(np.repeat(item.image[y0:y1, x0:x1], ZOOM, axis=0), ZOOM, axis=1)
    before = _raw_picture(crop, raw[idx], list(range(1, len(idx) + 1)), [colour[int(t)] for t in tile_of],
                          pred.tiles, tiles_here, colour, seam.window)
    after = tiling.draw_detections(crop, merged.shifted(-x0, -y0).scaled(ZOOM), line_width=2, labels=False,
                                   masks=False)
    return SeamPictures(seam, before, after, idx, len(merged), tiles_here, why)


def seam_tab(item: ImageItem, pred: tiling.TiledPrediction) -> None:
    pics = seam_pictures(item, pred)
    if pics is None:
        st.info("Merging removed nothing on this image: no two tiles found the same object. Try smaller tiles "
                "or more overlap in the sidebar.")
        return
    seam, n_before = pics.seam, len(pics.raw_idx)
    x0, y0, x1, y1 = seam.window
    st.markdown(f"The overlap of tiles **{seam.first}** and **{seam.second}** is where merging removed the most "
                f"boxes ({seam.merged_away}). Below, {x1 - x0} x {y1 - y0} px of it at x {x0}-{x1}, y {y0}-{y1}, "
                f"drawn {ZOOM}x: every tile that sees an object there reports it, so before merging one object "
                "has two or four boxes.")
    with st.container(key="pair-seam"):  # side by side on a phone too (ui.page_style)
        left, right = st.columns(2, gap="small")
    left.metric("Boxes before merging", n_before, delta="from every tile here", delta_color="off", delta_arrow="off")
    left.image(pics.before, channels="BGR", width="stretch",
               caption="Raw boxes, coloured by tile: " + ", ".join(f"tile {t}" for t in pics.tiles_here)
               + " (the lines are those tiles' edges)")
    right.metric("Boxes after merging", pics.n_after, delta=f"{n_before - pics.n_after} duplicates removed",
                 delta_color="off", delta_arrow="off")
    right.image(pics.after, channels="BGR", width="stretch",
                caption=f"After merging ({pred.merge.method.upper()} by {pred.merge.metric.upper()} at "
                        f"{pred.merge.threshold:.2f}): one box per object, in its class colour")
    shown = np.zeros(len(pred.raw), bool)
    shown[pics.raw_idx] = True
    pairs = merged_pairs(pics.why.owner, pics.why.value, pics.why.rule, shown)
    if pairs:
        number = {int(k): n for n, k in enumerate(pics.raw_idx, 1)}
        st.markdown("**Which rule merged each pair** (numbers as in the left picture)")
        st.dataframe(_pairs_frame(pred.raw, pairs, number), hide_index=True, width="stretch")


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
