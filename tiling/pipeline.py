"""Patch-based inference end to end: plan tiles, run batches, map back, merge.

The model runs once at the lowest confidence the caller may want (``raw_conf``); the raw tile
detections are kept, so changing the confidence, merge method, metric, threshold, class-agnostic
switch or class filter re-merges them (:meth:`TiledPrediction.remerge`) without the model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np

from .detections import Detections
from .grid import Tile, count_tiles, plan_tiles, tiles_array
from .merge import check_merge_args, merge as merge_detections
from .models import Model, as_model

EDGE_MARGIN = 1.5  # px: a box this close to an inner tile edge was cut by it
DEFAULT_MAX_TILES = 10_000


@dataclass(frozen=True)
class MergeSettings:
    conf: float = 0.25
    method: str = "nms"
    metric: str = "ios"
    threshold: float = 0.5
    class_agnostic: bool = False
    classes: tuple[int, ...] | None = None


@dataclass
class TiledPrediction:
    """Everything one patch-based run produced.

    ``raw`` holds every tile detection in image coordinates with ``data["tile_index"]`` (-1 for the
    full-image pass), ``data["truncated"]`` and ``data["source"]``; ``detections`` is the merged result.
    """

    tiles: list[Tile]
    raw: Detections
    detections: Detections
    timings: dict[str, float]
    settings: MergeSettings
    image_shape: tuple[int, int]
    raw_conf: float
    names: dict[int, str] = field(default_factory=dict)

    def remerge(self, **changes) -> TiledPrediction:
        """A new result with other merge settings, from the cached raw detections (no model call).

        Accepts ``conf``, ``method`` (or ``merge``), ``metric``, ``threshold`` (or ``merge_threshold``),
        ``class_agnostic`` and ``classes``. ``conf`` below ``raw_conf`` cannot be honoured and raises.
        """
        aliases = {"merge": "method", "merge_threshold": "threshold"}
        changes = {aliases.get(k, k): v for k, v in changes.items()}
        if "classes" in changes and changes["classes"] is not None:
            changes["classes"] = tuple(int(c) for c in changes["classes"])
        settings = replace(self.settings, **changes)
        if settings.conf < self.raw_conf - 1e-9:
            raise ValueError(
                f"conf {settings.conf} is below the {self.raw_conf} the model ran at; run predict_tiled again"
            )
        start = time.perf_counter()
        merged = _merge_raw(self.raw, settings)
        timings = dict(self.timings, merge=time.perf_counter() - start)
        return replace(self, detections=merged, settings=settings, timings=timings)

    @property
    def tile_boxes(self) -> np.ndarray:
        return tiles_array(self.tiles)


def _merge_raw(raw: Detections, s: MergeSettings) -> Detections:
    candidates = raw.filter(conf=s.conf, classes=s.classes)
    return merge_detections(candidates, s.method, s.metric, s.threshold, s.class_agnostic)


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a numpy array (H x W x 3 uint8 BGR), got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be H x W x 3 (BGR), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}; use tiling.read_image to convert")
    return image


def _check_conf(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


def truncated_flags(xyxy: np.ndarray, tile_index: np.ndarray, tiles: Sequence[Tile], image_shape) -> np.ndarray:
    """True for boxes that touch a tile edge lying inside the image (the object was cut there)."""
    if len(xyxy) == 0:
        return np.zeros(0, bool)
    h, w = image_shape[:2]
    tb = tiles_array(list(tiles)).astype(np.float32)[np.maximum(tile_index, 0)]
    m = EDGE_MARGIN
    cut = (
        ((xyxy[:, 0] <= tb[:, 0] + m) & (tb[:, 0] > 0))
        | ((xyxy[:, 1] <= tb[:, 1] + m) & (tb[:, 1] > 0))
        | ((xyxy[:, 2] >= tb[:, 2] - m) & (tb[:, 2] < w))
        | ((xyxy[:, 3] >= tb[:, 3] - m) & (tb[:, 3] < h))
    )
    return cut & (tile_index >= 0)


def predict_full(image: np.ndarray, model, imgsz: int = 640, conf: float = 0.25, iou: float = 0.7,
                 classes: Sequence[int] | None = None, max_det: int = 300) -> Detections:
    """The ordinary one-pass prediction: the whole image resized to ``imgsz``."""
    image = _check_image(image)
    _check_conf("conf", conf)
    _check_conf("iou", iou)
    model = as_model(model)
    det = model.predict([image], imgsz=int(imgsz), conf=conf, iou=iou, classes=classes, max_det=max_det)[0]
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


def predict_tiled(
    image: np.ndarray,
    model,
    tile_size=640,
    overlap=0.25,
    conf: float = 0.25,
    iou: float = 0.7,
    merge: str = "nms",
    metric: str = "ios",
    merge_threshold: float = 0.5,
    class_agnostic: bool = False,
    batch_size: int = 8,
    include_full: bool = False,
    progress: Callable[[int, int], None] | None = None,
    classes: Sequence[int] | None = None,
    raw_conf: float | None = None,
    full_imgsz: int = 640,
    max_tiles: int | None = DEFAULT_MAX_TILES,
    max_det: int = 300,
    edge: str = "trim",
) -> TiledPrediction:
    """Patch-based prediction over an H x W x 3 uint8 BGR image. See the module docstring."""
    t_start = time.perf_counter()
    image = _check_image(image)
    conf = _check_conf("conf", conf)
    _check_conf("iou", iou)
    raw_conf = conf if raw_conf is None else min(_check_conf("raw_conf", raw_conf), conf)
    check_merge_args(merge, metric, merge_threshold)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch_size = int(batch_size)
    h, w = image.shape[:2]
    n_tiles = count_tiles((h, w), tile_size, overlap)
    if max_tiles is not None and n_tiles > max_tiles:
        raise ValueError(
            f"this would make {n_tiles} tiles, above the limit of {max_tiles}; use larger tiles or less overlap"
        )
    tiles = plan_tiles((h, w), tile_size, overlap, edge)
    model = as_model(model)
    timings = {"plan": time.perf_counter() - t_start, "infer": 0.0, "map": 0.0}
    parts: list[Detections] = []
    done = 0
    batches = tile_batches(tiles, batch_size)
    crops = ([image[t.y0 : t.y1, t.x0 : t.x1] for t in batch] for batch in batches)
    # The model may run the next batch while this loop maps the last one; it stays locked until closed.
    outputs = model.predict_batches(crops, imgsz=None, conf=raw_conf, iou=iou, classes=classes, max_det=max_det)
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
                progress(done, len(tiles))
    finally:
        outputs.close()  # also when the progress callback stops the run (Streamlit does on a rerun)
    if parts:
        raw = Detections.concat(parts, names=model.names)
    else:
        raw = Detections.empty(model.names, with_masks=model.task == "segment")
        raw.data["tile_index"] = np.zeros(0, np.int64)
    t0 = time.perf_counter()
    raw.data["truncated"] = truncated_flags(raw.xyxy, raw.data["tile_index"], tiles, (h, w))
    raw.data["source"] = np.full(len(raw), "tile")
    timings["map"] += time.perf_counter() - t0
    if include_full:
        t0 = time.perf_counter()
        full = predict_full(image, model, imgsz=full_imgsz, conf=raw_conf, iou=iou, classes=classes, max_det=max_det)
        timings["full"] = time.perf_counter() - t0
        if raw.masks is not None and full.masks is None:
            raw.masks = raw.mask_boxes = None
        raw = Detections.concat([raw, full], names=model.names)
    settings = MergeSettings(conf, merge.lower(), metric.lower(), float(merge_threshold), bool(class_agnostic),
                             tuple(int(c) for c in classes) if classes is not None else None)
    t0 = time.perf_counter()
    merged = _merge_raw(raw, settings)
    timings["merge"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    return TiledPrediction(tiles, raw, merged, timings, settings, (h, w), raw_conf, dict(model.names))


@dataclass(frozen=True)
class TileSuggestion:
    tile_size: int
    overlap: float
    reason: str


def suggest_tile_size(image: np.ndarray, model, conf: float = 0.25, imgsz: int = 640) -> TileSuggestion:
    """Propose a tile size and overlap for this image and model.

    Tiles run at their own resolution, so objects keep their pixel size; the tile is sized to the
    input size the model was trained at, grown if the cheap full-image pass sees objects large
    enough to need more context, and the overlap is made wide enough to hold the largest seen
    object whole in some tile. With no object seen, the choice follows the image resolution.
    """
    image = _check_image(image)
    model = as_model(model)
    h, w = image.shape[:2]
    base = int(getattr(model, "train_imgsz", 640) or 640)
    full = predict_full(image, model, imgsz=imgsz, conf=conf)

    def _round(v: float) -> int:
        return int(max(32, min(max(h, w), round(v / 32) * 32)))

    if len(full) == 0:
        tile = _round(min(base, max(h, w)))
        overlap = 0.25 if max(h, w) > tile else 0.0
        return TileSuggestion(tile, overlap, f"no object seen in a full-image pass; tiles at the model's "
                                             f"training size {base} px for a {w}x{h} image")
    sizes = np.maximum(full.xyxy[:, 2] - full.xyxy[:, 0], full.xyxy[:, 3] - full.xyxy[:, 1])
    big = float(np.percentile(sizes, 90))
    tile = _round(max(base, 4 * big))
    overlap = float(np.clip(round(1.2 * big / tile, 2), 0.1, 0.5)) if max(h, w) > tile else 0.0
    return TileSuggestion(tile, overlap, f"{len(full)} objects seen in a full-image pass, 90% under {big:.0f} px: "
                                         f"tiles of {tile} px with {overlap:.0%} overlap hold them whole")
