import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from tiling import ImageError, read_image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


RGB = np.zeros((40, 60, 3), np.uint8)
RGB[:, :20] = (255, 0, 0)  # red in RGB
PIL_RGB = Image.fromarray(RGB)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF"])
def test_formats_decode_to_bgr(fmt):
    out = read_image(encode(PIL_RGB, fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {})))
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert out[20, 5, 2] > 200 and out[20, 5, 0] < 60  # red lands in the R channel of BGR


def test_path_and_bytes_agree(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(encode(PIL_RGB, "PNG"))
    assert (read_image(path) == read_image(path.read_bytes())).all()


def test_grayscale_rgba_palette_cmyk():
    gray = read_image(encode(Image.fromarray(np.full((8, 9), 77, np.uint8)), "PNG"))
    assert gray.shape == (8, 9, 3) and (gray == 77).all()
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent: composited on white
    assert (read_image(encode(Image.fromarray(rgba, "RGBA"), "PNG")) == 255).all()
    pal = read_image(encode(PIL_RGB.convert("P"), "PNG"))
    assert pal.shape == (40, 60, 3)
    cmyk = read_image(encode(PIL_RGB.convert("CMYK"), "JPEG"))
    assert cmyk.shape == (40, 60, 3) and cmyk[20, 5, 2] > 180


def test_16_bit_png_and_tiff_keep_their_contrast():
    ramp = (np.arange(256, dtype=np.uint16) * 16).reshape(16, 16)  # 12-bit data in 16-bit containers
    ok, png = cv2.imencode(".png", ramp)
    out = read_image(png.tobytes())
    assert out.dtype == np.uint8 and out.max() == 255 and out.min() == 0
    colour = np.dstack([ramp * 16, ramp * 8, ramp]).astype(np.uint16)
    ok, tif = cv2.imencode(".tiff", colour)
    out = read_image(tif.tobytes())
    assert out.shape == (16, 16, 3) and out.max() > 200


def test_exif_orientation_is_applied():
    img = Image.fromarray(np.zeros((10, 30, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    out = read_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert out.shape == (30, 10, 3)


def test_animated_gif_gives_first_frame():
    frames = [Image.fromarray(np.full((10, 10, 3), v, np.uint8)) for v in (0, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert read_image(buf.getvalue()).max() < 10


def test_one_pixel_image():
    assert read_image(encode(Image.fromarray(np.zeros((1, 1, 3), np.uint8)), "PNG")).shape == (1, 1, 3)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"this is a text file renamed .jpg", "not an image"),
        (encode(PIL_RGB, "PNG")[:60], "truncated|damaged|not an image"),
        (encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)), "JPEG")[:900],
         "truncated|damaged"),
    ],
)
def test_bad_bytes_give_clear_errors(data, message):
    with pytest.raises(ImageError, match=message):
        read_image(data)


def bomb_png(width, height) -> bytes:
    """A tiny PNG whose header declares width x height (the pixel data is never there)."""
    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_from_header():
    data = bomb_png(30000, 30000)
    assert len(data) < 200
    with pytest.raises(ImageError, match="megapixels|too large"):
        read_image(data, max_pixels=50_000_000)
    with pytest.raises(ImageError, match="above the limit"):
        read_image(encode(PIL_RGB, "PNG"), max_pixels=100)


def test_missing_path():
    with pytest.raises(ImageError, match="no such file"):
        read_image("/nonexistent/file.png")


def test_animated_webp_gives_first_frame():
    frames = [Image.fromarray(np.full((12, 12, 3), v, np.uint8)) for v in (10, 250)]
    buf = io.BytesIO()
    frames[0].save(buf, format="WEBP", save_all=True, append_images=frames[1:], lossless=True)
    out = read_image(buf.getvalue())
    assert out.shape == (12, 12, 3) and out.max() < 40
