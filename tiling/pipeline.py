"""Patch-based inference end to end: plan tiles, run batches, map back, merge.

Three settings objects, one per stage, drive a run: :class:`~tiling.grid.TileSpec` (where the model
looks), :class:`~tiling.models.InferSpec` (how it runs) and :class:`~tiling.merge.MergeSpec` (how the
tile detections become one answer). The model runs once at ``infer.conf``; the raw tile detections
are kept, so another merge spec at or above that confidence re-merges them
(:meth:`TiledPrediction.remerge`) without the model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from . import checks
from .detections import Detections
from .grid import Tile, TileSpec, tiles_array
from .merge import MergeSpec, merge as merge_detections
from .models import InferSpec, as_model
from .models.base import full_scale
from .object_sizes import choose_level, input_side
from .settings import check_merge_conf, check_run
from .tile_run import TileRun, array_reader
from .util import Progress


@dataclass
class TiledPrediction:
    """Everything one patch-based run produced.

    ``raw`` holds every tile detection in image coordinates with ``data["tile_index"]`` (-1 for the
    full-image pass), ``data["truncated"]`` and ``data["source"]``; ``detections`` is ``raw`` merged by
    ``merge``.
    """

    tiles: list[Tile]
    raw: Detections
    detections: Detections
    timings: dict[str, float]
    image_shape: tuple[int, int]
    tile_spec: TileSpec
    infer: InferSpec
    merge: MergeSpec
    names: dict[int, str] = field(default_factory=dict)
    tile_reason: str = ""  # with ``tile_size="auto"``: why these tile sizes

    def remerge(self, merge: MergeSpec | None = None, **changes) -> TiledPrediction:
        """This result under another merge spec (``merge``, or this one with fields changed by keyword),
        from the kept raw detections: no model call. A ``conf`` below the one the model ran at cannot be
        honoured and raises ``ValueError``."""
        spec = checks.with_changes(merge or self.merge, MergeSpec, changes)
        if spec == self.merge:
            return self
        check_merge_conf(self.infer, spec)
        start = time.perf_counter()
        merged = merge_detections(self.raw, spec)
        timings = dict(self.timings, merge=time.perf_counter() - start)
        return replace(self, detections=merged, merge=spec, timings=timings)

    @property
    def tile_boxes(self) -> np.ndarray:
        return tiles_array(self.tiles)


def check_image(image: np.ndarray) -> np.ndarray:
    """An H x W x 3 uint8 BGR array (a grey H x W one is expanded), or a ``ValueError`` saying why not."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array (H x W x 3 uint8 BGR), got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be H x W x 3 (BGR), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}; use tiling.read_image to convert")
    return image


def predict_full(image: np.ndarray, model, infer: InferSpec | None = None, **changes) -> Detections:
    """The ordinary one-pass prediction: the whole image resized to ``infer.imgsz`` on its long side.
    Keywords change fields of ``infer`` (``predict_full(image, model, imgsz=640, conf=0.25)``)."""
    image = check_image(image)
    spec = checks.with_changes(infer, InferSpec, changes)
    model = as_model(model)
    det = model.predict([image], spec, imgsz=spec.imgsz)[0]
    det.names = det.names or dict(model.names)
    n = len(det)
    det.data.update(tile_index=np.full(n, -1, np.int64), truncated=np.zeros(n, bool), source=np.full(n, "full"),
                    scale=np.full(n, full_scale(model, image.shape, spec.imgsz)))
    return det


def with_full_pass(raw: Detections, image: np.ndarray, model, infer: InferSpec, timings: dict[str, float]) -> Detections:
    """``raw`` (one image's tile detections) joined with the full-image pass when ``infer.include_full``
    asks for it (its time in ``timings["full"]``): every engine that holds the whole image (an image in
    memory, a video frame) adds it the same way."""
    if not infer.include_full:
        return raw
    t0 = time.perf_counter()
    full = predict_full(image, model, infer)
    timings["full"] = time.perf_counter() - t0
    if raw.masks is not None and full.masks is None:
        raw.masks = raw.mask_boxes = None
    return Detections.concat([raw, full], names=model.names)


def predict_tiled(image: np.ndarray, model, tiles: TileSpec | None = None, infer: InferSpec | None = None,
                  merge: MergeSpec | None = None, *, progress: Progress | None = None, **changes) -> TiledPrediction:
    """Patch-based prediction over an H x W x 3 uint8 BGR image.

    Give the specs, or change their fields by keyword:
    ``predict_tiled(image, model, tile_size=640, overlap=0.25, conf=0.25)``. ``progress(done, total)``
    is called after each batch of tiles; if it raises, the run stops there.
    """
    t_start = time.perf_counter()
    image = check_image(image)
    tile_spec, infer, merge = check_run(tiles, infer, merge, **changes)
    h, w = image.shape[:2]
    model = as_model(model)
    reason = ""
    if tile_spec.auto:
        tile_spec, raw, run, reason = _auto_levels(image, model, tile_spec, infer, progress)
        plan_seconds = 0.0  # planning is part of the two runs' reading
    else:
        run = TileRun.start(model, tile_spec, (h, w), infer, progress)
        plan_seconds = time.perf_counter() - t_start
        raw = run.detect(array_reader(image))
    timings = dict(run.timings, plan=plan_seconds)
    raw = with_full_pass(raw, image, model, infer, timings)
    t0 = time.perf_counter()
    merged = merge_detections(raw, merge)
    timings["merge"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    return TiledPrediction(run.plan, raw, merged, timings, (h, w), tile_spec, infer, merge, dict(model.names), reason)


def probe_grid(image: np.ndarray, model, tiles: TileSpec, infer: InferSpec, progress: Progress | None = None):
    """``(spec, run, raw, choice)``: ``tiles`` at the model's input size (at most the image's side), their
    run over ``image`` and raw detections, and the finer level the objects found call for (auto tile size's
    first grid, for ``predict_tiled`` and :func:`~tiling.suggest.suggest_tile_size` alike)."""
    side = input_side(model, image.shape[:2])
    spec = replace(tiles, tile_size=side, levels=())
    run = TileRun.start(model, spec, image.shape[:2], infer, progress)
    raw = run.detect(array_reader(image))
    return spec, run, raw, choose_level(raw, side)


def _auto_levels(image: np.ndarray, model, tiles: TileSpec, infer: InferSpec, progress: Progress | None):
    """``tile_size="auto"``: tiles at the model's input size, then the finer level the sizes of the objects
    they found call for (:func:`~tiling.object_sizes.choose_level`). Returns the resolved spec, the raw
    tile detections of both levels, the run (its plan and timings cover both) and the reason."""
    first, probe, raw, choice = probe_grid(image, model, tiles, infer, progress)
    if choice.tile_size is None:
        return first, raw, probe, choice.reason
    resolved = replace(first, levels=(choice.tile_size,))
    run = TileRun.start(model, resolved, image.shape[:2], infer, progress)
    run.handled = len(probe.plan)
    finer = run.detect(array_reader(image), run.plan[len(probe.plan):])
    run.timings = {k: run.timings.get(k, 0.0) + probe.timings.get(k, 0.0) for k in {*run.timings, *probe.timings}}
    return resolved, Detections.concat([raw, finer], names=model.names), run, choice.reason
