"""The width and height of a TIFF or BigTIFF held in memory, from its header in pure Python: the page
learns the size of an upload Pillow refuses without running a native parser on a visitor's bytes."""
from __future__ import annotations

import struct

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
