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
from typing import Callable, Sequence

import numpy as np

from . import checks
from .detections import Detections
from .grid import Tile, TileSpec, tiles_array
from .merge import MergeSpec, merge as merge_detections, truncated_flags
from .models import InferSpec, as_model
from .models.base import tile_scale

Progress = Callable[[int, int], None]
_SPECS = (TileSpec, InferSpec, MergeSpec)


def split_settings(tiles: TileSpec | None = None, infer: InferSpec | None = None, merge: MergeSpec | None = None,
                   **changes) -> tuple[TileSpec, InferSpec, MergeSpec]:
    """The three specs, each with the keyword settings that name one of its fields changed.

    A name several specs share (``conf``, ``classes``) changes each of them: ``conf=0.25`` runs the
    model at 0.25 and keeps what it finds at 0.25.
    """
    known = set().union(*(checks.field_names(cls) for cls in _SPECS))
    unknown = set(changes) - known
    if unknown:
        raise TypeError(f"unknown setting {', '.join(sorted(unknown))}; the settings are {', '.join(sorted(known))}")
    out = []
    for spec, cls in zip((tiles, infer, merge), _SPECS):
        mine = {k: v for k, v in changes.items() if k in checks.field_names(cls)}
        out.append(checks.with_changes(spec, cls, mine))
    return out[0], out[1], out[2]


def check_merge_conf(infer: InferSpec, merge: MergeSpec) -> None:
    """Refuse a merge conf below the conf the model runs at: detections under it were never made, so the
    run would quietly keep fewer than it says."""
    if merge.conf < infer.conf - 1e-9:
        raise ValueError(f"the merge conf {merge.conf} is below the {infer.conf} the model runs at")


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

    def remerge(self, merge: MergeSpec | None = None, **changes) -> TiledPrediction:
        """This result under another merge spec (``merge``, or this one with fields changed by keyword),
        from the kept raw detections: no model call. A ``conf`` below the one the model ran at cannot be
        honoured and raises ``ValueError``."""
        spec = checks.with_changes(merge or self.merge, MergeSpec, changes)
        if spec == self.merge:
            return self
        if spec.conf < self.infer.conf - 1e-9:
            raise ValueError(f"conf {spec.conf} is below the {self.infer.conf} the model ran at; "
                             "run predict_tiled again with a lower infer conf")
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
    det.data.update(tile_index=np.full(n, -1, np.int64), truncated=np.zeros(n, bool), source=np.full(n, "full"))
    return det


def tile_batches(tiles: Sequence[Tile], batch_size: int) -> list[list[Tile]]:
    """Tiles in batches of one size each (edge tiles may be smaller), in plan order within a size:
    a batch of mixed sizes would have to run tile by tile."""
    by_size: dict[tuple[int, int], list[Tile]] = {}
    for t in tiles:
        by_size.setdefault((t.height, t.width), []).append(t)
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


def batch_order(plan: Sequence[Tile], batch_size: int) -> np.ndarray:
    """Each tile's position in :func:`tile_batches` order: the order ``predict_tiled`` sees the tiles in,
    which decides ties in confidence when parts of a run are merged elsewhere (by region or by band)."""
    order = np.empty(len(plan), np.int64)
    order[[t.index for batch in tile_batches(plan, batch_size) for t in batch]] = np.arange(len(plan))
    return order


def predict_tiled(image: np.ndarray, model, tiles: TileSpec | None = None, infer: InferSpec | None = None,
                  merge: MergeSpec | None = None, *, progress: Progress | None = None, **changes) -> TiledPrediction:
    """Patch-based prediction over an H x W x 3 uint8 BGR image.

    Give the specs, or change their fields by keyword:
    ``predict_tiled(image, model, tile_size=640, overlap=0.25, conf=0.25)``. ``progress(done, total)``
    is called after each batch of tiles; if it raises, the run stops there.
    """
    t_start = time.perf_counter()
    image = check_image(image)
    tile_spec, infer, merge = split_settings(tiles, infer, merge, **changes)
    check_merge_conf(infer, merge)
    h, w = image.shape[:2]
    plan = tile_spec.plan((h, w))
    model = as_model(model)
    timings = {"plan": time.perf_counter() - t_start, "infer": 0.0, "map": 0.0}
    raw = _run_tiles(image, model, plan, infer, tile_scale(model, tile_spec.size_xy), progress, timings)
    if infer.include_full:
        t0 = time.perf_counter()
        full = predict_full(image, model, infer)
        timings["full"] = time.perf_counter() - t0
        if raw.masks is not None and full.masks is None:
            raw.masks = raw.mask_boxes = None
        raw = Detections.concat([raw, full], names=model.names)
    t0 = time.perf_counter()
    merged = merge_detections(raw, merge)
    timings["merge"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    return TiledPrediction(plan, raw, merged, timings, (h, w), tile_spec, infer, merge, dict(model.names))


def _run_tiles(image: np.ndarray, model, plan: list[Tile], infer: InferSpec, scale: float | None,
               progress: Progress | None, timings: dict[str, float]) -> Detections:
    """Every tile's detections in image coordinates, with ``tile_index``, ``truncated`` and ``source``."""
    parts: list[Detections] = []
    done = 0
    batches = tile_batches(plan, infer.batch_size)
    crops = ([image[t.y0 : t.y1, t.x0 : t.x1] for t in batch] for batch in batches)
    # The model may run the next batch while this loop maps the last one; it stays locked until closed.
    outputs = model.predict_batches(crops, infer, imgsz=None, scale=scale)
    try:
        for batch in batches:
            t0 = time.perf_counter()
            results = next(outputs)
            t1 = time.perf_counter()
            for t, det in zip(batch, results):
                if len(det):
                    det = det.shifted(t.x0, t.y0)
                    det.data["tile_index"] = np.full(len(det), t.index, np.int64)
                    parts.append(det)
            timings["infer"] += t1 - t0
            timings["map"] += time.perf_counter() - t1
            done += len(batch)
            if progress is not None:
                progress(done, len(plan))
    finally:
        outputs.close()  # also when the progress callback stops the run (Streamlit does on a rerun)
    if parts:
        raw = Detections.concat(parts, names=model.names)
    else:
        raw = Detections.empty_for(model)
        raw.data["tile_index"] = np.zeros(0, np.int64)
    t0 = time.perf_counter()
    raw.data["truncated"] = truncated_flags(raw.xyxy, raw.data["tile_index"], plan, image.shape)
    raw.data["source"] = np.full(len(raw), "tile")
    timings["map"] += time.perf_counter() - t0
    return raw
