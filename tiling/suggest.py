"""Auto tile size for the page and the CLI: a tile size (and overlap) proposed for one image and model,
with the reason in words, from one grid of tiles at the model's input size (:mod:`tiling.object_sizes`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import TileSpec
from .models import InferSpec, as_model
from .models.base import tile_scale
from .object_sizes import PROBE_CONF
from .pipeline import check_image, probe_grid


@dataclass(frozen=True)
class TileSuggestion:
    tiles: TileSpec
    reason: str


def suggest_tile_size(image: np.ndarray, model, infer: InferSpec | None = None,
                      base: TileSpec | None = None) -> TileSuggestion:
    """Propose a tile size and overlap for this image and model (``edge``, ``max_tiles`` and
    ``offset_grid`` kept from ``base``).

    The image is tiled at the model's input size; the smaller objects found there set how much finer
    tiles must enlarge them (:func:`~tiling.object_sizes.choose_level`), and the larger ones how much
    overlap holds an object whole in some tile. A model with a fixed input enlarges any smaller tile to
    it, so the finer size alone is proposed; one that takes any size runs a tile at its own resolution,
    so the finer size comes as a pyramid level over tiles at its input size (enlarged, as
    ``predict_tiled(tile_size="auto")`` runs it).
    """
    image = check_image(image)
    model = as_model(model)
    base = base or TileSpec()
    infer = infer or InferSpec(conf=PROBE_CONF)
    h, w = image.shape[:2]
    first, _, probe, choice = probe_grid(image, model, base if not base.auto else TileSpec(), infer)
    side = first.size_xy[0]
    tile = choice.tile_size or side
    pyramid = choice.tile_size is not None and tile_scale(model, (tile, tile)) is None
    found = probe.filter(conf=PROBE_CONF)
    if len(found) and max(h, w) > tile:
        big = float(np.percentile(np.maximum(found.xyxy[:, 2] - found.xyxy[:, 0], found.xyxy[:, 3] - found.xyxy[:, 1]), 90))
        overlap = float(np.clip(round(1.2 * big / tile, 2), 0.1, 0.5))
        reason = f"{choice.reason}; {overlap:.0%} overlap holds 90% of them whole"
    else:
        overlap = first.overlap if max(h, w) > tile else 0.0
        reason = choice.reason
    spec = TileSpec(tile_size=side if pyramid else tile, levels=(tile,) if pyramid else (), overlap=overlap,
                    edge=base.edge, max_tiles=base.max_tiles, offset_grid=base.offset_grid)
    if pyramid:
        reason += f"; this model takes any input size, so they run as a second grid over {side} px tiles"
    return TileSuggestion(spec, reason)
