"""Decode images from paths or bytes into H x W x 3 uint8 BGR, safely.

The size limit is checked from the header, before any pixel is decoded, so a tiny file that
declares a gigantic image (a decompression bomb) is refused without allocating memory for it. It
counts pixels and bytes: a 16-bit, float or int32 image decodes to 2-12 bytes a pixel, so it must fit
the bytes an 8-bit RGBA image at the pixel limit takes, and it is brought to 8 bits block by block.
"""
from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = int(os.environ.get("PATCHWISE_MAX_PIXELS", 100_000_000))  # checked from the header, before decoding
BUDGET_BYTES_PER_PIXEL = 4  # decoded bytes allowed per pixel of MAX_PIXELS: an 8-bit RGBA image's
# Decoded bytes per pixel of each Pillow mode (its samples, not Pillow's own padding).
MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3,
              "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2, "I": 4,
              "F": 4}
_BLOCK = 1 << 20  # samples converted at a time: temporaries stay a few MB whatever the image
# Pillow's format name -> file name suffixes. MPO is what some cameras write as .jpg.
FORMAT_SUFFIXES = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "WEBP": (".webp",), "BMP": (".bmp",),
                   "TIFF": (".tif", ".tiff"), "GIF": (".gif",), "MPO": ()}
SUPPORTED_FORMATS = tuple(FORMAT_SUFFIXES)
IMAGE_SUFFIXES = tuple(sfx for suffixes in FORMAT_SUFFIXES.values() for sfx in suffixes)
ACCEPTED = "JPEG, PNG, WebP, BMP, TIFF or GIF"  # for messages: what a person may give
_CV2_FORMATS = ("JPEG", "PNG", "BMP")


class ImageError(ValueError):
    """An image that cannot be used, with a message meant for the person who supplied it."""


