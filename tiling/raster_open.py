"""Opening a raster with GDAL: a bounded block cache, GDAL's own error text, and what may be opened at all.

A VRT (GDAL's XML "virtual raster") and a GDAL virtual path (``/vsicurl/``, ``/vsizip/``, ``/vsis3/``...)
hold no pixels of their own: they name other files or URLs. A ``.vrt`` dropped in an input folder can name
any file on this machine, whose pixels then come back in the annotated pictures, or a URL that GDAL
fetches before any model loads. So such sources are refused unless the caller says ``allow_vrt=True``
(the CLI's ``--allow-vrt``): by their path, by their first bytes (a VRT named ``.tif``), and by the
driver GDAL chose once the file is open.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from .imageio import ImageError
from .optional import require

# GDAL's block cache (GDAL's own default is 5% of RAM, all of it counted in the process's memory):
# enough for a few rows of tiles of a 40,000 px wide raster, so neighbouring windows share decoded blocks.
GDAL_CACHE_MB = int(os.environ.get("PATCHWISE_GDAL_CACHE_MB", 256))
HEADER_BYTES = 1024  # GDAL identifies a VRT by "<VRTDataset" in a file's first 1 KB
# GDAL formats whose file describes other files or URLs instead of holding pixels.
POINTER_DRIVERS = frozenset({"VRT", "GTI", "WMS", "WMTS", "WCS", "MRF", "STACIT", "STACTA", "KMLSUPEROVERLAY",
                             "HTTP", "DERIVED"})
_TEXT_STARTS = (b"<", b"{")  # XML or JSON: a description of a raster, not pixels
_BLANK = b"\xef\xbb\xbf \t\r\n"  # a UTF-8 byte-order mark and white space before it


class RasterError(ImageError):
    """A raster that cannot be used, with a one-line message for the person who supplied it."""


def env():
    """GDAL settings for every open and read: a bounded block cache."""
    rasterio = require("rasterio", "geo")

    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 2**20)


def first_line(exc: BaseException) -> str:
    """The first line of GDAL's own message (rasterio chains it as the cause of a generic one)."""
    exc = exc.__cause__ or exc
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def is_virtual_path(path) -> bool:
    """A GDAL virtual path (``/vsicurl/...``, ``/vsizip/...``) or a ``vrt://`` connection string."""
    text = os.fspath(path).replace("\\", "/")
    return text.startswith("/vsi") or text.lower().startswith("vrt://")


def pointer_reason(path) -> str | None:
    """Why ``path`` names other files or URLs instead of holding pixels, as its name and first bytes tell;
    None when they do not."""
    if is_virtual_path(path):
        return "is a GDAL virtual path, which reads other files or the network"
    if Path(path).suffix.lower() == ".vrt":
        return "is a VRT (a GDAL virtual raster), which can name any file on this machine or a URL"
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
    except OSError:
        return None
    if b"<VRTDataset" in head:
        return "is a VRT (a GDAL virtual raster) under another name, which can name any file on this machine or a URL"
    if head.lstrip(_BLANK)[:1] in _TEXT_STARTS:
        return "is a text (XML or JSON) description of a raster, which can name other files or URLs"
    return None


def refusal(label: str, reason: str) -> RasterError:
    return RasterError(f"{label} {reason}: refused unless allow_vrt=True (--allow-vrt), for a file you trust")


def gdal_path(path) -> str:
    """The name GDAL is given: a real file as an absolute path, so no prefix of its name (``vrt://``,
    ``https://``, ``NETCDF:``) is read as anything but a file name; a virtual path as it was written."""
    return os.fspath(path) if is_virtual_path(path) else str(Path(path).absolute())


def open_dataset(path, label: str, allow_vrt: bool = False):
    """The rasterio dataset of a raster file; a folder, a missing or empty file, a file GDAL cannot read,
    and (unless ``allow_vrt``) a VRT or virtual path are each one :class:`RasterError`."""
    rasterio = require("rasterio", "geo")
    from rasterio.errors import NotGeoreferencedWarning

    if not is_virtual_path(path):
        _check_file(Path(path), label)
    reason = pointer_reason(path)
    if reason and not allow_vrt:
        raise refusal(label, reason)
    try:
        with warnings.catch_warnings(), env():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            ds = rasterio.open(gdal_path(path))
    except Exception as exc:  # RasterioIOError and GDAL's own errors: the file is not a usable raster
        raise RasterError(f"{label} is not a raster GDAL can read ({first_line(exc)})") from None
    if ds.driver in POINTER_DRIVERS and not allow_vrt:
        ds.close()
        raise refusal(label, f"is read by GDAL's {ds.driver} driver, which names other files or URLs")
    return ds


def _check_file(path: Path, label: str) -> None:
    if path.is_dir():
        raise RasterError(f"{label} is a folder, not a raster file")
    if not path.is_file():
        raise RasterError(f"{label}: no such file")
    if path.stat().st_size == 0:
        raise RasterError(f"{label} is empty (0 bytes)")
