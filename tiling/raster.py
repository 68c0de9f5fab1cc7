"""Rasters too large to decode whole (GeoTIFF, BigTIFF, COG, JPEG 2000, VRT...), read window by window.

A 40,000 x 40,000 RGB orthomosaic is 4.8 GB decoded; :class:`RasterSource` opens it with rasterio
(GDAL) and hands out one tile's window at a time as the H x W x 3 uint8 BGR array the models take,
with a mask of its valid (not nodata) pixels. How the raster's bands become those three channels is
set by a :class:`~tiling.bands.BandSpec`; what may be opened at all (no VRT or GDAL virtual path unless
``allow_vrt=True``) by :mod:`tiling.raster_open`.
"""
from __future__ import annotations

import math
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np

from . import checks
from .bands import STRETCH_SIDE, BandSpec, choose_bands, stretch_ranges, to_bgr
from .georef import georef_of
from .grid import Tile
from .imageio import IMAGE_SUFFIXES, MAX_PIXELS
from .optional import installed
from .raster_open import RasterError, env, first_line, gdal_path, open_dataset, pointer_reason

# File name suffixes always read through GDAL: GeoTIFF and the formats Pillow does not read.
RASTER_SUFFIXES = (".tif", ".tiff", ".gtif", ".jp2", ".j2k", ".vrt", ".img", ".ntf", ".nitf")
TIFF_SUFFIXES = (".tif", ".tiff")


def should_stream(path, max_pixels: int | None = None) -> bool:
    """True for a file to read window by window rather than decode whole: a GDAL format that is not an
    ordinary photo (JPEG 2000, VRT, a file GDAL opens whatever its name), or a TIFF that is
    georeferenced or larger than ``max_pixels`` (default ``PATCHWISE_MAX_PIXELS``). Photos, plain TIFFs
    among them, keep the ordinary path; a file GDAL cannot open does too, whose reader then says why.
    A VRT or other description of other files is not opened here: the raster reader refuses it, or
    reads it when allowed."""
    path = Path(path)
    suffix = path.suffix.lower()
    if (suffix in IMAGE_SUFFIXES and suffix not in TIFF_SUFFIXES) or not path.is_file():
        return False
    if pointer_reason(path):
        return True
    if not installed("rasterio"):  # without patchwise[geo]: a TIFF is a photo, another raster says what to install
        return suffix in RASTER_SUFFIXES and suffix not in TIFF_SUFFIXES
    import rasterio

    try:
        with warnings.catch_warnings(), env():
            warnings.simplefilter("ignore")
            with rasterio.open(gdal_path(path)) as ds:
                if suffix not in TIFF_SUFFIXES:
                    return True
                georeferenced = ds.crs is not None or not ds.transform.is_identity or bool(ds.gcps[0])
                return georeferenced or ds.width * ds.height > (MAX_PIXELS if max_pixels is None else max_pixels)
    except Exception:  # not something GDAL reads
        return suffix in RASTER_SUFFIXES and suffix not in TIFF_SUFFIXES


