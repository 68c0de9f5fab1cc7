"""Auto tile size for the page and the CLI: a tile size (and overlap) proposed for one image and model,
with the reason in words, from one grid of tiles at the model's input size (:mod:`tiling.object_sizes`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import TileSpec
from .models import InferSpec, as_model
from .object_sizes import PROBE_CONF, choose_level, input_side
from .pipeline import check_image
from .tile_run import TileRun, array_reader


@dataclass(frozen=True)
class TileSuggestion:
    tiles: TileSpec
    reason: str


def suggest_tile_size(image: np.ndarray, model, infer: InferSpec | None = None,
                      base: TileSpec | None = None) -> TileSuggestion:
    """Propose a tile size and overlap for this image and model (other fields kept from ``base``).

    The image is tiled at the model's input size; the smaller objects found there set how much finer
    tiles must enlarge them (:func:`~tiling.object_sizes.choose_level`), and the larger ones how much
    overlap holds an object whole in some tile. ``predict_tiled(tile_size="auto")`` runs both grids as a
    pyramid; this proposes the one size a slider can show.
    """
    image = check_image(image)
    model = as_model(model)
    base = base or TileSpec()
    infer = infer or InferSpec(conf=PROBE_CONF)
    h, w = image.shape[:2]
    side = min(input_side(model), max(h, w))
    first = TileSpec(tile_size=side, overlap=base.overlap if not base.auto else 0.25, edge=base.edge,
                     max_tiles=base.max_tiles)
    probe = TileRun.start(model, first, (h, w), infer).detect(array_reader(image))
    choice = choose_level(probe, side)
    tile = choice.tile_size or side
    found = probe.filter(conf=PROBE_CONF)
    if len(found) and max(h, w) > tile:
        big = float(np.percentile(np.maximum(found.xyxy[:, 2] - found.xyxy[:, 0], found.xyxy[:, 3] - found.xyxy[:, 1]), 90))
        overlap = float(np.clip(round(1.2 * big / tile, 2), 0.1, 0.5))
        reason = f"{choice.reason}; {overlap:.0%} overlap holds 90% of them whole"
    else:
        overlap = first.overlap if max(h, w) > tile else 0.0
        reason = choice.reason
    return TileSuggestion(TileSpec(tile_size=tile, overlap=overlap, edge=base.edge, max_tiles=base.max_tiles), reason)
