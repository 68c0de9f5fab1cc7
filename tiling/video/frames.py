"""Tile detections of consecutive frames, run through the shared tile core in common batches.

A 1080p frame cut in 640 px tiles at 25% overlap is 12 tiles: at a batch of 8 that is one full batch
and one of 4. Run together, the tiles of a few frames fill every batch. The frames' plans are laid end
to end as one :class:`~tiling.tile_run.TileRun` plan (frame ``k``'s tile ``i`` has index
``k * n + i``, its own pixel coordinates, and a reader that cuts it from frame ``k``), so the core does
everything it does for one image: batches, model call, shift, cut flags. Each frame's part is then
given back its own tile indices and put in the order a one-frame run sees its tiles
(:func:`~tiling.tile_run.in_run_order`), which is what makes the merge, and so the answer, equal to
:func:`~tiling.pipeline.predict_tiled` on that frame alone.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Sequence

import numpy as np

from ..detections import Detections
from ..grid import Tile, TileSpec
from ..models import InferSpec, Model
from ..pipeline import with_full_pass
from ..tile_run import TileReader, TileRun, batch_order, in_run_order

MAX_FRAMES_PER_GROUP = 8  # frames decoded and held at once for shared batches


def frames_per_group(tiles_per_frame: int, batch_size: int) -> int:
    """How many consecutive frames share batches: the fewest whose tiles fill whole batches, at most
    :data:`MAX_FRAMES_PER_GROUP` (frames held in memory at once)."""
    n = max(1, int(tiles_per_frame))
    whole = batch_size // math.gcd(n, batch_size)  # n * whole is a multiple of batch_size
    return max(1, min(whole, MAX_FRAMES_PER_GROUP))


def _reader(frames: Sequence[np.ndarray], n: int) -> TileReader:
    def read(t: Tile) -> tuple[np.ndarray, None]:
        return frames[t.index // n][t.y0:t.y1, t.x0:t.x1], None

    return read


def detect_frames(model: Model, tiles: TileSpec, infer: InferSpec, frames: Sequence[np.ndarray],
                  timings: dict[str, float] | None = None) -> list[Detections]:
    """Each frame's raw detections (tiles, plus the full pass when ``infer.include_full``), as
    :func:`~tiling.pipeline.predict_tiled` keeps them in ``raw``; ``timings`` accumulates the stages."""
    if not frames:
        return []
    if tiles.levels and len(frames) > 1:  # a pyramid's levels are told apart by tile index: a frame per run
        return [det for frame in frames for det in detect_frames(model, tiles, infer, [frame], timings)]
    shape = frames[0].shape[:2]
    run = TileRun.start(model, tiles, shape, infer)
    plan, n = run.plan, len(run.plan)
    run.plan = [replace(t, index=k * n + t.index) for k in range(len(frames)) for t in plan]
    raw = run.detect(_reader(frames, n))
    order = batch_order(plan, infer.batch_size)
    frame_of = raw.data["tile_index"] // n
    out: list[Detections] = []
    spent = dict(run.timings)
    for k, frame in enumerate(frames):
        part = raw[frame_of == k]
        part.data["tile_index"] = part.data["tile_index"] - k * n
        full: dict[str, float] = {}
        out.append(with_full_pass(in_run_order(part, order), frame, model, infer, full))
        spent["full"] = spent.get("full", 0.0) + full.get("full", 0.0)
    if timings is not None:
        for key, value in spent.items():
            timings[key] = timings.get(key, 0.0) + value
    return out


def tiles_in_plan(tiles: TileSpec, shape: tuple[int, int]) -> int:
    """Tiles per frame of ``shape`` (h, w)."""
    return len(tiles.plan((int(shape[0]), int(shape[1]))))


def elapsed(timings: dict[str, float], key: str, t0: float) -> float:
    """Add the time since ``t0`` to ``timings[key]``; the current time, for the next stage."""
    now = time.perf_counter()
    timings[key] = timings.get(key, 0.0) + now - t0
    return now
