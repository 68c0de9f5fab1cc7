"""Patchwise: full-image vs patch-based inference, side by side. UI only; the work is in tiling/."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

os.environ.setdefault("YOLO_OFFLINE", "1")  # no weights, fonts or data fetched unless an official name is asked for
os.environ.setdefault("ULTRALYTICS_SAFE_LOAD", "1")

import streamlit as st  # noqa: E402

import tiling  # noqa: E402
from tiling.worker import WorkerError  # noqa: E402
from ui import page_style  # noqa: E402
from ui import resources as res  # noqa: E402
from ui import code_view, hints, sidebar, upload_names, uploads, views, visitor_models  # noqa: E402
from ui.tabs import Page, draw_tabs  # noqa: E402
from ui.text import plain  # noqa: E402
from ui import video_view  # noqa: E402

upload_names.install()
st.set_page_config(page_title="Patchwise: patch-based inference", page_icon="🧩", layout="wide")
if not page_style.IN_HEAD:  # started without serve.py: the style comes as an element, after the placeholders
    st.html(page_style.HEAD_TAGS.decode())


@dataclass(frozen=True)
class Picked:
    """The model the page runs, and what the page says about it: ``problem``, why the chosen model could
    not be used (the bundled detector runs instead); ``note``, why a visitor's model runs in full precision
    when 8-bit was asked for; ``speed``, the Speed label it runs at; ``demo``, a bundled demo model runs."""

    model: tiling.UltralyticsModel
    problem: str | None
    note: str | None
    speed: str
    demo: bool
    source: str  # the model as a reader names it to load it again: models/<file>, an official name, the upload's


def pick_model(choice: str, upload, items=()) -> Picked:
    """The chosen model, or the bundled detector (at the speed the bundled models run at unless the visitor
    picked one, so its counts are those of the bundled choice) while no upload is usable. An 8-bit copy of
    an uploaded or official model is calibrated on one of ``items``, the page's images."""
    default = res.BUNDLED_MODELS[next(iter(res.BUNDLED_MODELS))]
    bundled_speed = sidebar.wanted_speed(bundled=True)

    def bundled(path, problem=None) -> Picked:
        return Picked(res.load_bundled(path, res.RUNTIME_CHOICES[bundled_speed]), problem, None, bundled_speed, True,
                      f"{path.parent.name}/{path.name}")

    try:
        if choice in res.BUNDLED_MODELS:
            return bundled(res.BUNDLED_MODELS[choice])
        if choice == res.UPLOAD_MODEL and upload is None:
            st.sidebar.info("Upload a .pt, .onnx or zipped OpenVINO model; the bundled detector is used meanwhile.")
            visitor_models.warm_worker()  # the worker that will open it starts while the visitor picks the file
            return bundled(default)
        speed = sidebar.wanted_speed(bundled=False)
        if choice == res.UPLOAD_MODEL:
            model, note = res.load_model_bytes(upload.getvalue(), plain(upload.name), res.RUNTIME_CHOICES[speed], items)
        else:
            model, note = res.load_official(choice, res.RUNTIME_CHOICES[speed], items)
        return Picked(model, None, note, speed, False, upload.name if choice == res.UPLOAD_MODEL else choice)
    except tiling.ModelError as exc:
        return bundled(default, str(exc))


def gather_images(image_uploads, label_files) -> list[res.ImageItem]:
    """Valid uploads (each bad one explained), else the bundled samples; labels attached."""
    found = uploads.gather_uploads(image_uploads)
    for message in found.problems:
        st.error(plain(message))
    items = found.items
    if image_uploads and not items:
        st.info("None of the uploaded files could be used; showing the bundled samples.")
    if not items:
        items = [res.load_sample(path) for path in res.sample_paths()]
    for message in uploads.attach_labels(items, label_files):
        st.error(plain(message))
    return items


def first_image(items: list[res.ImageItem], task: str) -> int:
    """Where the image list opens: among the bundled samples, the first whose labels are of the model's
    kind (the apron's oriented boxes for an oriented-box model, an upright sample for the others)."""
    for i, item in enumerate(items):
        if item.sample and item.labels is not None and item.labels.has_obb == (task == "obb"):
            return i
    return 0


def results_for(item: res.ImageItem, model, model_key: str, settings: sidebar.Settings, progress=None):
    """(merged patch-based prediction, filtered full-image detections, seconds of the full pass) for one image.

    The model runs only on a cache miss; thresholds, merging and the class filter are applied here.
    """
    t0 = time.perf_counter()
    full_raw = res.full_prediction(item, model, model_key, settings.infer)
    full_time = time.perf_counter() - t0
    pred = res.tiled_prediction(item, model, model_key, settings.tiles, settings.infer, settings.merge, progress)
    return pred, full_raw.filter(conf=settings.merge.conf, classes=settings.merge.classes), full_time


def recipe(picked: Picked, item: res.ImageItem, settings: sidebar.Settings) -> code_view.Recipe:
    """The page's current result as a recipe for "The code for this": the image and model as files on the
    reader's machine, the speed asked for and the precision that ran (an 8-bit copy the page refused is
    refused there too), and the three specs."""
    runtime, _ = res.RUNTIME_CHOICES[picked.speed]
    image = f"{res.SAMPLES_DIR.name}/{item.name}" if item.sample else item.name
    return code_view.Recipe(image, picked.source, runtime, picked.model.precision, settings.tiles, settings.infer,
                            settings.merge, shipped_int8=picked.demo)


