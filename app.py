"""Patchwise: full-image vs patch-based inference, side by side. UI only; the work is in tiling/."""
from __future__ import annotations

import os
import time

os.environ.setdefault("YOLO_OFFLINE", "1")  # no weights, fonts or data fetched unless an official name is asked for
os.environ.setdefault("ULTRALYTICS_SAFE_LOAD", "1")

import streamlit as st  # noqa: E402

import tiling  # noqa: E402
from ui import page_style  # noqa: E402
from ui import resources as res  # noqa: E402
from ui import sidebar, views  # noqa: E402
from ui.views import CLASS_MAP, SCORES, STEPS, TABLE, VIEWS, ZOOM  # noqa: E402

st.set_page_config(page_title="Patchwise: patch-based inference", page_icon="🧩", layout="wide")
if not page_style.IN_HEAD:  # started without serve.py: the style comes as an element, after the placeholders
    st.html(f"<style>{page_style.PAGE_STYLE}</style>")


def pick_model(choice: str, runtime: str, upload) -> tiling.UltralyticsModel:
    """The chosen model, or the bundled detector with an explanation when the choice cannot be used."""
    default = res.BUNDLED_MODELS[next(iter(res.BUNDLED_MODELS))]
    try:
        if choice in res.BUNDLED_MODELS:
            return res.load_bundled(res.BUNDLED_MODELS[choice], runtime)
        if choice == res.UPLOAD_MODEL:
            if upload is None:
                st.sidebar.info("Upload a .pt file; the bundled detector is used meanwhile.")
                return res.load_bundled(default, runtime)
            return res.load_model_bytes(upload.getvalue(), upload.name, runtime)
        return res.load_official(choice, runtime)
    except tiling.ModelError as exc:
        st.sidebar.error(f"{exc}")
        st.sidebar.caption("Showing results of the bundled demo detector instead.")
        return res.load_bundled(default, runtime)


def gather_images(uploads, label_files) -> list[res.ImageItem]:
    """Valid uploads (each bad one explained), else the bundled samples."""
    items = []
    for up in uploads:
        try:
            key, image = res.decode_image(up.getvalue(), up.name)
            items.append(res.ImageItem(up.name, key, image))
        except tiling.ImageError as exc:
            st.error(f"{up.name}: {exc}")
    if uploads and not items:
        st.info("None of the uploaded files could be used; showing the bundled samples.")
    if not items:
        for path in res.sample_paths():
            try:
                items.append(res.load_sample(path))
            except (tiling.ImageError, ValueError) as exc:
                st.error(f"{path.name}: {exc}")
    attach_labels(items, label_files)
    return items


def attach_labels(items: list[res.ImageItem], label_files) -> None:
    for lf in label_files:
        try:
            if lf.name.lower().endswith(".json"):
                by_name = tiling.load_coco_labels(lf.getvalue().decode())
                for item in items:
                    if item.name in by_name:
                        item.labels = by_name[item.name]
            else:
                stem = lf.name.rsplit(".", 1)[0]
                for item in items:
                    if item.name.rsplit(".", 1)[0] == stem:
                        item.labels = tiling.load_yolo_labels(lf.getvalue(), item.image.shape)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            st.error(f"{lf.name}: these labels could not be read ({exc})")


def results_for(item: res.ImageItem, model, model_key: str, settings: sidebar.Settings, classes, progress=None):
    """(merged patch-based prediction, filtered full-image detections, seconds of the full pass) for one image.

    The model runs only on a cache miss; thresholds, merging and the class filter are applied here.
    """
    t0 = time.perf_counter()
    full_raw = res.full_prediction(item.key, model_key, settings.full_imgsz, settings.iou, settings.raw_conf,
                                   item.image, model, sample=item.sample)
    full_time = time.perf_counter() - t0
    pred = res.tiled_prediction(item.key, model_key, settings.tile_size, settings.overlap, settings.iou,
                                settings.raw_conf, settings.batch_size, settings.include_full, settings.full_imgsz,
                                item.image, model, progress, sample=item.sample)
    merged = pred.remerge(conf=settings.conf, method=settings.merge, metric=settings.metric,
                          threshold=settings.merge_threshold, class_agnostic=settings.class_agnostic, classes=classes)
    return merged, full_raw.filter(conf=settings.conf, classes=classes), full_time


