"""Decode images from paths or bytes into H x W x 3 uint8 BGR, safely.

The size limit is checked from the header, before any pixel is decoded, so a tiny file that
declares a gigantic image (a decompression bomb) is refused without allocating memory for it.
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
    """Scale deeper-than-8-bit data by its bit depth (a 12-bit microscope image stays visible)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        finite = arr[np.isfinite(arr)]
        hi = float(finite.max()) if finite.size else 1.0
        scale = 255.0 if hi <= 1.0 else 255.0 / hi
        return np.clip(np.nan_to_num(arr) * scale, 0, 255).astype(np.uint8)
    arr = np.clip(arr.astype(np.int64), 0, None)
    peak = int(arr.max()) if arr.size else 0
    if peak <= 255:
        return arr.astype(np.uint8)
    bits = int(peak).bit_length()
    return (arr >> (bits - 8)).astype(np.uint8)


def _pil_to_bgr(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        gray = _to_uint8(np.asarray(im))
        rgb = np.repeat(gray[..., None], 3, axis=2)
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
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[..., 3:4].astype(np.float32) / 255.0
        arr = (arr[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(arr[..., :3])


def check_pixels(width: int, height: int, label: str, max_pixels: int | None = None) -> None:
    """Refuse an image over ``max_pixels`` (default ``MAX_PIXELS``), from its header's size alone."""
    max_pixels = MAX_PIXELS if max_pixels is None else int(max_pixels)
    if width * height > max_pixels:
        raise ImageError(
            f"{label} is {width}x{height} = {width * height:,} pixels, above the limit of {max_pixels:,} pixels "
            f"({max_pixels / 1e6:g} megapixels); downscale it first"
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
