"""Patch-based prediction over a raster read window by window, merged as it goes.

The tiles are the same :class:`~tiling.grid.TileSpec` plan as :func:`~tiling.pipeline.predict_tiled`
makes, run region by region (a few rows of tiles at a time). Each tile's window is read when its
batch runs, tiles that are entirely nodata are not run, and boxes lying mostly on nodata are
dropped. After each region, the detections that no later tile can touch are merged and let go;
only those that may still meet a detection of an unread tile stay. Memory thus follows the width of
the raster, not its area, and the answer is the one a merge of everything at once gives: greedy
NMS/NMM decides each group of matching boxes from that group alone, and a group is merged only once
none of its boxes reaches below the rows read so far.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from .detections import Detections
from .grid import Tile, TileSpec, row_groups
from .merge import MergeSpec, match_edges, merge as merge_detections, truncated_flags
from .models import InferSpec, as_model
from .models.base import tile_scale
from .pipeline import batch_order, check_merge_conf, split_settings, tile_batches
from .raster import BandSpec, Georef, RasterSource

Progress = Callable[[int, int], None]
NODATA_SHARE = 0.5  # a box with less than this share of valid pixels lies in nodata and is dropped


@dataclass
class RasterPrediction:
    """A streamed run's answer: merged ``detections`` in raster pixels (sorted by confidence), the
    raster's ``georef`` for map coordinates, and what ran: ``tiles`` planned, ``tiles_skipped``
    (entirely nodata), ``boxes_in_nodata`` dropped."""

    detections: Detections
    image_shape: tuple[int, int]
    georef: Georef
    tiles: int
    tiles_skipped: int
    boxes_in_nodata: int
    timings: dict[str, float]
    tile_spec: TileSpec
    infer: InferSpec
    merge: MergeSpec
    bands_note: str = ""
    names: dict[int, str] = field(default_factory=dict)


def _components(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def settled(raw: Detections, spec: MergeSpec, next_y0: float) -> np.ndarray:
    """True for detections whose whole match group lies above ``next_y0``, where the unread tiles begin:
    no later detection can match them or any box their fate depends on."""
    reaching = raw.xyxy[:, 3] > next_y0
    if not reaching.any():
        return np.ones(len(raw), bool)
    if reaching.all():
        return np.zeros(len(raw), bool)
    src, dst, _ = match_edges(raw, spec.metric, spec.threshold, spec.class_agnostic)
    labels = _components(len(raw), src, dst)
    return ~np.isin(labels, labels[reaching])


def drop_in_nodata(det: Detections, valid: np.ndarray) -> Detections:
    """``det`` (tile coordinates) without boxes of which less than :data:`NODATA_SHARE` is valid pixels."""
    h, w = valid.shape
    integral = np.zeros((h + 1, w + 1), np.int64)
    integral[1:, 1:] = valid.cumsum(0).cumsum(1)
    x0 = np.clip(np.floor(det.xyxy[:, 0]), 0, w).astype(np.int64)
    y0 = np.clip(np.floor(det.xyxy[:, 1]), 0, h).astype(np.int64)
    x1 = np.clip(np.ceil(det.xyxy[:, 2]), 0, w).astype(np.int64)
    y1 = np.clip(np.ceil(det.xyxy[:, 3]), 0, h).astype(np.int64)
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    keep = inside >= NODATA_SHARE * np.maximum((x1 - x0) * (y1 - y0), 1)
    return det if keep.all() else det[keep]


def in_raster(det: Detections, tile: Tile, valid: np.ndarray | None) -> tuple[Detections, int]:
    """One tile's detections (tile coordinates) in raster coordinates with ``tile_index``, without those
    lying mostly on nodata (``valid``: the tile's valid pixels, None when all are); and how many those were."""
    dropped = 0
    if len(det) and valid is not None:
        n = len(det)
        det = drop_in_nodata(det, valid)
        dropped = n - len(det)
    if len(det):
        det = det.shifted(tile.x0, tile.y0)
        det.data["tile_index"] = np.full(len(det), tile.index, np.int64)
    return det, dropped


class _Run:
    """One streamed run's state: the model, plan and counters shared by its regions."""

    def __init__(self, source: RasterSource, model, plan: list[Tile], infer: InferSpec, scale: float | None,
                 progress: Progress | None):
        self.source, self.model, self.plan, self.infer, self.scale = source, model, plan, infer, scale
        self.progress = progress
        self.handled = self.skipped = self.dropped = 0
        self.timings = {"read": 0.0, "infer": 0.0, "map": 0.0, "merge": 0.0}

    def region(self, tiles: list[Tile]) -> Detections:
        """Every detection of these tiles in raster coordinates, with ``tile_index``, ``truncated`` and ``source``."""
        pending: deque = deque()  # (tiles, valid masks) of each batch handed to the model, oldest first

        def crops():
            for batch in tile_batches(tiles, self.infer.batch_size):
                t0 = time.perf_counter()
                kept, images, masks = [], [], []
                for t in batch:
                    image, valid = self.source.read(t)
                    if valid is not None and not valid.any():
                        self.skipped += 1
                        self.handled += 1
                        continue
                    kept.append(t)
                    images.append(image)
                    masks.append(valid)
                self.timings["read"] += time.perf_counter() - t0
                if kept:
                    pending.append((kept, masks))
                    yield images

        parts: list[Detections] = []
        outputs = self.model.predict_batches(crops(), self.infer, imgsz=None, scale=self.scale)
        try:
            while True:
                t0, read0 = time.perf_counter(), self.timings["read"]
                try:
                    results = next(outputs)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                kept, masks = pending.popleft()
                for t, det, valid in zip(kept, results, masks):
                    det, dropped = in_raster(det, t, valid)
                    self.dropped += dropped
                    if len(det):
                        parts.append(det)
                self.timings["infer"] += (t1 - t0) - (self.timings["read"] - read0)
                self.timings["map"] += time.perf_counter() - t1
                self.handled += len(kept)
                if self.progress is not None:
                    self.progress(self.handled, len(self.plan))
        finally:
            outputs.close()
        if self.progress is not None:  # tiles skipped after the last batch run
            self.progress(self.handled, len(self.plan))
        if parts:
            raw = Detections.concat(parts, names=self.model.names)
        else:
            raw = Detections.empty_for(self.model)
            raw.data["tile_index"] = np.zeros(0, np.int64)
        raw.data["truncated"] = truncated_flags(raw.xyxy, raw.data["tile_index"], self.plan, self.source.shape)
        raw.data["source"] = np.full(len(raw), "tile")
        return raw


def iter_raster(source: RasterSource, model, tiles: TileSpec, infer: InferSpec, merge: MergeSpec, *,
                progress: Progress | None = None, run: dict | None = None) -> Iterator[Detections]:
    """Merged detections region by region, each part final when it is yielded (raster pixels).

    ``run``, if given, receives the counters and timings as they grow (``tiles``, ``skipped``,
    ``dropped``, ``timings``).
    """
    model = as_model(model)
    plan = tiles.plan(source.shape)
    state = _Run(source, model, plan, infer, tile_scale(model, tiles.size_xy), progress)
    order = batch_order(plan, infer.batch_size)
    # As many rows per region as tiles per batch: the trimmed last column of a region fills a batch.
    regions = row_groups(plan, infer.batch_size)
    carried: Detections | None = None
    for k, region in enumerate(regions):
        raw = state.region(region).filter(conf=merge.conf, classes=merge.classes)
        t0 = time.perf_counter()
        if carried is not None and len(carried):
            raw = Detections.concat([carried, raw], names=model.names)
        raw = raw[np.argsort(order[raw.data["tile_index"]], kind="stable")]
        next_y0 = regions[k + 1][0].y0 if k + 1 < len(regions) else math.inf
        done = settled(raw, merge, next_y0)
        part = merge_detections(raw[done], merge)
        carried = raw[~done]
        state.timings["merge"] += time.perf_counter() - t0
        if run is not None:
            run.update(tiles=len(plan), skipped=state.skipped, dropped=state.dropped, timings=dict(state.timings))
        yield part


def predict_raster(source, model, tiles: TileSpec | None = None, infer: InferSpec | None = None,
                   merge: MergeSpec | None = None, *, bands: BandSpec | None = None,
                   progress: Progress | None = None, on_part: Callable[[Detections], None] | None = None,
                   **changes) -> RasterPrediction:
    """Patch-based prediction over a raster file (or an open :class:`RasterSource`), read window by window.

    Settings as in :func:`~tiling.pipeline.predict_tiled` (specs, or their fields by keyword);
    ``bands`` says how the raster's bands become the model's input. ``on_part(detections)`` sees
    each region's final detections as soon as they are merged (to write them out as the run goes).
    Raises :class:`~tiling.raster.RasterError` for a raster that cannot be read.
    """
    t_start = time.perf_counter()
    tile_spec, infer, merge = split_settings(tiles, infer, merge, **changes)
    check_merge_conf(infer, merge)
    if infer.include_full:
        raise ValueError("include_full is not available for a streamed raster: a full-image pass would "
                         "decode it whole")
    own = not isinstance(source, RasterSource)
    src = RasterSource(source, bands) if own else source
    try:
        model = as_model(model)
        run: dict = {}
        parts = []
        for part in iter_raster(src, model, tile_spec, infer, merge, progress=progress, run=run):
            if on_part is not None:
                on_part(part)
            parts.append(part)
        if parts:
            det = Detections.concat(parts, names=model.names)
            det = det[np.argsort(-det.confidence, kind="stable")]
        else:
            det = Detections.empty_for(model)
        timings = dict(run.get("timings", {}), total=time.perf_counter() - t_start)
        return RasterPrediction(det, src.shape, src.georef, run.get("tiles", 0), run.get("skipped", 0),
                                run.get("dropped", 0), timings, tile_spec, infer, merge, src.bands_note,
                                dict(model.names))
    finally:
        if own:
            src.close()