def main() -> None:
    st.title("Patchwise: why patches find small objects")
    st.caption("Left: the whole image shrunk to the model's input. Right: the same model on overlapping tiles, "
               "merged. Move the sliders: thresholds and merging update instantly, without re-running the model.")
    with st.sidebar:
        choice, runtime, upload = sidebar.model_section()
        uploads, label_files = sidebar.images_section()
    model = pick_model(choice, runtime, upload)
    if model.runtime_note:
        st.sidebar.caption(f"Kept on torch: {model.runtime_note}")
    st.sidebar.caption(f"Task: **{model.task}** · runtime: **{model.runtime}** · classes: "
                       f"{', '.join(model.names[k] for k in sorted(model.names)[:12])}"
                       f"{' …' if len(model.names) > 12 else ''}")
    items = gather_images(uploads, label_files)
    if not items:
        st.warning("No image to show: upload one in the sidebar.")
        return
    names = [it.name for it in items]
    if len(items) > 1:
        chosen = st.selectbox("Image", names, key="image_choice", help="Which image to look at; exports cover all.")
        item = items[names.index(chosen)] if chosen in names else items[0]
    else:
        item = items[0]
    h, w = item.image.shape[:2]
    model_key = f"{model.digest}:{model.runtime}"
    suggested = None
    if st.session_state.get("auto_tile"):
        s = res.suggestion(item.key, model_key, item.image, model)
        suggested = (s.tile_size, s.overlap)
    with st.sidebar:
        settings = sidebar.settings_section(suggested)
        classes = sidebar.class_filter(model.names)

    n_tiles = tiling.count_tiles((h, w), settings.tile_size, settings.overlap)
    if n_tiles > res.MAX_TILES:
        st.error(f"{settings.tile_size} px tiles with {settings.overlap:.0%} overlap would make {n_tiles} tiles on this "
                 f"{w}x{h} image, above this page's limit of {res.MAX_TILES}. Use larger tiles or less overlap.")
        return
    progress = st.progress(0.0, text=f"Running the model on {n_tiles} tiles…")
    merged_pred, full, full_time = results_for(item, model, model_key, settings, classes,
                                               lambda done, total: progress.progress(done / total,
                                                                                     text=f"Tile {done} of {total}"))
    progress.empty()
    tiled = merged_pred.detections
    patch_only = ~tiling.matched(tiled, full, iou=0.3, class_aware=False)

    views.side_by_side(item, full, tiled, patch_only, merged_pred, full_time, settings.show_grid)
    views_shown = [*VIEWS, *([CLASS_MAP] if model.task == "segment" else [])]
    # Lazy tabs: only the open one runs, so a rerun draws one view, not all of them.
    tabs = dict(zip(views_shown, st.tabs(views_shown, key="view", on_change="rerun")))
    if tabs[ZOOM].open:
        with tabs[ZOOM]:
            views.zoom(item, full, tiled, patch_only)
    if tabs[STEPS].open:
        with tabs[STEPS]:
            views.teaching(item, merged_pred, tiled)
    if tabs[TABLE].open:
        with tabs[TABLE]:
            views.table(views.detections_frame(tiled, patch_only))
            views.downloads(item, full, tiled)
            if len(items) > 1 and st.button(f"Prepare a zip for all {len(items)} images", key="export_all"):
                results = {}
                for it in items:
                    p, f, _ = results_for(it, model, model_key, settings, classes)
                    results[it.name] = (it, f, p.detections)
                st.download_button("Download all (zip)", views.export_zip(results), "patchwise_results.zip",
                                   "application/zip", on_click="ignore", key="dl_zip", icon=":material/folder_zip:")
    if tabs[SCORES].open:
        with tabs[SCORES]:
            if item.labels is None:
                st.info("Upload ground-truth labels (YOLO .txt or COCO .json) in the sidebar to score both modes. "
                        "The bundled samples come with theirs.")
            else:
                views.scores(item, full, tiled)
    if CLASS_MAP in tabs and tabs[CLASS_MAP].open:
        with tabs[CLASS_MAP]:
            if st.button("Compute the dense class map", key="dense_go",
                         help="Runs the model again over half-overlapping tiles and blends the per-pixel scores."):
                st.session_state["dense_for"] = (item.key, model_key)
            if st.session_state.get("dense_for") == (item.key, model_key):
                cmap = res.dense_map(item.key, model_key, settings.tile_size, settings.conf, item.image, model)
                views.dense(item, cmap)


try:
    main()
except (tiling.ImageError, tiling.ModelError, ValueError) as exc:  # last line of defence: a message, not a trace
    st.error(f"Something in the input could not be used: {exc}")
