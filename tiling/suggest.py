"""Auto tile size: a tile and overlap proposed from one cheap full-image pass."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import TileSpec
from .models import InferSpec, as_model
from .pipeline import check_image, predict_full


@dataclass(frozen=True)
class TileSuggestion:
    tiles: TileSpec
    reason: str


def suggest_tile_size(image: np.ndarray, model, infer: InferSpec | None = None,
                      base: TileSpec | None = None) -> TileSuggestion:
    """Propose a tile size and overlap for this image and model (other fields kept from ``base``).

    Tiles run at their own resolution, so objects keep their pixel size; the tile is sized to the
    input size the model was trained at, grown if the cheap full-image pass (``infer``) sees objects
    large enough to need more context, and the overlap is made wide enough to hold the largest seen
    object whole in some tile. With no object seen, the choice follows the image resolution.
    """
    image = check_image(image)
    model = as_model(model)
    base = base or TileSpec()
    h, w = image.shape[:2]
    trained = int(getattr(model, "train_imgsz", 640) or 640)
    full = predict_full(image, model, infer)

    def _round(v: float) -> int:
        return int(max(32, min(max(h, w), round(v / 32) * 32)))

    if len(full) == 0:
        tile = _round(min(trained, max(h, w)))
        overlap = 0.25 if max(h, w) > tile else 0.0
        return TileSuggestion(TileSpec(tile_size=tile, overlap=overlap, edge=base.edge, max_tiles=base.max_tiles),
                              f"no object seen in a full-image pass; tiles at the model's training size {trained} px "
                              f"for a {w}x{h} image")
    sizes = np.maximum(full.xyxy[:, 2] - full.xyxy[:, 0], full.xyxy[:, 3] - full.xyxy[:, 1])
    big = float(np.percentile(sizes, 90))
    tile = _round(max(trained, 4 * big))
    overlap = float(np.clip(round(1.2 * big / tile, 2), 0.1, 0.5)) if max(h, w) > tile else 0.0
    return TileSuggestion(TileSpec(tile_size=tile, overlap=overlap, edge=base.edge, max_tiles=base.max_tiles),
                          f"{len(full)} objects seen in a full-image pass, 90% under {big:.0f} px: tiles of {tile} px "
                          f"with {overlap:.0%} overlap hold them whole")
