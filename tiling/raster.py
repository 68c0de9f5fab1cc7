"""Rasters too large to decode whole (GeoTIFF, BigTIFF, COG, JPEG 2000, VRT...), read window by window.

A 40,000 x 40,000 RGB orthomosaic is 4.8 GB decoded; :class:`RasterSource` opens it with rasterio
(GDAL) and hands out one tile's window at a time as the H x W x 3 uint8 BGR array the models take,
with a mask of its valid (not nodata) pixels. How the raster's bands become those three channels
is set by a :class:`BandSpec`.

Band rule (``BandSpec.bands`` None): 1 band is grey, 3 bands are R, G, B, 4 bands (RGBA or RGB+NIR)
use bands 1, 2, 3, and a grey band with an alpha band uses band 1; any other count must be chosen.
8-bit bands are used as they are. Deeper bands (16-bit, 32-bit, float) are scaled to 8 bits per
band by a percentile stretch: the ``percentiles`` (2 and 98 by default) of the band's valid
pixels in a decimated read of the whole raster (its overview when it has one, at most
:data:`STRETCH_SIDE` px on the long side) map to 0 and 255, values beyond them are clipped.
``stretch="none"`` clips the values to 0-255 unchanged instead.
"""
from __future__ import annotations

import math
import os
import struct
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from . import checks
from .grid import Tile
from .imageio import ImageError
from .optional import installed, require

# File name suffixes always read through GDAL: GeoTIFF and the formats Pillow does not read.
RASTER_SUFFIXES = (".tif", ".tiff", ".gtif", ".jp2", ".j2k", ".vrt", ".img", ".ntf", ".nitf")
STRETCH_SIDE = 2048  # px: long side of the decimated read the percentile stretch is computed from
Stretch = Literal["percentile", "none"]
STRETCHES: tuple[str, ...] = get_args(Stretch)
# GDAL's block cache (GDAL's own default is 5% of RAM, all of it counted in the process's memory):
# enough for a few rows of tiles of a 40,000 px wide raster, so neighbouring windows share decoded blocks.
GDAL_CACHE_MB = int(os.environ.get("PATCHWISE_GDAL_CACHE_MB", 256))


class RasterError(ImageError):
    """A raster that cannot be used, with a one-line message for the person who supplied it."""


@dataclass(frozen=True)
class BandSpec:
    """Which bands of a raster the model sees and how deeper-than-8-bit values are scaled.

    ``bands``: 1-based band numbers, one (grey) or three (red, green, blue, in that order); None
    picks them by the rule in this module's docstring. ``stretch``: "percentile" (2-98 by default,
    ``percentiles``) or "none" (values clipped to 0-255). 8-bit bands are never stretched.
    """

    bands: tuple[int, ...] | None = None
    stretch: Stretch = "percentile"
    percentiles: tuple[float, float] = (2.0, 98.0)

    def __post_init__(self) -> None:
        if self.bands is not None:
            if isinstance(self.bands, (str, bytes)) or not hasattr(self.bands, "__iter__"):
                raise ValueError(f"bands must be one or three band numbers, got {self.bands!r}")
            bands = tuple(checks.whole("band number", b, 1, 100_000) for b in self.bands)
            if len(bands) not in (1, 3):
                raise ValueError(f"bands must be one band (grey) or three (red, green, blue), got {len(bands)}")
            object.__setattr__(self, "bands", bands)
        object.__setattr__(self, "stretch", checks.choice("stretch", self.stretch, STRETCHES))
        if isinstance(self.percentiles, (str, bytes)) or len(self.percentiles) != 2:
            raise ValueError(f"percentiles must be a pair (low, high), got {self.percentiles!r}")
        lo, hi = (checks.number("stretch percentile", p, 0.0, 100.0) for p in self.percentiles)
        if lo >= hi:
            raise ValueError(f"the low stretch percentile must be below the high one, got {lo:g} and {hi:g}")
        object.__setattr__(self, "percentiles", (lo, hi))


