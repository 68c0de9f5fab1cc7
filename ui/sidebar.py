"""Sidebar controls. Each function draws one section and returns plain values or the library's specs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import streamlit as st

import tiling
from tiling.merge import METHODS, METRICS
from tiling.models.runtimes import Precision, Runtime

from . import resources as res
from .text import plain

DEFAULT_MERGE = tiling.MergeSpec()
METHOD_LABELS = {"nms": "NMS", "nmm": "NMM", "wbf": "WBF", "soft": "Soft-NMS"}
METRIC_LABELS = {"ios": "IoS", "iou": "IoU"}
RAW_CONF = 0.05  # the model runs once at this confidence; the slider above it only re-filters
RERUNS = ":material/replay:"  # marks the controls whose change runs the model again


RUN_SECONDS = "run_seconds"  # session state: (image key, model key) -> seconds its last run took


def _rerun_cost(image_key: str, model_key: str) -> str:
    """What the last run of this image with this model took, as a guide to what a re-run costs."""
    seconds = st.session_state.get(RUN_SECONDS, {}).get((image_key, model_key))
    return f" (about {max(seconds, 1):.0f} s for this image)" if seconds else ""


@dataclass(frozen=True)
class Settings:
    """The page's settings: the pipeline's three specs (the caches are keyed on them) and the grid overlay."""

    tiles: tiling.TileSpec
    infer: tiling.InferSpec
    merge: tiling.MergeSpec
    show_grid: bool


def model_section():
    """Returns (choice label, uploaded file or None). The Speed radio comes after the model is loaded
    (:func:`speed_section`), so that it shows the speed the model shown actually runs at."""
    st.header("1. Model")
    ready = {name: res.official_availability(name) for name in tiling.models.OFFICIAL_NAMES}
    official = sorted(ready, key=lambda name: not ready[name][0])  # the ones that work here first

    def label(choice: str) -> str:
        if choice not in ready:
            return choice
        return f"{choice} (COCO, {ready[choice][1]})" if ready[choice][0] else f"{choice} (unavailable here)"

    choice = st.selectbox(
        "Model", [*res.BUNDLED_MODELS, *official, res.UPLOAD_MODEL], key="model_choice", format_func=label,
        help="The bundled demo models know three classes (car, truck, plane) of generated aerial scenes. The "
             "official COCO models know 80 everyday classes in real photos; those marked unavailable would need a "
             "download this host cannot make (see PATCHWISE_WEIGHTS_DIR in the README). Or upload your own weights.",
    )
    upload = None
    if choice == res.UPLOAD_MODEL:
        upload = st.file_uploader(
            "Ultralytics model (.pt, .onnx, or an OpenVINO folder as .zip)", type=["pt", "onnx", "zip"],
            key="model_upload", max_upload_size=res.MAX_MODEL_MB,
            help="A detection, segmentation, oriented-box or pose model: YOLOv8-26, RT-DETR or FastSAM weights "
                 "(.pt), or the export you deploy (.onnx, or a zip of the *_openvino_model folder). It is opened "
                 "safely: no code in it runs.",
        )
    return choice, upload


def coco_ready() -> list[str]:
    """The official COCO models usable on this host, plain detectors first (what a demo model's hint offers)."""
    ready = [name for name in tiling.models.OFFICIAL_NAMES if res.official_availability(name)[0]]
    return sorted(ready, key=lambda name: not (name.startswith("yolo") and "-" not in name))


def wanted_speed(bundled: bool) -> str:
    """The Speed label a model runs at: the visitor's pick once made; until then the default of the model
    that runs: 8-bit for a bundled model (its checked 8-bit copy ships beside it; their shipped copies agree
    with full precision on 98-99.8% of held-out tiles' objects), full precision for the others (their
    8-bit copy would first have to be made). A bundled model shown while no upload is usable keeps its own."""
    label = st.session_state.get("runtime")
    if st.session_state.get("runtime_chosen") and label in res.RUNTIME_CHOICES:
        return label
    return res.FAST if bundled else res.FULL


def _speed_chosen() -> None:
    st.session_state["runtime_chosen"] = True


def speed_section(used: str, model: tiling.UltralyticsModel, note: str | None) -> None:
    """The Speed radio, showing ``used`` (the speed the model shown runs at), and one caption true to it."""
    if not st.session_state.get("runtime_chosen"):
        st.session_state["runtime"] = used
    st.radio(
        "Speed", list(res.RUNTIME_CHOICES), key="runtime", on_change=_speed_chosen,
        help="8-bit numbers: the model's arithmetic on whole numbers from -128 to 127 instead of full decimals, "
             "about 1.5 times as fast on this CPU. It is used only if it finds the same objects as full precision on "
             "test tiles; otherwise full precision runs, and this panel says so. Full precision: the model exactly "
             "as trained, optimized for this CPU. bf16: the CPU's shorter decimals. Plain PyTorch: no optimization.",
    )
    caption = f"Note: {note}" if note else precision_caption(model)
    if caption:
        st.caption(plain(caption))
    st.caption(f"It finds {plain(_class_list(model.names))}, as {TASK_WORDS.get(model.task, model.task)} · task: "
               f"**{model.task}** · runtime: **{plain(model.runtime_label)}** (the engine that runs it here)")


TASK_WORDS = {"detect": "boxes", "segment": "boxes and outlines", "obb": "turned boxes", "pose": "boxes and body points"}


def _class_list(names: dict[int, str]) -> str:
    shown = [names[k] for k in sorted(names)[:12]]
    return ", ".join(shown) + (f" and {len(names) - 12} more" if len(names) > 12 else "")


def precision_caption(model: tiling.UltralyticsModel) -> str | None:
    """What the sidebar says about the speed the model runs at: 8-bit (with its agreement with full
    precision), a fallback to full precision and why, or a runtime note; None for plain full precision."""
    from tiling.models.agreement import AGREEMENT_BAR

    if model.agreement is not None:
        found = (f"the 8-bit copy finds the same objects as full precision {model.agreement:.1%} of the time on "
                 "held-out test tiles (tiles it was not made from)")
        if model.precision is Precision.INT8:
            return f"Fast uses 8-bit numbers, 1.7-2.2 times as fast per image on the samples: {found}."
        return f"Full precision runs: {found}, under the {AGREEMENT_BAR:.0%} this page asks for."
    if model.runtime_note:
        return f"{'Kept on torch' if model.runtime is Runtime.TORCH else 'Note'}: {model.runtime_note}"
    return None


def images_section():
    st.header("2. Images")
    uploads = st.file_uploader(
        "Upload images (or use the samples)", type=res.IMAGE_TYPES, accept_multiple_files=True, key="image_upload",
        help=f"{tiling.imageio.ACCEPTED}; large photos are what patch-based inference is for. Orthomosaics and "
             "satellite scenes beyond this page's limits: the command line (python -m tiling predict) streams them.",
    )
    labels = st.file_uploader(
        "Ground-truth labels (optional)", type=["txt", "json", "yaml", "yml", "names"], accept_multiple_files=True,
        key="label_upload",
        help="YOLO .txt files named like the images (with the data.yaml or classes.txt that names their classes), "
             "or one COCO .json: the page then scores both modes, matching the labels' classes to the model's by name.",
    )
    return uploads or [], labels or []


def tiles_section(suggest: Callable[[], tiling.TileSuggestion], image_key: str,
                  model_key: str) -> tuple[tiling.TileSpec, bool]:
    """The tile spec (from the sliders, or from ``suggest()`` when auto is on) and whether to draw the grid;
    the caption says what a re-run of this image with this model costs, once one has run."""
    st.header("3. Tiles")
    st.caption(f"{RERUNS} re-runs the model on every tile{_rerun_cost(image_key, model_key)}; the other controls "
               "re-merge instantly.")
    if st.toggle("Auto tile size", key="auto_tile",
                 help="Tile the image at the model's input size once, and size the tiles from the objects found."):
        suggestion = suggest()
        tiles = suggestion.tiles
        finer = "".join(f" + {size} px tiles enlarged" for size in tiles.levels)
        st.caption(f"Auto: {tiles.tile_size} px tiles{finer}, {tiles.overlap:.0%} overlap. Why: {plain(suggestion.reason)}")
    else:
        tile_size = st.slider(f"Tile size (px) {RERUNS}", 128, 1280, 640, 32, key="tile_size",
                              help="Each tile is fed to the model at its own resolution: small objects stay big.")
        overlap = st.slider(f"Overlap {RERUNS}", 0.0, 0.85, 0.25, 0.05, key="overlap",
                            help="How much neighbouring tiles share, so an object cut by one tile is whole in the next.")
        offset_grid = st.checkbox(f"Second grid, shifted half a step {RERUNS}", key="offset_grid",
                                  help="Objects cut by a border of the first grid lie whole in a tile of the "
                                       "second; costs 1.2-1.8x the tiles.")
        finer = st.checkbox(f"Also half-size tiles, enlarged (a pyramid) {RERUNS}", key="pyramid",
                            help="A second grid of tiles half as big, each enlarged to the model's input: small objects "
                                 "look twice as large; about 4x the work. On 70 real drone photos: +0.07 AP50 at 640 px.")
        levels = (tile_size // 2,) if finer and tile_size // 2 >= 32 else ()
        tiles = tiling.TileSpec(tile_size=tile_size, overlap=overlap, max_tiles=res.MAX_TILES, offset_grid=offset_grid,
                                levels=levels)
    show_grid = st.checkbox("Show the tile grid", value=True, key="show_grid", help="Draw the tiles over the image.")
    return tiles, show_grid


def merge_section() -> tiling.MergeSpec:
    st.header("4. Thresholds and merging")
    conf = st.slider("Confidence", 0.01, 1.0, 0.25, 0.01, key="conf",
                     help="Hide detections the model is less sure about than this (no re-run needed).")
    method = st.radio("Merge method", METHODS, index=METHODS.index(DEFAULT_MERGE.method),
                      format_func=lambda m: METHOD_LABELS.get(m, str(m)), horizontal=True, key="method",
                      help="NMS keeps the best box of a group of duplicates; NMM fuses the group into one bigger box; "
                           "WBF averages the group's boxes, the surer ones counting more; Soft-NMS keeps the "
                           "duplicates but lowers their confidence, so the confidence slider decides.")
    metric = st.radio("Match metric", METRICS, index=METRICS.index(DEFAULT_MERGE.metric),
                      format_func=lambda m: METRIC_LABELS.get(m, str(m)), horizontal=True, key="metric",
                      help="IoU: overlap / union. IoS: overlap / smaller box, so a piece inside a whole box matches.")
    threshold = st.slider("Merge threshold", 0.05, 1.0, DEFAULT_MERGE.threshold, 0.05, key="threshold",
                          help="Two boxes are duplicates when their IoU or IoS is at least this.")
    agnostic = st.checkbox("Class-agnostic merge", key="class_agnostic",
                           help="Treat boxes of different classes as duplicates too.")
    return tiling.MergeSpec(conf=conf, method=method, metric=metric, threshold=threshold, class_agnostic=agnostic)


def infer_section(merge_conf: float) -> tiling.InferSpec:
    st.header("5. Model run")
    batch = st.slider(f"Batch size {RERUNS}", 1, 32, 8, key="batch_size",
                      help="Tiles sent to the model at once: larger is faster until memory runs out.")
    iou = st.slider(f"Model IoU (NMS inside each tile) {RERUNS}", 0.1, 0.95, 0.7, 0.05, key="iou",
                    help="How much two boxes in one tile may overlap before the model drops one (re-runs the model).")
    imgsz = st.select_slider(f"Full-image size (imgsz) {RERUNS}", [320, 480, 640, 800, 960, 1280], 640, key="imgsz",
                             help="The whole image is shrunk to this many pixels on its long side.")
    include_full = st.checkbox(f"Also merge a full-image pass into the patches {RERUNS}", key="include_full",
                               value=tiling.InferSpec().include_full,
                               help="Large objects come whole from the shrunk image; its guesses at small ones are "
                                    "left to the tiles, which see them closer.")
    return tiling.InferSpec(conf=min(RAW_CONF, merge_conf), iou=iou, batch_size=batch, imgsz=imgsz,
                            include_full=include_full)


def class_filter(names: dict[int, str]) -> tuple[int, ...] | None:
    labels = [names[k] for k in sorted(names)]
    chosen = st.multiselect("Show only these classes", labels, key="class_filter",
                            help="Leave empty to show every class.")
    if not chosen:
        return None
    lookup = {v: k for k, v in names.items()}
    return tuple(lookup[c] for c in chosen if c in lookup)