class RasterSource:
    """An open raster: its size, the bands the model sees, its georeferencing, and windows read as
    H x W x 3 uint8 BGR. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path, bands: BandSpec | None = None, allow_vrt: bool = False):
        self.path = Path(path)
        self.label = self.path.name or str(self.path)
        self.spec = bands or BandSpec()
        self.ds = open_dataset(path, self.label, allow_vrt)
        try:
            with env():
                self._setup()
        except Exception:
            self.close()
            raise

    # -- opening -----------------------------------------------------------------------------
    def _setup(self) -> None:
        ds = self.ds
        if ds.count == 0:
            subs = ds.subdatasets
            inner = (f": it holds {len(subs)} subdatasets ({subs[0]}{', ...' if len(subs) > 1 else ''}); extract "
                     "one to a GeoTIFF first, e.g. with gdal_translate") if subs else ""
            raise RasterError(f"{self.label} has no bands{inner}")
        if ds.width < 1 or ds.height < 1:
            raise RasterError(f"{self.label} has no pixels ({ds.width}x{ds.height})")
        from rasterio.enums import ColorInterp, MaskFlags

        self.bands = choose_bands(self.spec, ds.count, ds.count == 2 and ds.colorinterp[1] == ColorInterp.alpha,
                                  self.label)
        dtypes = {ds.dtypes[b - 1] for b in self.bands}
        if any(np.dtype(d).kind == "c" for d in dtypes):
            raise RasterError(f"{self.label} holds complex numbers (radar data?); bands of real values expected")
        self.deep = any(np.dtype(d) != np.uint8 for d in dtypes)
        self.nodata = [ds.nodatavals[b - 1] for b in self.bands]
        flags = [ds.mask_flag_enums[b - 1] for b in self.bands]
        self._uses_nodata = any(v is not None for v in self.nodata)
        self._mask_band = next((b for b, f in zip(self.bands, flags)
                                if MaskFlags.per_dataset in f or MaskFlags.alpha in f), None)
        self._check_readable()
        self.georef = georef_of(ds, self.label)

    def _check_readable(self) -> None:
        """Decode the last block now: a truncated file fails here, before any model runs."""
        from rasterio.windows import Window

        ds = self.ds
        bh, bw = ds.block_shapes[self.bands[0] - 1]
        bh, bw = min(bh, ds.height), min(bw, ds.width)
        window = Window(ds.width - bw, ds.height - bh, bw, bh)
        try:
            ds.read(self.bands[0], window=window)
        except Exception as exc:
            raise RasterError(f"{self.label} is truncated or damaged and cannot be decoded ({first_line(exc)})") from None

    @cached_property
    def ranges(self) -> np.ndarray | None:
        """(B, 2) low and high values per band that the stretch maps to 0 and 255: the spec's percentiles
        of a decimated read, made on first use (None: 8-bit bands, or no stretch)."""
        if not (self.deep and self.spec.stretch == "percentile"):
            return None
        try:
            with env():
                data, valid = self._read_raw(out_shape=self._decimated_shape(STRETCH_SIDE))
        except Exception as exc:
            raise RasterError(f"{self.label} is damaged: the read for its stretch cannot be decoded "
                              f"({first_line(exc)})") from None
        return stretch_ranges(data, np.ones(data.shape[1:], bool) if valid is None else valid, self.spec.percentiles)

    # -- reading -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (self.ds.height, self.ds.width)

    @property
    def bands_note(self) -> str:
        """The band choice in words, for the command line and result notes."""
        count = self.ds.count
        used = "band 1 as grey" if len(self.bands) == 1 else f"bands {','.join(map(str, self.bands))} as R,G,B"
        scale = ""
        if self.deep:
            scale = (f", {self.ds.dtypes[self.bands[0] - 1]} scaled by a "
                     f"{self.spec.percentiles[0]:g}-{self.spec.percentiles[1]:g} percentile stretch"
                     if self.ranges is not None else f", {self.ds.dtypes[self.bands[0] - 1]} clipped to 0-255")
        return f"{count} band{'s' * (count != 1)}: {used}{scale}"

    def _read_raw(self, window=None, out_shape=None) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, h, w) values of the chosen bands and the valid-pixel mask (None: all valid)."""
        ds = self.ds
        kw = {"window": window}
        if out_shape is not None:
            kw["out_shape"] = (len(self.bands), *out_shape)
        data = ds.read(list(self.bands), **kw)
        valid = None
        if self._uses_nodata:
            invalid = np.ones(data.shape[1:], bool)
            for k, nd in enumerate(self.nodata):
                if nd is None:
                    invalid[:] = False
                    break
                invalid &= np.isnan(data[k]) if (isinstance(nd, float) and math.isnan(nd)) else data[k] == nd
            valid = ~invalid
        elif self._mask_band is not None:
            mkw = dict(kw, out_shape=out_shape) if out_shape is not None else kw
            valid = ds.read_masks(self._mask_band, **mkw) > 0
        if valid is not None and valid.all():
            valid = None
        return data, valid

    def _decimated_shape(self, max_side: int) -> tuple[int, int]:
        """(h, w) of the whole raster shrunk to at most ``max_side`` px on its long side."""
        h, w = self.shape
        f = min(1.0, max_side / max(h, w))
        return max(1, round(h * f)), max(1, round(w * f))

    def read(self, tile: Tile) -> tuple[np.ndarray, np.ndarray | None]:
        """The tile's window as H x W x 3 uint8 BGR and its valid-pixel mask (None: every pixel valid).
        Nodata pixels are black."""
        from rasterio.windows import Window

        try:
            with env():
                data, valid = self._read_raw(Window(tile.x0, tile.y0, tile.width, tile.height))
        except Exception as exc:
            raise RasterError(f"{self.label} is damaged: the window at x={tile.x0}, y={tile.y0} cannot be decoded "
                              f"({first_line(exc)})") from None
        return to_bgr(data, valid, self.ranges), valid

    def sample_windows(self, count: int, side: int = 1280) -> list[np.ndarray]:
        """Up to ``count`` windows of ``side`` px (smaller only where the raster is) spread over the raster
        in a fixed pseudo-random order, as BGR uint8, each at least half valid pixels: pieces of the scene
        to calibrate an 8-bit model on, without decoding the raster whole."""
        h, w = self.shape
        th, tw = min(side, h), min(side, w)
        grid = max(1, math.ceil(math.sqrt(2 * count)))  # twice the windows wanted, to pass over nodata
        ys = np.unique(np.linspace(0, h - th, grid).round().astype(int))
        xs = np.unique(np.linspace(0, w - tw, grid).round().astype(int))
        spots = [(y, x) for y in ys for x in xs]
        found = []
        for k in np.random.default_rng(0).permutation(len(spots)):
            y, x = spots[k]
            image, valid = self.read(Tile(int(x), int(y), int(x) + tw, int(y) + th))
            if valid is None or valid.mean() >= 0.5:
                found.append(image)
                if len(found) == count:
                    break
        return found

    def overview(self, max_side: int) -> tuple[np.ndarray, float]:
        """The whole raster at most ``max_side`` px on its long side, as BGR uint8, and its scale factor."""
        out = self._decimated_shape(max_side)
        try:
            with env():
                data, valid = self._read_raw(out_shape=out)
        except Exception as exc:
            raise RasterError(f"{self.label} is damaged: its overview cannot be decoded ({first_line(exc)})") from None
        return to_bgr(data, valid, self.ranges), out[1] / self.shape[1]

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        ds = getattr(self, "ds", None)
        if ds is not None and not ds.closed:
            ds.close()

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_raster(path, spec: BandSpec | None = None, allow_vrt: bool = False, **changes) -> RasterSource:
    """A :class:`RasterSource` over ``path``; keywords change fields of ``spec`` (``bands=(4, 3, 2)``)."""
    return RasterSource(path, checks.with_changes(spec, BandSpec, changes), allow_vrt=allow_vrt)
