"""Stage 3: each image's files (:mod:`tiling.outputs`) as soon as it is done: whole images in the
pipeline's writer actors; an image cut into bands in one Ray task once all its bands are in, merging
them first."""
from __future__ import annotations

import pickle

import numpy as np

from ..detections import Detections
from ..grid import TileSpec
from ..merge import MergeSpec, merge as merge_detections
from ..models import InferSpec
from ..outputs import PREVIEW_SIDE, OutputFolder
from ..raster import RasterSource
from ..tile_run import batch_order, in_run_order
from ..uris import read_input
from .items import Item, Reading, describe


def write(batch: dict, folder: OutputFolder) -> dict:
    """Write whole images' files; bands pass on to the driver, their pixels dropped."""
    names, blobs = [], []
    for blob in batch["item"]:
        item: Item = pickle.loads(blob)
        if item.pieces == 1 and not item.raster and not item.error:
            try:
                item.objects = folder.write(item.entry, item.det, item.shape, item.image)
            except Exception as exc:
                item.error = describe(exc)
            item.det = None
        item.image = None
        names.append(item.entry.rel)
        blobs.append(pickle.dumps(item, protocol=5))
    return {"name": names, "item": blobs}


class Writer:
    """The write stage in a long-lived actor, for the reason :class:`~.cut.Cutter` gives."""

    def __init__(self, folder: OutputFolder):
        self.folder = folder

    def __call__(self, batch: dict) -> dict:
        return write(batch, self.folder)


def finish_bands(items: list[Item], folder: OutputFolder, tiles: TileSpec, infer: InferSpec, merge: MergeSpec,
                 reading: Reading) -> Item:
    """Merge one image's bands as predict_tiled merges its tiles (a raster's as predict_raster does), and
    write its files."""
    first = items[0]
    result = Item(first.entry, shape=first.shape)
    try:
        plan = tiles.plan(first.shape)
        raw = Detections.concat([i.det for i in sorted(items, key=lambda i: i.piece)])
        det = merge_detections(in_run_order(raw, batch_order(plan, infer.batch_size)), merge)
        if first.raster:
            result.objects = write_raster(first, det, folder, reading)
        else:
            image = read_input(first.entry.path, max_pixels=reading.max_pixels) if folder.with_images else None
            result.objects = folder.write(first.entry, det, first.shape, image)
    except Exception as exc:
        result.error = describe(exc)
    return result


def write_raster(item: Item, det: Detections, folder: OutputFolder, reading: Reading) -> int:
    """A raster's files, its detections most confident first as ``predict_raster`` gives them."""
    det = det[np.argsort(-det.confidence, kind="stable")]
    with RasterSource(item.entry.path, reading.bands, allow_vrt=reading.allow_vrt) as src:
        preview = src.overview(PREVIEW_SIDE) if folder.with_images else None
        return folder.write_raster(item.entry, det, item.shape, src.georef, reading.wgs84, preview)