@dataclass(frozen=True)
class Georef:
    """Where the raster's pixels lie: ``transform`` maps (column, row) pixel corners to map
    coordinates in ``crs``. Without georeferencing ``transform`` is None and results stay in pixels;
    ``note`` then says so (and says when a transform has no CRS)."""

    transform: object | None = None  # affine.Affine
    crs: object | None = None  # rasterio.crs.CRS
    note: str = ""

    @property
    def crs_label(self) -> str:
        if self.crs is None:
            return "pixels" if self.transform is None else "unknown CRS"
        epsg = self.crs.to_epsg()
        return f"EPSG:{epsg}" if epsg else (self.crs.to_string() or "a custom CRS")

    def check_wgs84(self, label: str) -> None:
        """Refuse, before any model runs, a raster whose coordinates cannot be reprojected to EPSG:4326."""
        if self.transform is None or self.crs is None:
            why = "it has no georeferencing" if self.transform is None else "its coordinate reference system is unknown"
            raise RasterError(f"{label} cannot be reprojected to EPSG:4326: {why}")
        from rasterio.warp import transform as warp

        try:
            xs, ys = warp(self.crs, "EPSG:4326", [self.transform.c], [self.transform.f])
        except Exception as exc:  # rasterio raises CRSError or a GDAL error for CRSs PROJ cannot use
            raise RasterError(f"{label} cannot be reprojected to EPSG:4326: its CRS ({self.crs_label}) "
                              f"cannot be transformed ({_first_line(exc)})") from None
        if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
            raise RasterError(f"{label} cannot be reprojected to EPSG:4326: its CRS ({self.crs_label}) "
                              "gives no valid longitude/latitude")


def _env():
    """GDAL settings for every open and read: a bounded block cache."""
    rasterio = require("rasterio", "geo")

    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20)


def _first_line(exc: BaseException) -> str:
    """The first line of GDAL's own message (rasterio chains it as the cause of a generic one)."""
    exc = exc.__cause__ or exc
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


TIFF_SUFFIXES = (".tif", ".tiff")


def should_stream(path, max_pixels: int | None = None) -> bool:
    """True for a file to read window by window rather than decode whole: a GDAL format that is not an
    ordinary photo (JPEG 2000, VRT, a file GDAL opens whatever its name), or a TIFF that is
    georeferenced or larger than ``max_pixels`` (default ``PATCHWISE_MAX_PIXELS``). Photos, plain TIFFs
    among them, keep the ordinary path; a file GDAL cannot open does too, whose reader then says why."""
    from .imageio import IMAGE_SUFFIXES, MAX_PIXELS

    path = Path(path)
    suffix = path.suffix.lower()
    if (suffix in IMAGE_SUFFIXES and suffix not in TIFF_SUFFIXES) or not path.is_file():
        return False
    if not installed("rasterio"):  # without patchwise[geo]: a TIFF is a photo, another raster says what to install
        return suffix in RASTER_SUFFIXES and suffix not in TIFF_SUFFIXES
    import rasterio

    try:
        with warnings.catch_warnings(), _env():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as ds:
                if suffix not in TIFF_SUFFIXES:
                    return True
                georeferenced = ds.crs is not None or not ds.transform.is_identity or bool(ds.gcps[0])
                return georeferenced or ds.width * ds.height > (MAX_PIXELS if max_pixels is None else max_pixels)
    except Exception:  # not something GDAL reads
        return suffix in RASTER_SUFFIXES and suffix not in TIFF_SUFFIXES


