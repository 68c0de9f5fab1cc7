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


# -- deep pixels: the decode limit counts bytes, and the conversion to 8 bits stays lean --------------------
PEAK_CHILD = r"""
import importlib.util, os, sys
os.environ["PATCHWISE_MAX_PIXELS"] = sys.argv[2]
spec = importlib.util.spec_from_file_location("imageio_alone", sys.argv[3])  # numpy, Pillow, OpenCV only
imageio = importlib.util.module_from_spec(spec)
spec.loader.exec_module(imageio)
data = open(sys.argv[1], "rb").read()

def peak_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmHWM:"))

with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak so far is forgotten: what follows is the decode's own
base = peak_mb()
try:
    out = imageio.read_image(data)
    result = f"{out.shape} {out.dtype}"
except imageio.ImageError as exc:
    result = "ImageError: " + str(exc)
print(peak_mb() - base, result)
"""


def _decode_peak(path, max_pixels: int) -> tuple[int, str]:
    """(MB the decode added at its peak, what it returned) in a fresh process."""
    import subprocess
    import sys
    from pathlib import Path

    module = Path(__file__).resolve().parents[1] / "tiling" / "imageio.py"
    done = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(path), str(max_pixels), str(module)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-1500:]
    peak, result = done.stdout.strip().split(" ", 1)
    return int(peak), result


@pytest.mark.slow
def test_deep_pixel_images_decode_within_the_byte_budget_of_8_bit_ones(tmp_path):
    pixels = 4_000_000
    ramp = (np.arange(pixels, dtype=np.uint32) % 65536).astype(np.uint16).reshape(2000, 2000)
    half = np.ascontiguousarray(ramp[:1000])
    files = {"rgb8.png": np.dstack([(ramp >> 8).astype(np.uint8)] * 3), "gray16.png": ramp,
             "rgba16_half.tif": np.dstack([half] * 4)}
    for name, arr in files.items():
        cv2.imwrite(str(tmp_path / name), arr)
    for name, arr, mode in (("float32.tif", ramp.astype(np.float32) / 65535, "F"),
                            ("int32.tif", ramp.astype(np.int32) << 4, "I")):
        Image.fromarray(arr, mode=mode).save(tmp_path / name, compression="tiff_deflate")
    cv2.imwrite(str(tmp_path / "rgba16_full.tif"), np.dstack([ramp] * 4))
    assert all(p.stat().st_size < 12 << 20 for p in tmp_path.iterdir())
    baseline, shape = _decode_peak(tmp_path / "rgb8.png", pixels)
    assert shape == "(2000, 2000, 3) uint8"
    for name in ("gray16.png", "float32.tif", "int32.tif", "rgba16_half.tif"):
        peak, result = _decode_peak(tmp_path / name, pixels)
        assert result.endswith(", 3) uint8"), (name, result)
        assert peak <= baseline, f"{name}: +{peak} MB against +{baseline} MB for the same pixels in 8 bits"
    peak, result = _decode_peak(tmp_path / "rgba16_full.tif", pixels)  # 8 bytes a pixel: twice the budget
    assert result.startswith("ImageError: the uploaded image is 2000x2000 at 8 bytes a pixel = 32 MB decoded")
    assert "\n" not in result and peak < 8


def test_bytes_per_pixel_are_read_from_the_header():
    from tiling.imageio import decoded_bytes_per_pixel

    def opened(arr, fmt, **kw):
        return Image.open(io.BytesIO(encode(Image.fromarray(arr, **kw), fmt)))

    assert decoded_bytes_per_pixel(opened(RGB, "PNG")) == 3
    assert decoded_bytes_per_pixel(opened(np.zeros((4, 4), np.uint16), "PNG")) == 2
    assert decoded_bytes_per_pixel(opened(np.zeros((4, 4), np.float32), "TIFF", mode="F")) == 4
    ok, png16 = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint16))
    assert decoded_bytes_per_pixel(Image.open(io.BytesIO(png16.tobytes()))) == 6
