"""Which tile size? The same image and model over a range of tile sizes: objects found (and AP50 when
labels are given) against seconds, the trade-off every student asks about."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from .detections import Detections
from .evaluate import evaluate
from .grid import TileSpec
from .merge import MergeSpec
from .models import InferSpec, as_model
from .pipeline import check_image, predict_full, predict_tiled

SWEEP_SIZES = (0, 1280, 960, 640, 480, 320)  # 0: the whole image in one pass, for comparison


def sweep_tile_sizes(image: np.ndarray, model, sizes: Sequence[int] = SWEEP_SIZES, tiles: TileSpec | None = None,
                     infer: InferSpec | None = None, merge: MergeSpec | None = None,
                     labels: Detections | None = None,
                     progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """One row per size: ``size`` (0 = whole image), ``tiles``, ``objects``, ``seconds`` and ``ap50``
    (None without labels). Sizes that would pass ``tiles.max_tiles`` or exceed the image are skipped."""
    image = check_image(image)
    model = as_model(model)
    tiles, infer, merge = tiles or TileSpec(), infer or InferSpec(), merge or MergeSpec()
    h, w = image.shape[:2]
    rows = []
    for k, size in enumerate(sizes):
        spec = replace(tiles, tile_size=size) if size else tiles
        if size and (size > max(h, w) or (spec.max_tiles and spec.count((h, w)) > spec.max_tiles)):
            continue
        start = time.perf_counter()
        if size:
            pred = predict_tiled(image, model, spec, infer, merge)
            det, n_tiles = pred.detections, len(pred.tiles)
        else:
            det, n_tiles = predict_full(image, model, infer).filter(conf=merge.conf, classes=merge.classes), 1
        seconds = time.perf_counter() - start
        rows.append({"size": int(size), "tiles": n_tiles, "objects": len(det), "seconds": round(seconds, 3),
                     "ap50": None if labels is None else round(evaluate(det, labels).ap50, 4)})
        if progress is not None:
            progress(k + 1, len(sizes))
    return rows
