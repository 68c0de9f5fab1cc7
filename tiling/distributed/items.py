"""The work item that flows through the Ray pipeline, as one pickled column of a Ray Data row, and the
one-line error an image's failure is reported with."""
from __future__ import annotations

import pickle
from dataclasses import dataclass

import numpy as np

from ..bands import BandSpec
from ..detections import Detections
from ..imageio import ImageError
from ..models import ModelError
from ..inputs import Entry
from ..names import display_name


@dataclass
class Item:
    """One work item flowing through the pipeline: a whole image, or band ``piece`` of ``pieces``."""

    entry: Entry
    piece: int = 0
    pieces: int = 1
    shape: tuple[int, int] = (0, 0)
    origin: tuple[int, int] = (0, 0)  # (x, y) of the band's top-left pixel in the image
    tiles: tuple[int, ...] = ()  # the band's tiles: their indices in the image's plan
    image: np.ndarray | None = None
    det: Detections | None = None  # merged for a whole image, raw (tile_index set) for a band
    objects: int = 0
    error: str = ""
    raster: bool = False  # read window by window (tiling.raster): always in bands, nodata left out
    valid: np.ndarray | None = None  # a raster band's valid (not nodata) pixels; None: all valid
    dropped: int = 0  # boxes lying mostly on nodata, left out


@dataclass(frozen=True)
class Reading:
    """How a run reads its inputs: the pixel limit of a decoded image, how raster bands become BGR, GeoJSON
    in WGS 84 rather than the raster's own CRS, and whether VRT files and GDAL virtual paths may be opened."""

    max_pixels: int | None = None
    bands: BandSpec | None = None
    wgs84: bool = False
    allow_vrt: bool = False


def describe(exc: BaseException) -> str:
    """One line for a failed image: the library's own messages as they are, anything else with its type."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, (ImageError, ModelError, ValueError)):
        return display_name(text)
    return display_name(f"{type(exc).__name__}: {text}"[:400])


def to_row(item: Item) -> dict:
    """A Ray Data row: the item pickled whole (one bytes column, whatever its arrays' shapes)."""
    return {"name": item.entry.rel, "item": pickle.dumps(item, protocol=5)}
