"""The tile loop every engine shares: read tiles, run them through the model in batches, map back.

An engine (an image in memory, a raster read window by window, a band of a Ray run, a video frame)
supplies only a :data:`TileReader`; :class:`TileRun` owns the rest: batches of one tile size, the
model call, tiles that are all nodata (not run) and boxes lying mostly on nodata (dropped), the shift
to image coordinates, ``tile_index``, the empty case, the cut flags, the ``source`` tag and each view's
``scale``; the levels of a tile pyramid (:attr:`TileSpec.levels`) each run at their own scale. Its
detections come out in run order; :func:`in_run_order` puts parts that ran elsewhere back in it, so
every engine's merge breaks ties in confidence the same way.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from .detections import Detections
from .grid import Tile, TileSpec
from .merge import truncated_flags
from .models import InferSpec, Model
from .models.base import level_scale, tile_scale
from .util import Progress

#: ``read(tile) -> (BGR crop, valid-pixel mask or None when every pixel is valid)``.
TileReader = Callable[[Tile], "tuple[np.ndarray, np.ndarray | None]"]
NODATA_SHARE = 0.5  # a box with less than this share of valid pixels lies in nodata and is dropped


def array_reader(image: np.ndarray, valid: np.ndarray | None = None, origin: tuple[int, int] = (0, 0)) -> TileReader:
    """Tiles cut from an array in memory whose top-left pixel is ``origin`` (x, y) of the image."""
    ox, oy = origin

    def read(t: Tile) -> tuple[np.ndarray, np.ndarray | None]:
        window = (slice(t.y0 - oy, t.y1 - oy), slice(t.x0 - ox, t.x1 - ox))
        return image[window], None if valid is None else valid[window]

    return read


def tile_batches(tiles: Sequence[Tile], batch_size: int) -> list[list[Tile]]:
    """Tiles in batches of one size each (edge tiles may be smaller), in plan order within a size:
    a batch of mixed sizes would have to run tile by tile."""
    by_size: dict[tuple[int, int], list[Tile]] = {}
    for t in tiles:
        by_size.setdefault((t.height, t.width), []).append(t)
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


def batch_order(plan: Sequence[Tile], batch_size: int) -> np.ndarray:
    """Each tile's position in :func:`tile_batches` order: the order a whole-image run sees the tiles in,
    which decides ties in confidence when parts of a run are merged elsewhere (by region or by band)."""
    order = np.empty(len(plan), np.int64)
    order[[t.index for batch in tile_batches(plan, batch_size) for t in batch]] = np.arange(len(plan))
    return order


def in_run_order(raw: Detections, order: np.ndarray) -> Detections:
    """``raw`` (tile detections with ``tile_index``) sorted stably into the order of :func:`batch_order`."""
    return raw[np.argsort(order[raw.data["tile_index"]], kind="stable")]


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


@dataclass
class TileRun:
    """One run over an image's tile plan: the model and settings, and the counters and timings that grow
    as :meth:`detect` runs parts of the plan (all of it at once, region by region, or one band)."""

    model: Model
    plan: list[Tile]
    image_shape: tuple[int, int]
    infer: InferSpec
    scales: tuple[float | None, ...]  # per level of the tile pyramid: how much its tiles are enlarged
    level_starts: tuple[int, ...]  # per level: the index of its first tile in ``plan``
    progress: Progress | None = None
    handled: int = 0  # tiles run or skipped
    skipped: int = 0  # tiles that were all nodata
    dropped: int = 0  # boxes lying mostly on nodata
    reported: int = -1  # ``handled`` when progress was last called
    timings: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "infer": 0.0, "map": 0.0})

    @classmethod
    def start(cls, model: Model, tiles: TileSpec, image_shape: tuple[int, int], infer: InferSpec,
              progress: Progress | None = None) -> TileRun:
        """A run of ``model`` (a loaded model: see :func:`~tiling.models.as_model`) over the plan of ``tiles``."""
        shape = (int(image_shape[0]), int(image_shape[1]))
        levels = tiles.level_specs
        starts = np.cumsum([0] + [level.count(shape) for level in levels[:-1]])  # without planning twice
        scales = (tile_scale(model, levels[0].size_xy), *(level_scale(model, level.size_xy) for level in levels[1:]))
        return cls(model, tiles.plan(shape), shape, infer, scales, tuple(int(v) for v in starts), progress)

    def level_of(self, tile_index: np.ndarray) -> np.ndarray:
        """The pyramid level each tile index belongs to (0: the tile size asked for)."""
        return np.searchsorted(np.asarray(self.level_starts), tile_index, side="right") - 1

    def view_scale(self, tile_index: np.ndarray) -> np.ndarray:
        """Model input pixels per image pixel of the tiles ``tile_index`` name (1 where tiles run as they are)."""
        scales = np.array([1.0 if s is None else s for s in self.scales], np.float64)
        return scales[self.level_of(tile_index)]

    def detect(self, read: TileReader, tiles: Sequence[Tile] | None = None) -> Detections:
        """The detections of ``tiles`` (default: the whole plan) in image coordinates, in run order, with
        ``tile_index``, ``truncated`` and ``source`` ("tile")."""
        parts: list[Detections] = []
        chosen = self.plan if tiles is None else list(tiles)
        level = self.level_of(np.array([t.index for t in chosen], np.int64))
        for k, scale in enumerate(self.scales):
            mine = [t for t, lv in zip(chosen, level) if lv == k]
            if mine:
                self._detect_level(read, mine, scale, parts)
        self._report()  # tiles skipped after the last batch
        t0 = time.perf_counter()
        raw = self._gathered(parts)
        self.timings["map"] += time.perf_counter() - t0
        return raw

    def _detect_level(self, read: TileReader, tiles: list[Tile], scale: float | None, parts: list[Detections]) -> None:
        """Run one pyramid level's ``tiles`` (all at ``scale``), adding their detections to ``parts``."""
        pending: deque = deque()  # (tiles, valid masks) of each batch handed to the model, oldest first
        outputs = self.model.predict_batches(self._crops(read, tiles, pending), self.infer, imgsz=None, scale=scale)
        try:
            while True:
                t0, read0 = time.perf_counter(), self.timings["read"]
                try:
                    results = next(outputs)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                kept, masks = pending.popleft()
                parts.extend(self._in_image(kept, results, masks))
                self.timings["infer"] += (t1 - t0) - (self.timings["read"] - read0)
                self.timings["map"] += time.perf_counter() - t1
                self.handled += len(kept)
                self._report()
        finally:
            outputs.close()  # also when the progress callback stops the run (Streamlit does on a rerun)

    def _crops(self, read: TileReader, tiles: Sequence[Tile], pending: deque) -> Iterator[list[np.ndarray]]:
        for batch in tile_batches(tiles, self.infer.batch_size):
            t0 = time.perf_counter()
            kept, images, masks = [], [], []
            for t in batch:
                image, valid = read(t)
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

    def _in_image(self, tiles: list[Tile], results: list[Detections], masks: list) -> Iterator[Detections]:
        for t, det, valid in zip(tiles, results, masks):
            if len(det) and valid is not None:
                n = len(det)
                det = drop_in_nodata(det, valid)
                self.dropped += n - len(det)
            if len(det):
                det = det.shifted(t.x0, t.y0)
                det.data["tile_index"] = np.full(len(det), t.index, np.int64)
                yield det

    def _gathered(self, parts: list[Detections]) -> Detections:
        if parts:
            raw = Detections.concat(parts, names=self.model.names)
        else:
            raw = Detections.empty_for(self.model)
            raw.data["tile_index"] = np.zeros(0, np.int64)
        raw.data["truncated"] = truncated_flags(raw.xyxy, raw.data["tile_index"], self.plan, self.image_shape)
        raw.data["source"] = np.full(len(raw), "tile")
        raw.data["scale"] = self.view_scale(raw.data["tile_index"])
        return raw

    def _report(self) -> None:
        if self.progress is not None and self.handled != self.reported:
            self.reported = self.handled
            self.progress(self.handled, len(self.plan))
