"""Stage 1 (reader actors): read an image, or a raster window by window, and cut it into work items: the
whole image, or bands of whole tile rows that spread its tiles over the actors."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Iterator

import numpy as np

from ..grid import Tile, TileSpec, row_groups
from ..imageio import check_pixels
from ..inputs import Entry
from ..models import InferSpec
from ..raster import RasterSource, should_stream
from ..uris import is_uri, read_input
from .items import Item, Reading, describe, to_row


def cut(row: dict, tiles: TileSpec, infer: InferSpec, piece_tiles: int, reading: Reading) -> Iterator[dict]:
    """Read one image and cut it into work items (one, or bands of whole tile rows); a raster is read
    band by band, each band's window when its item is made, once it is known that its GeoJSON can be
    written (``wgs84``: it can be reprojected)."""
    entry: Entry = pickle.loads(row["item"])
    try:
        if is_raster(entry.path, reading.max_pixels):
            yield from cut_raster(entry, tiles, infer, piece_tiles, reading)
            return
        image = read_input(entry.path, max_pixels=reading.max_pixels)
        plan = tiles.plan(image.shape)
    except Exception as exc:  # reported for this image; the run goes on
        yield to_row(Item(entry, error=describe(exc)))
        return
    h, w = image.shape[:2]
    if len(plan) <= piece_tiles or infer.include_full or tiles.levels:  # these need the whole image in one place
        yield to_row(Item(entry, shape=(h, w), image=image))
        return
    spans = tile_row_bands(plan, piece_tiles)
    for k, (indices, y0, y1) in enumerate(spans):
        yield to_row(Item(entry, k, len(spans), (h, w), (0, y0), indices, np.ascontiguousarray(image[y0:y1])))


class Cutter:
    """The cut stage in a long-lived actor rather than in Ray tasks: Ray stops idle task workers beyond
    its soft limit (one per CPU, which the model actors take) after a second, so a task would often run
    in a freshly started worker, whose imports (~2 CPU-s) cost far more than reading an image (~0.03 s)."""

    def __init__(self, **settings):
        self.settings = settings  # cut()'s keyword arguments

    def __call__(self, row: dict) -> Iterator[dict]:
        yield from cut(row, **self.settings)


def tile_row_bands(plan: list, piece_tiles: int) -> list[tuple[tuple[int, ...], int, int]]:
    """(tile indices, y0, y1) of each band: whole rows of tiles (:func:`~tiling.grid.row_groups`, so an
    offset grid's rows go with the first grid's rows beside them), about ``piece_tiles`` tiles in all,
    and the rows of pixels they cover."""
    per_row = max((len(row) for row in row_groups(plan, 1)), default=1)
    return [(tuple(t.index for t in band), min(t.y0 for t in band), max(t.y1 for t in band))
            for band in row_groups(plan, max(1, piece_tiles // per_row))]


def is_raster(path: Path, max_pixels: int | None) -> bool:
    """A file the raster reader streams (``tiling.raster.should_stream``)."""
    return not is_uri(path) and should_stream(path, max_pixels)


def cut_raster(entry: Entry, tiles: TileSpec, infer: InferSpec, piece_tiles: int, reading: Reading) -> Iterator[dict]:
    """A raster's bands of tile rows, each read as its own window with its valid-pixel mask."""
    if tiles.levels:
        raise ValueError("levels (a tile pyramid) is not available for a streamed raster; run one tile size")
    with RasterSource(entry.path, reading.bands, allow_vrt=reading.allow_vrt) as src:
        h, w = src.shape
        if reading.max_pixels is not None:
            check_pixels(w, h, entry.shown, reading.max_pixels)
        if reading.wgs84:  # before any model runs on it, as the single-process run checks
            src.georef.check_wgs84(src.label)
        spans = tile_row_bands(tiles.plan((h, w)), piece_tiles)
        for k, (indices, y0, y1) in enumerate(spans):
            image, valid = src.read(Tile(0, y0, w, y1))
            yield to_row(Item(entry, k, len(spans), (h, w), (0, y0), indices, image, raster=True, valid=valid))
