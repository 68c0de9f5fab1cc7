"""The tabs under the side-by-side pictures, one :class:`Tab` each: its label, when it shows and what it
draws from the page's current result. A new tab is one entry in :data:`TABS` (and its view function)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import streamlit as st

import tiling

from . import resources as res
from . import scores_view, table_view, views, zoom_view
from .model_input_view import MODEL_INPUT, model_input_tab
from .seam_view import SEAM, seam_tab
from .sidebar import Settings
from .sweep_view import SWEEP, sweep_tab
from .views import CLASS_MAP, SCORES, STEPS, TABLE, ZOOM

#: ``results(item, progress=None) -> (tiled prediction, full-image detections, seconds of the full pass)``
Results = Callable[..., "tuple[tiling.TiledPrediction, tiling.Detections, float]"]


@dataclass
class Page:
    """What every tab may draw from: the image shown and the others, the model, the settings and the results."""

    item: res.ImageItem
    items: list[res.ImageItem]
    model: tiling.UltralyticsModel
    model_key: str
    settings: Settings
    pred: tiling.TiledPrediction
    full: tiling.Detections
    patch_only: np.ndarray
    results: Results  # the same for another of ``items`` (cached like this one)

    @property
    def tiled(self) -> tiling.Detections:
        return self.pred.detections


@dataclass(frozen=True)
class Tab:
    label: str
    draw: Callable[[Page], None]
    shown: Callable[[Page], bool] = lambda page: True


def _zoom(page: Page) -> None:
    zoom_view.zoom(page.item, page.full, page.tiled, page.patch_only)


def _steps(page: Page) -> None:
    views.teaching(page.item, page.pred, page.tiled)


def _table(page: Page) -> None:
    table_view.table(table_view.detections_frame(page.tiled, page.patch_only))
    table_view.downloads(page.item, page.full, page.tiled)
    if len(page.items) > 1:
        _zip_all(page)


def _zip_all(page: Page) -> None:
    """A zip of every image's results, made when asked (each image's result from the cache when it is there)."""
    items = page.items
    png = st.checkbox("Full-size PNG pictures in the zip (much larger than JPEG)", key="zip_png")
    if not st.button(f"Prepare a zip for all {len(items)} images", key="export_all"):
        return
    bar = st.progress(0.0, text="Results for every image…")
    results = {}
    for k, it in enumerate(items, 1):
        p, f, _ = page.results(it)
        results[it.name] = (it, f, p.detections)
        bar.progress(k / len(items) / 2, text=f"Results: image {k} of {len(items)}")
    data = table_view.export_zip(results, png=png, progress=lambda done, total: bar.progress(
        0.5 + done / total / 2, text=f"Writing the zip: image {done} of {total}"))
    bar.empty()
    st.download_button("Download all (zip)", data, "patchwise_results.zip", "application/zip",
                       on_click="ignore", key="dl_zip", icon=":material/folder_zip:")


def _scores(page: Page) -> None:
    if page.item.labels is None:
        st.info("Upload ground-truth labels (YOLO .txt or COCO .json) in the sidebar to score both modes. "
                "The bundled samples come with theirs.")
    else:  # every box down to the model's floor, as the CLI scores: AP ranks them all, the slider picks those shown
        s, item = page.settings, page.item
        full_all = res.full_prediction(item, page.model, page.model_key, s.infer).filter(classes=s.merge.classes)
        tiled_all = page.pred.remerge(replace(page.pred.merge, conf=s.infer.conf)).detections
        # only the classes the labels know are scored
        scores_view.scores(item, item.scored(full_all), item.scored(tiled_all), s.merge.conf, s.infer.conf)


def _seam(page: Page) -> None:
    seam_tab(page.item, page.pred)


def _model_input(page: Page) -> None:
    model_input_tab(page.item, page.pred, page.model, page.tiled, page.patch_only)


def _sweep(page: Page) -> None:
    sweep_tab(page.item, page.model, page.model_key, page.settings)


def _class_map(page: Page) -> None:
    st.markdown(views.CLASS_MAP_TEXT)
    if st.button("Compute the dense class map", key="dense_go",
                 help="Runs the model again over half-overlapping tiles and blends the per-pixel scores."):
        st.session_state["dense_for"] = (page.item.key, page.model_key)
    if st.session_state.get("dense_for") == (page.item.key, page.model_key):
        s = page.settings
        cmap = res.dense_map(page.item.key, page.model_key, s.tiles.size_xy[0], s.merge.conf, page.item.image,
                             page.model)
        views.dense(page.item, cmap, page.model.names)


TABS = (
    Tab(ZOOM, _zoom),
    Tab(SEAM, _seam),
    Tab(MODEL_INPUT, _model_input),
    Tab(STEPS, _steps),
    Tab(TABLE, _table),
    Tab(SCORES, _scores),
    Tab(SWEEP, _sweep),
    Tab(CLASS_MAP, _class_map, shown=lambda page: page.model.task == "segment"),
)


def draw_tabs(page: Page) -> None:
    """The tabs that apply to this model; only the open one runs, so a rerun draws one view, not all."""
    shown = [tab for tab in TABS if tab.shown(page)]
    containers = st.tabs([tab.label for tab in shown], key="view", on_change="rerun")
    for tab, container in zip(shown, containers):
        if container.open:
            with container:
                tab.draw(page)