class RasterSource:
    """An open raster: its size, the bands the model sees, its georeferencing, and windows read as
    H x W x 3 uint8 BGR. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path, bands: BandSpec | None = None):
        rasterio = require("rasterio", "geo")
        from rasterio.errors import NotGeoreferencedWarning

        self.path = Path(path)
        self.label = self.path.name or str(self.path)
        self.spec = bands or BandSpec()
        if self.path.is_dir():
            raise RasterError(f"{self.label} is a folder, not a raster file")
        if not self.path.is_file():
            raise RasterError(f"{self.label}: no such file")
        if self.path.stat().st_size == 0:
            raise RasterError(f"{self.label} is empty (0 bytes)")
        try:
            with warnings.catch_warnings(), _env():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self.ds = rasterio.open(self.path)
        except Exception as exc:  # RasterioIOError and GDAL's own errors: the file is not a usable raster
            raise RasterError(f"{self.label} is not a raster GDAL can read ({_first_line(exc)})") from None
        try:
            with _env():
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
        self.bands = self._choose_bands()
        dtypes = {ds.dtypes[b - 1] for b in self.bands}
        if any(np.dtype(d).kind == "c" for d in dtypes):
            raise RasterError(f"{self.label} holds complex numbers (radar data?); bands of real values expected")
        self.deep = any(np.dtype(d) != np.uint8 for d in dtypes)
        self.nodata = [ds.nodatavals[b - 1] for b in self.bands]
        from rasterio.enums import MaskFlags

        flags = [ds.mask_flag_enums[b - 1] for b in self.bands]
        self._uses_nodata = any(v is not None for v in self.nodata)
        self._mask_band = next((b for b, f in zip(self.bands, flags)
                                if MaskFlags.per_dataset in f or MaskFlags.alpha in f), None)
        self._check_readable()
        self.georef = self._georef()

    def _choose_bands(self) -> tuple[int, ...]:
        from rasterio.enums import ColorInterp

        count = self.ds.count
        if self.spec.bands is not None:
            bad = [b for b in self.spec.bands if b > count]
            if bad:
                raise RasterError(f"{self.label} has {count} band{'s' * (count != 1)}; band {bad[0]} does not exist")
            return self.spec.bands
        interp = self.ds.colorinterp
        if count == 1 or (count == 2 and interp[1] == ColorInterp.alpha):
            return (1,)
        if count in (3, 4):
            return (1, 2, 3)
        raise RasterError(f"{self.label} has {count} bands; choose one (grey) or three (red, green, blue) "
                          "with bands=, e.g. --bands 3,2,1")

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
            raise RasterError(f"{self.label} is truncated or damaged and cannot be decoded ({_first_line(exc)})") from None

    def _georef(self) -> Georef:
        ds = self.ds
        if ds.transform.is_identity and ds.crs is None:
            if ds.gcps[0]:
                return Georef(note=f"{self.label} has ground control points but no geotransform; coordinates "
                                   "are pixels (warp it first, e.g. with gdalwarp, for map coordinates)")
            return Georef(note=f"{self.label} has no georeferencing; coordinates are pixels "
                               "(x right, y down from the top-left corner)")
        if ds.crs is None:
            return Georef(ds.transform, None, f"{self.label} has a geotransform but no known coordinate reference "
                                              "system; coordinates are in its map units, CRS unknown")
        return Georef(ds.transform, ds.crs)

    @cached_property
    def ranges(self) -> np.ndarray | None:
        """(B, 2) low and high values per band that the stretch maps to 0 and 255: the spec's percentiles
        of a decimated read, made on first use (None: 8-bit bands, or no stretch)."""
        if not (self.deep and self.spec.stretch == "percentile"):
            return None
        try:
            with _env():
                data, valid = self._read_decimated(STRETCH_SIDE)
        except Exception as exc:
            raise RasterError(f"{self.label} is damaged: the read for its stretch cannot be decoded "
                              f"({_first_line(exc)})") from None
        lo_p, hi_p = self.spec.percentiles
        ranges = np.zeros((len(self.bands), 2), np.float64)
        for k, band in enumerate(data):
            values = band[valid & np.isfinite(band)]
            if values.size == 0:
                ranges[k] = (0.0, 1.0)
                continue
            lo, hi = np.percentile(values, [lo_p, hi_p])
            ranges[k] = (lo, hi if hi > lo else lo + 1.0)
        return ranges

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

    def _read_decimated(self, max_side: int) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.shape
        f = min(1.0, max_side / max(h, w))
        out = (max(1, round(h * f)), max(1, round(w * f)))
        data, valid = self._read_raw(out_shape=out)
        return data, np.ones(out, bool) if valid is None else valid

    def _to_bgr(self, data: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        if self.deep:
            values = data.astype(np.float32)
            if self.ranges is not None:
                lo = self.ranges[:, 0].astype(np.float32)[:, None, None]
                span = (self.ranges[:, 1] - self.ranges[:, 0]).astype(np.float32)[:, None, None]
                values = (values - lo) * (255.0 / span)
            data = np.clip(np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0), 0, 255).astype(np.uint8)
        if len(data) == 1:
            bgr = np.repeat(data[0][..., None], 3, axis=2)
        else:
            bgr = np.ascontiguousarray(np.moveaxis(data[::-1], 0, -1))  # R, G, B bands -> B, G, R channels
        if valid is not None:
            bgr[~valid] = 0
        return bgr

    def read(self, tile: Tile) -> tuple[np.ndarray, np.ndarray | None]:
        """The tile's window as H x W x 3 uint8 BGR and its valid-pixel mask (None: every pixel valid).
        Nodata pixels are black."""
        from rasterio.windows import Window

        try:
            with _env():
                data, valid = self._read_raw(Window(tile.x0, tile.y0, tile.width, tile.height))
        except Exception as exc:
            raise RasterError(f"{self.label} is damaged: the window at x={tile.x0}, y={tile.y0} cannot be decoded "
                              f"({_first_line(exc)})") from None
        return self._to_bgr(data, valid), valid

    def sample_windows(self, count: int, side: int = 1280) -> list[np.ndarray]:
        """Up to ``count`` windows of ``side`` px (smaller only where the raster is) spread over the raster
        in a fixed pseudo-random order, as BGR uint8, each at least half valid pixels: pieces of the scene
        to calibrate an 8-bit model on, without decoding the raster whole."""
        from .grid import Tile

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
        h, w = self.shape
        f = min(1.0, max_side / max(h, w))
        out = (max(1, round(h * f)), max(1, round(w * f)))
        try:
            with _env():
                data, valid = self._read_raw(out_shape=out)
        except Exception as exc:
            raise RasterError(f"{self.label} is damaged: its overview cannot be decoded ({_first_line(exc)})") from None
        return self._to_bgr(data, valid), out[1] / w

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        ds = getattr(self, "ds", None)
        if ds is not None and not ds.closed:
            ds.close()

    def __enter__(self) -> RasterSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_raster(path, spec: BandSpec | None = None, **changes) -> RasterSource:
    """A :class:`RasterSource` over ``path``; keywords change fields of ``spec`` (``bands=(4, 3, 2)``)."""
    return RasterSource(path, checks.with_changes(spec, BandSpec, changes))


TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # TIFF and BigTIFF, both byte orders


def raster_size(data) -> tuple[int, int] | None:
    """(width, height) of a TIFF or BigTIFF held in memory, read from its first image directory in pure
    Python, or None when the header is not one. For uploads Pillow refuses (4 bands of 16 bits, LERC or
    other GDAL-only codecs, too many pixels): no native parser runs on them and nothing is copied; every
    read is bounded by the buffer and anything unexpected (offsets past the end, an oversized directory,
    odd field types or counts) gives None."""
    view = memoryview(data).cast("B")
    try:
        return _tiff_size(view)
    except (struct.error, ValueError, IndexError):
        return None
    finally:
        view.release()


_TIFF_FIELDS = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8 (BigTIFF): the types a width or height can have
_MAX_TIFF_ENTRIES = 4096  # far more tags than any real first directory holds


def _tiff_size(view: memoryview) -> tuple[int, int] | None:
    if bytes(view[:4]) not in TIFF_MAGIC:
        return None
    order = "<" if view[0] == ord("I") else ">"
    big = view[2:4] == (b"\x2b\x00" if order == "<" else b"\x00\x2b")
    if big:
        offset_size, zero, ifd = struct.unpack_from(order + "HHQ", view, 4)
        if offset_size != 8 or zero != 0:
            return None
        count_fmt, entry_fmt, entry_size = "Q", "HHQ8s", 20
    else:
        (ifd,) = struct.unpack_from(order + "I", view, 4)
        count_fmt, entry_fmt, entry_size = "H", "HHI4s", 12
    if ifd < 8 or ifd >= len(view):
        return None
    (entries,) = struct.unpack_from(order + count_fmt, view, ifd)
    first = ifd + struct.calcsize(count_fmt)
    if not 0 < entries <= _MAX_TIFF_ENTRIES or first + entries * entry_size > len(view):
        return None
    found: dict[int, int] = {}
    for k in range(entries):
        tag, kind, count, value = struct.unpack_from(order + entry_fmt, view, first + k * entry_size)
        if tag in (256, 257):  # ImageWidth, ImageLength
            fmt = _TIFF_FIELDS.get(kind)
            if fmt is None or count != 1 or struct.calcsize(fmt) > len(value):
                return None
            found[tag] = struct.unpack_from(order + fmt, value)[0]
    width, height = found.get(256, 0), found.get(257, 0)
    return (width, height) if width > 0 and height > 0 else None
