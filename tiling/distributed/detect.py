"""Stage 2 (an actor pool): each actor loads the model once, vetted as anywhere, and detects on the
items it is given: a whole image merged as ``predict_tiled`` merges it, or a band's raw tile detections."""
from __future__ import annotations

import pickle

from ..detections import Detections
from ..grid import TileSpec
from ..merge import MergeSpec
from ..models import InferSpec
from ..pipeline import predict_tiled
from ..tile_run import TileRun, array_reader
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
                item.det = predict_tiled(item.image, self.model, self.tiles, self.infer, self.merge).detections
            else:
                item.det = band_detections(item, self.model, self.tiles, self.infer)
                item.image = item.valid = None
        except Exception as exc:
            item.error, item.image = describe(exc), None
        return item


def band_detections(item: Item, model, tiles: TileSpec, infer: InferSpec) -> Detections:
    """The model on one band's tiles, in image coordinates with ``tile_index``, ``truncated`` and
    ``source``: predict_tiled's raw detections for those tiles."""
    run = TileRun.start(model, tiles, item.shape, infer)
    raw = run.detect(array_reader(item.image, item.valid, item.origin), [run.plan[i] for i in item.tiles])
    item.dropped += run.dropped
    return raw