def choose_image(items: list[res.ImageItem], task: str) -> res.ImageItem:
    """The image shown: the visitor's pick among several, opening on one of the model's kind (:func:`first_image`)."""
    names = [it.name for it in items]
    start = first_image(items, task)
    if len(items) == 1:
        return items[start]
    oriented = task == "obb"
    if items[start].sample and st.session_state.get("image_kind") != oriented:  # another kind of model
        st.session_state["image_kind"] = oriented
        st.session_state["image_choice"] = names[start]  # opens on a sample it was made for
    chosen = st.selectbox("Image", names, key="image_choice", help="Which image to look at; exports cover all.")
    return items[names.index(chosen)] if chosen in names else items[start]


def run_with_progress(item: res.ImageItem, model, model_key: str, settings: sidebar.Settings, n_tiles: int):
    """:func:`results_for` with a progress bar (tile by tile, with the time left), and whether the result came
    from the cache; the time it took is kept as the cost of the next re-run."""
    per_tile = st.session_state.get("seconds_per_tile", {}).get(model_key)
    eta = f", about {n_tiles * per_tile:.0f} s" if per_tile else ""
    progress = st.progress(0.0, text=f"Running the model on {n_tiles} tiles{eta}…")
    started = time.perf_counter()

    def report(done: int, total: int) -> None:
        left = (time.perf_counter() - started) / done * (total - done)
        progress.progress(done / total, text=f"Tile {done} of {total}, about {left:.0f} s left")

    pred, full, full_time = results_for(item, model, model_key, settings, report)
    cached = time.perf_counter() - started < 0.9 * pred.timings.get("total", 0.0)  # it took less than it did when made
    progress.empty()
    # What the model took when this result was made (now, or for the cache): the cost of a re-run.
    st.session_state.setdefault("seconds_per_tile", {})[model_key] = pred.timings["infer"] / max(1, len(pred.tiles))
    st.session_state.setdefault(sidebar.RUN_SECONDS, {})[(item.key, model_key)] = pred.timings.get("total", 0.0)
    return pred, full, full_time, cached


def main() -> None:
    if video_view.mode() == video_view.VIDEO:  # a clip, tracked both ways: its own page
        return video_view.page()
    st.title("Patchwise: why patches find small objects")
    st.caption("Left: the whole image shrunk to the size the model sees. Right: the same model on overlapping "
               "tiles, put back together. Move the sliders: the thresholds and the merging update at once, "
               "without running the model again.")
    with st.sidebar:
        choice, upload = sidebar.model_section()
        speed_box = st.container()  # filled once the model is loaded: the speed it runs at
        image_uploads, label_files = sidebar.images_section()
    items = gather_images(image_uploads, label_files)
    picked = pick_model(choice, upload, items)
    model = picked.model
    with speed_box:
        sidebar.speed_section(picked.speed, model, picked.note)
    if picked.problem:
        st.error(f"{plain(picked.problem)}  \nShowing the results of the bundled demo detector instead.")
    for message in uploads.match_labels(items, model.names):
        st.warning(plain(message), icon=":material/rule:")
    item = choose_image(items, model.task)
    official = choice in tiling.models.OFFICIAL_NAMES and not picked.demo  # a COCO model runs
    hints.show(picked.demo, official, item.sample, model.names, sidebar.coco_ready())
    model_key = f"{model.digest}:{model.runtime_label}"
    with st.sidebar:
        tiles, show_grid = sidebar.tiles_section(lambda: res.suggestion(item.key, model_key, item.image, model),
                                                 item.key, model_key)
        merge = sidebar.merge_section()
        infer = sidebar.infer_section(merge.conf)
        merge = replace(merge, classes=sidebar.class_filter(model.names))
    settings = sidebar.Settings(tiles, infer, merge, show_grid)
    try:
        n_tiles = tiles.check_count(item.shape[:2])
    except ValueError as exc:
        st.error(str(exc))
        return
    pred, full, full_time, cached = run_with_progress(item, model, model_key, settings, n_tiles)
    tiled = pred.detections
    patch_only = ~tiling.matched(tiled, full, iou=0.3, class_aware=False)

    views.side_by_side(item, full, tiled, patch_only, pred, full_time, show_grid, cached)
    code_view.show(recipe(picked, item, settings), len(tiled), uploaded=not item.sample)
    draw_tabs(Page(item, items, model, model_key, settings, pred, full, patch_only,
                   lambda it, progress=None: results_for(it, model, model_key, settings, progress)))

try:
    main()
except WorkerError as exc:  # a visitor's model stopped in its worker: refused from now on, so the rerun shows
    if exc.remembered:      # the bundled model with this sentence (pick_model)
        st.rerun()
    st.error(plain(str(exc)))
except (tiling.ImageError, tiling.ModelError, tiling.LabelError, ValueError) as exc:  # a message, not a trace
    st.error(f"Something in the input could not be used: {plain(str(exc))}")
