"""Stage 2 (an actor pool): each actor loads the model once, vetted as anywhere, and detects on the
items it is given: a whole image merged as ``predict_tiled`` merges it, or a band's raw tile detections."""
from __future__ import annotations

import pickle

import numpy as np

from ..detections import Detections
from ..grid import TileSpec
from ..merge import MergeSpec
from ..models import InferSpec
from .cluster import claim_cores
from .items import Item, describe, to_row
from .shipping import Shipment, load


class Detect:
    """The actor: loads the model once, then detects on the items it is given."""

    def __init__(self, shipment: Shipment, cpus: float, tiles: TileSpec, infer: InferSpec, merge: MergeSpec):
        self._cores = claim_cores(cpus)
        self.model = load(shipment)
        self.tiles, self.infer, self.merge = tiles, infer, merge

    def __call__(self, batch: dict) -> dict:
        out = [to_row(self._one(pickle.loads(blob))) for blob in batch["item"]]
        return {"name": [r["name"] for r in out], "item": [r["item"] for r in out]}

    def _one(self, item: Item) -> Item:
        if item.error:
            return item
        try:
            if item.pieces == 1 and not item.raster:
                from ..pipeline import predict_tiled

                item.det = predict_tiled(item.image, self.model, self.tiles, self.infer, self.merge).detections
            else:
                item.det = band_detections(item, self.model, self.tiles, self.infer)
                item.image = item.valid = None
        except Exception as exc:
            item.error, item.image = describe(exc), None
        return item


def band_detections(item: Item, model, tiles: TileSpec, infer: InferSpec) -> Detections:
    """The model on one band's tiles, in image coordinates with ``tile_index``: predict_tiled's raw
    detections for those tiles."""
    from ..models.base import tile_scale
    from ..pipeline import tile_batches
    from ..streaming import in_raster

    full_plan = tiles.plan(item.shape)
    plan = [full_plan[i] for i in item.tiles]
    ox, oy = item.origin

    def window(array: np.ndarray, t) -> np.ndarray:
        return array[t.y0 - oy : t.y1 - oy, t.x0 - ox : t.x1 - ox]

    if item.valid is not None:  # a raster's tiles that are all nodata are not run
        plan = [t for t in plan if window(item.valid, t).any()]
    batches = tile_batches(plan, infer.batch_size)
    crops = ([window(item.image, t) for t in batch] for batch in batches)
    parts = []
    outputs = model.predict_batches(crops, infer, imgsz=None, scale=tile_scale(model, tiles.size_xy))
    try:
        for batch in batches:
            for t, det in zip(batch, next(outputs)):
                det, dropped = in_raster(det, t, None if item.valid is None else window(item.valid, t))
                item.dropped += dropped
                if len(det):
                    parts.append(det)
    finally:
        outputs.close()
    if parts:
        return Detections.concat(parts, names=model.names)
    raw = Detections.empty_for(model)
    raw.data["tile_index"] = np.zeros(0, np.int64)
    return raw
