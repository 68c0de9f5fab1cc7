"""The detections tab: the table of the patch-based result, its files to download, and the zip of every
image's results."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

import tiling
from tiling.names import stem_of

from .resources import ImageItem


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
