"""Sidebar controls. Each function draws one section and returns plain values."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from . import resources as res


@dataclass
class Settings:
    tile_size: int
    auto_tile: bool
    overlap: float
    conf: float
    iou: float
    merge: str
    metric: str
    merge_threshold: float
    class_agnostic: bool
    full_imgsz: int
    include_full: bool
    batch_size: int
    show_grid: bool

    @property
    def raw_conf(self) -> float:
        """The model runs once at this confidence; the slider above it only re-filters."""
        return min(0.05, self.conf)


def model_section():
    """Returns (choice label, runtime name, uploaded file or None)."""
    st.header("1. Model")
    choices = [*res.BUNDLED_MODELS, *res.OFFICIAL_MODELS, res.UPLOAD_MODEL]
    choice = st.selectbox(
        "Model", choices, key="model_choice",
        help="The bundled demo models work offline; official names need internet; or upload your own weights.",
    )
    runtime = st.radio(
        "Runtime", list(res.RUNTIME_CHOICES), key="runtime",
        help="Auto runs an OpenVINO/ONNX copy of the model made once for this CPU; PyTorch shows the difference.",
    )
    upload = None
    if choice == res.UPLOAD_MODEL:
        upload = st.file_uploader(
            "Ultralytics checkpoint (.pt)", type=["pt"], key="model_upload", max_upload_size=res.MAX_MODEL_MB,
            help="A YOLOv8/9/10/11 detect or seg, RT-DETR or FastSAM .pt. It is opened safely: no code in it runs.",
        )
    return choice, res.RUNTIME_CHOICES[runtime], upload


def images_section():
    st.header("2. Images")
    uploads = st.file_uploader(
        "Upload images (or use the samples)", type=res.IMAGE_TYPES, accept_multiple_files=True, key="image_upload",
        help="JPEG, PNG, WebP, BMP or TIFF; large photos are what patch-based inference is for.",
    )
    labels = st.file_uploader(
        "Ground-truth labels (optional)", type=["txt", "json"], accept_multiple_files=True, key="label_upload",
        help="YOLO .txt files named like the images, or one COCO .json: the page then scores both modes.",
    )
    return uploads or [], labels or []


def settings_section(suggested: tuple[int, float] | None = None) -> Settings:
    st.header("3. Tiles")
    auto = st.toggle("Auto tile size", key="auto_tile", help="Let a quick full-image pass propose tile size and overlap.")
    if auto and suggested:
        tile_size, overlap = suggested
        st.caption(f"Auto: {tile_size} px tiles, {overlap:.0%} overlap")
    else:
        tile_size = st.slider("Tile size (px)", 128, 1280, 640, 32, key="tile_size",
                              help="Each tile is fed to the model at its own resolution: small objects stay big.")
        overlap = st.slider("Overlap", 0.0, 0.85, 0.25, 0.05, key="overlap",
                            help="How much neighbouring tiles share, so an object cut by one tile is whole in the next.")
    batch = st.slider("Batch size", 1, 32, 8, key="batch_size",
                      help="Tiles sent to the model at once: larger is faster until memory runs out.")
    show_grid = st.checkbox("Show the tile grid", value=True, key="show_grid", help="Draw the tiles over the image.")
    st.header("4. Thresholds and merging")
    conf = st.slider("Confidence", 0.01, 1.0, 0.25, 0.01, key="conf",
                     help="Hide detections the model is less sure about than this (no re-run needed).")
    iou = st.slider("Model IoU (NMS inside each tile)", 0.1, 0.95, 0.7, 0.05, key="iou",
                    help="How much two boxes in one tile may overlap before the model drops one (re-runs the model).")
    merge = st.radio("Merge method", ["NMS", "NMM"], horizontal=True, key="merge",
                     help="NMS keeps the best box of a group of duplicates; NMM fuses the group into one bigger box.")
    metric = st.radio("Match metric", ["IoS", "IoU"], horizontal=True, key="metric",
                      help="IoU: overlap / union. IoS: overlap / smaller box, so a piece inside a whole box matches.")
    threshold = st.slider("Merge threshold", 0.05, 1.0, 0.5, 0.05, key="merge_threshold",
                          help="Two boxes are duplicates when their IoU or IoS is at least this.")
    agnostic = st.checkbox("Class-agnostic merge", key="class_agnostic",
                           help="Treat boxes of different classes as duplicates too.")
    st.header("5. Full-image pass")
    full_imgsz = st.select_slider("Full-image size (imgsz)", [320, 480, 640, 800, 960, 1280], 640, key="full_imgsz",
                                  help="The whole image is shrunk to this many pixels on its long side.")
    include_full = st.checkbox("Also merge a full-image pass into the patches", key="include_full",
                               help="Helps with objects too big for any single tile.")
    return Settings(int(tile_size), bool(auto), float(overlap), float(conf), float(iou), merge.lower(), metric.lower(),
                    float(threshold), bool(agnostic), int(full_imgsz), bool(include_full), int(batch), bool(show_grid))


def class_filter(names: dict[int, str]) -> list[int] | None:
    labels = [names[k] for k in sorted(names)]
    chosen = st.multiselect("Show only these classes", labels, key="class_filter",
                            help="Leave empty to show every class.")
    if not chosen:
        return None
    lookup = {v: k for k, v in names.items()}
    return [lookup[c] for c in chosen if c in lookup]
