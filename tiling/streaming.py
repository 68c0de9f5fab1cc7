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
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from .detections import Detections
from .grid import TileSpec, row_groups
from .merge import MergeSpec, match_edges, merge as merge_detections
from .models import InferSpec, as_model
from .bands import BandSpec
from .georef import Georef
from .raster import RasterSource
from .settings import check_run
from .tile_run import TileRun, batch_order, in_run_order
from .util import Progress


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


def iter_raster(source: RasterSource, model, tiles: TileSpec, infer: InferSpec, merge: MergeSpec, *,
                progress: Progress | None = None, run: dict | None = None) -> Iterator[Detections]:
    """Merged detections region by region, each part final when it is yielded (raster pixels).

    ``run``, if given, receives the counters and timings as they grow (``tiles``, ``skipped``,
    ``dropped``, ``timings``).
    """
    model = as_model(model)
    state = TileRun.start(model, tiles, source.shape, infer, progress)
    state.timings["merge"] = 0.0
    order = batch_order(state.plan, infer.batch_size)
    # As many rows per region as tiles per batch: the trimmed last column of a region fills a batch.
    regions = row_groups(state.plan, infer.batch_size)
    carried: Detections | None = None
    for k, region in enumerate(regions):
        raw = state.detect(source.read, region).filter(conf=merge.conf, classes=merge.classes)
        t0 = time.perf_counter()
        if carried is not None and len(carried):
            raw = Detections.concat([carried, raw], names=model.names)
        raw = in_run_order(raw, order)
        next_y0 = regions[k + 1][0].y0 if k + 1 < len(regions) else math.inf
        done = settled(raw, merge, next_y0)
        part = merge_detections(raw[done], merge)
        carried = raw[~done]
        state.timings["merge"] += time.perf_counter() - t0
        if run is not None:
            run.update(tiles=len(state.plan), skipped=state.skipped, dropped=state.dropped,
                       timings=dict(state.timings))
        yield part


def predict_raster(source, model, tiles: TileSpec | None = None, infer: InferSpec | None = None,
                   merge: MergeSpec | None = None, *, bands: BandSpec | None = None, allow_vrt: bool = False,
                   progress: Progress | None = None, on_part: Callable[[Detections], None] | None = None,
                   **changes) -> RasterPrediction:
    """Patch-based prediction over a raster file (or an open :class:`RasterSource`), read window by window.

    Settings as in :func:`~tiling.pipeline.predict_tiled` (specs, or their fields by keyword);
    ``bands`` says how the raster's bands become the model's input; ``allow_vrt`` lets it be a VRT file or a
    GDAL virtual path (refused otherwise: they can name any file or URL). ``on_part(detections)`` sees
    each region's final detections as soon as they are merged (to write them out as the run goes).
    Raises :class:`~tiling.raster.RasterError` for a raster that cannot be read.
    """
    t_start = time.perf_counter()
    tile_spec, infer, merge = check_run(tiles, infer, merge, streamed=True, **changes)
    own = not isinstance(source, RasterSource)
    src = RasterSource(source, bands, allow_vrt=allow_vrt) if own else source
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