def _open_bytes(source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "the uploaded image"
    if hasattr(source, "read"):
        return source.read(), getattr(source, "name", "the uploaded image")
    path = Path(source)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    return path.read_bytes(), path.name


def image_size(source) -> tuple[int, int]:
    """(width, height) read from the header only."""
    data, label = _open_bytes(source)
    with _open_pil(data, label) as im:
        return im.size


def _looks_complete(data: bytes, fmt: str) -> bool:
    """OpenCV decodes a truncated file silently (grey fill); only complete files take its fast path."""
    tail = data[-64:]
    if fmt == "JPEG":
        return b"\xff\xd9" in tail
    if fmt == "PNG":
        return b"IEND" in tail
    if fmt == "BMP":
        return len(data) >= int.from_bytes(data[2:6], "little")
    return False


def _pillow_open():
    """Pillow's own ``Image.open``: Ultralytics replaces it with a wrapper that tries to pip-install a
    HEIF plugin whenever a file is not an image, which must never happen on an upload."""
    opener = Image.open
    if getattr(opener, "__module__", "") == "ultralytics.utils.patches":
        import sys

        opener = getattr(sys.modules["ultralytics.utils.patches"], "_image_open", opener)
    return opener


def _open_pil(data: bytes, label: str) -> Image.Image:
    if not data:
        raise ImageError(f"{label} is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = _pillow_open()(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageError(f"{label} declares an image too large to open safely ({exc})") from None
        except UnidentifiedImageError:
            raise ImageError(f"{label} is not an image this app can read ({ACCEPTED} expected)") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"{label} is not an image this app can read ({ACCEPTED} expected): {exc}") from None
    if im.format not in SUPPORTED_FORMATS:
        raise ImageError(f"{label} is a {im.format} file; {ACCEPTED} expected")
    return im


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale deeper-than-8-bit data by its bit depth (a 12-bit microscope image stays visible), a block of
    samples at a time: whole-array temporaries (int64, float) cost 4-8x the image."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    src = np.ascontiguousarray(arr).reshape(-1)
    out = np.empty(src.shape, np.uint8)
    blocks = [slice(i, i + _BLOCK) for i in range(0, src.size, _BLOCK)]
    if np.issubdtype(src.dtype, np.floating):
        hi = max((float(b[np.isfinite(b)].max(initial=-np.inf)) for b in map(src.__getitem__, blocks)), default=1.0)
        scale = 255.0 if not np.isfinite(hi) or hi <= 1.0 else 255.0 / hi
        for b in blocks:
            out[b] = np.clip(np.nan_to_num(src[b]) * scale, 0, 255)
        return out.reshape(arr.shape)
    bits = max(int(src.max(initial=0)), 0).bit_length()
    for b in blocks:
        block = np.clip(src[b], 0, None)
        out[b] = block if bits <= 8 else block >> (bits - 8)
    return out.reshape(arr.shape)


def _on_white(arr: np.ndarray) -> np.ndarray:
    """An H x W x 4 uint8 image composited on white, a block of rows at a time, as H x W x 3."""
    out = np.empty((*arr.shape[:2], 3), np.uint8)
    rows = max(1, _BLOCK // max(1, arr.shape[1] * 4))
    for r in range(0, arr.shape[0], rows):
        block = arr[r:r + rows].astype(np.uint16)
        alpha = block[..., 3:4]
        out[r:r + rows] = (block[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255
    return out


def _pil_to_bgr(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return np.repeat(_to_uint8(np.asarray(im))[..., None], 3, axis=2)  # grey: BGR is RGB
    elif mode in ("RGB", "L"):
        arr = np.asarray(im)
        rgb = arr if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=2)
    else:  # CMYK, YCbCr, P, 1, LAB, HSV...
        rgb = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(rgb[..., ::-1])


def _cv2_fallback(data: bytes, label: str) -> np.ndarray:
    """Formats PIL opens but cannot convert (16-bit colour TIFF/PNG) go through OpenCV."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if arr is None:
        raise ImageError(f"{label} could not be decoded: the file may be truncated or damaged")
    arr = _to_uint8(arr)
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    if arr.shape[2] == 4:
        return _on_white(arr)
    return np.ascontiguousarray(arr[..., :3])


def check_pixels(width: int, height: int, label: str, max_pixels: int | None = None) -> None:
    """Refuse an image over ``max_pixels`` (default ``MAX_PIXELS``), from its header's size alone."""
    max_pixels = MAX_PIXELS if max_pixels is None else int(max_pixels)
    if width * height > max_pixels:
        raise ImageError(
            f"{label} is {width}x{height} = {width * height:,} pixels, above the limit of {max_pixels:,} pixels "
            f"({max_pixels / 1e6:g} megapixels); downscale it first"
        )


def decoded_bytes_per_pixel(im: Image.Image) -> int:
    """Bytes a pixel of ``im`` decodes to, from its header: TIFF's sample tags, a 16-bit raw mode, its mode."""
    tags = getattr(im, "tag_v2", None)
    if im.format == "TIFF" and tags is not None and tags.get(258):
        bits = tags.get(258)
        bits = max(bits) if isinstance(bits, tuple) else bits
        return -(-int(bits) // 8) * int(tags.get(277, 1) or 1)
    args = im.tile[0][3] if im.tile else None  # the decoder's raw mode, e.g. "RGB;16B" for a 16-bit PNG
    raw = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None
    if isinstance(raw, str) and ";16" in raw:
        return 2 * Image.getmodebands(im.mode)
    return MODE_BYTES.get(im.mode, 4)


def check_bytes(width: int, height: int, per_pixel: int, label: str, max_pixels: int | None = None) -> None:
    """Refuse an image whose decoded samples pass the bytes an 8-bit RGBA image at the pixel limit takes."""
    max_pixels = MAX_PIXELS if max_pixels is None else int(max_pixels)
    budget = max_pixels * BUDGET_BYTES_PER_PIXEL
    if width * height * per_pixel > budget:
        raise ImageError(
            f"{label} is {width}x{height} at {per_pixel} bytes a pixel = {width * height * per_pixel / 1e6:,.0f} MB "
            f"decoded, above the limit of {budget / 1e6:,.0f} MB ({max_pixels / 1e6:g} megapixels of 8-bit RGBA); "
            "convert it to 8 bits or downscale it first"
        )


def read_image(source, max_pixels: int | None = None) -> np.ndarray:
    """Decode ``source`` (path, bytes or file object) to an H x W x 3 uint8 BGR array.

    Handles grayscale, alpha (composited on white), palette, CMYK, 16-bit, EXIF orientation and
    animated files (first frame). Raises :class:`ImageError` for anything it cannot use.
    """
    max_pixels = MAX_PIXELS if max_pixels is None else int(max_pixels)
    data, label = _open_bytes(source)
    im = _open_pil(data, label)
    width, height = im.size
    if width < 1 or height < 1:
        raise ImageError(f"{label} has no pixels ({width}x{height})")
    check_pixels(width, height, label, max_pixels)
    check_bytes(width, height, decoded_bytes_per_pixel(im), label, max_pixels)
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # unreadable metadata: the decode below reports the damage
        orientation = None
    if im.format in _CV2_FORMATS and im.mode in ("RGB", "L") and orientation == 1 \
            and not getattr(im, "is_animated", False) and _looks_complete(data, im.format):
        # Plain 8-bit files: OpenCV decodes the same pixels several times faster than Pillow.
        import cv2

        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if arr is not None and arr.shape[:2] == (height, width):
            im.close()
            return arr
    try:
        im.seek(0)
        im.load()
        if orientation not in (None, 1):
            im = ImageOps.exif_transpose(im)
        return _pil_to_bgr(im)
    except Exception as exc:  # any decoder failure means a damaged file, and is reported as one
        message = str(exc)
        if "truncated" in message or "broken" in message or isinstance(exc, (EOFError, struct.error)):
            raise ImageError(f"{label} is truncated or damaged and cannot be decoded ({message})") from None
        try:
            return _cv2_fallback(data, label)
        except ImageError:
            raise ImageError(f"{label} could not be decoded: {message}") from None
    finally:
        im.close()
