"""Review fixes: oriented boxes in GeoJSON, TIFF sizes without GDAL, one precision check, the 8-bit
copy's cache locking and calibration, and the app keeping an uploaded model when calibration fails."""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from affine import Affine

import tiling
from tiling.geojson import feature_collection
from tiling.raster import Georef


def _signed_area(ring) -> float:
    x, y = np.asarray(ring, np.float64).T
    return 0.5 * float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


@pytest.mark.parametrize("transform", [None, Affine(0.5, 0, 500_000, 0, -0.5, 4_000_000)])
def test_oriented_boxes_are_written_as_their_own_corners_counter_clockwise(transform):
    obb = np.array([[100, 80, 40, 10, math.pi / 6], [300, 200, 60, 20, -math.pi / 4]], np.float32)
    det = tiling.Detections.from_obb(obb, confidence=[0.9, 0.8], class_id=[0, 0], names={0: "plane"})
    fc = feature_collection(det, Georef(transform=transform))
    t = transform or Affine.identity()
    scale = abs(t.a * t.e - t.b * t.d)
    for feature, corners, (w, h) in zip(fc["features"], det.corners(), obb[:, 2:4]):
        ring = np.array(feature["geometry"]["coordinates"][0])
        assert len(ring) == 5 and np.allclose(ring[0], ring[-1])
        assert _signed_area(ring) == pytest.approx(w * h * scale, rel=1e-4)  # not the larger upright box; CCW
        expected = np.array([t * tuple(map(float, c)) for c in corners])
        distance = np.linalg.norm(ring[:4, None] - expected[None], axis=2)
        assert distance.min(axis=0).max() < 1e-2 and distance.min(axis=1).max() < 1e-2  # the same four points


def _tiff(order: str, entries: list[tuple[int, int, int, int]], big: bool = False) -> bytes:
    """A TIFF (or BigTIFF) whose first directory holds ``entries`` (tag, type, count, inline value)."""
    if big:
        head = (b"II" if order == "<" else b"MM") + struct.pack(order + "HHHQ", 43, 8, 0, 16)
        ifd = struct.pack(order + "Q", len(entries)) + b"".join(
            struct.pack(order + "HHQ", t, k, c) + struct.pack(order + ("Q" if k == 16 else "I" if k == 4 else "H"),
                                                                v).ljust(8, b"\0") for t, k, c, v in entries)
        return head.ljust(16, b"\0") + ifd + struct.pack(order + "Q", 0)
    head = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8)
    ifd = struct.pack(order + "H", len(entries)) + b"".join(
        struct.pack(order + "HHI", t, k, c) + struct.pack(order + ("I" if k == 4 else "H"), v).ljust(4, b"\0")
        for t, k, c, v in entries)
    return head + ifd + struct.pack(order + "I", 0)


def test_tiff_size_comes_from_the_header_without_gdal_and_refuses_anything_odd(tmp_path):
    import subprocess
    import sys

    from tiling.raster import raster_size

    assert raster_size(_tiff("<", [(256, 3, 1, 70), (257, 4, 1, 50)])) == (70, 50)
    assert raster_size(_tiff(">", [(256, 4, 1, 123_456), (257, 3, 1, 9)])) == (123_456, 9)  # big-endian
    assert raster_size(_tiff("<", [(256, 16, 1, 90_000), (257, 16, 1, 80_000)], big=True)) == (90_000, 80_000)
    assert raster_size(bytearray(_tiff(">", [(256, 4, 1, 7), (257, 4, 1, 8)], big=True))) == (7, 8)
    odd = [
        _tiff("<", [(256, 2, 1, 70), (257, 4, 1, 50)]),  # ASCII width
        _tiff("<", [(256, 4, 2, 70), (257, 4, 1, 50)]),  # two values
        _tiff("<", [(256, 4, 1, 70)]),  # no height
        _tiff("<", [(256, 4, 1, 0), (257, 4, 1, 50)]),  # zero width
        _tiff("<", [(256, 16, 1, 70), (257, 16, 1, 50)]),  # LONG8 outside BigTIFF does not fit 4 bytes
        b"II*\x00" + struct.pack("<I", 1 << 30),  # directory past the end
        b"II*\x00" + struct.pack("<IH", 8, 60_000),  # more entries than the file holds
        b"II+\x00" + struct.pack("<HHQ", 4, 0, 16),  # BigTIFF with a wrong offset size
        b"II*\x00broken", b"II*", b"", b"\x89PNG\r\n\x1a\n",
    ]
    assert [raster_size(data) for data in odd] == [None] * len(odd)
    # A real GDAL file (4 bands of 16 bits, which Pillow cannot open), BigTIFF too, read with no GDAL loaded
    import rasterio

    for name, bigtiff in (("deep.tif", "NO"), ("deep-big.tif", "YES")):
        with rasterio.open(tmp_path / name, "w", driver="GTiff", width=70, height=50, count=4, dtype="uint16",
                           BIGTIFF=bigtiff):
            pass
    code = ("import sys; from pathlib import Path; from tiling.raster import raster_size; "
            f"print([raster_size(Path(r'{tmp_path}', n).read_bytes()) for n in ('deep.tif', 'deep-big.tif')], "
            "'rasterio' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[(70, 50), (70, 50)] False"


def test_one_precision_check_names_the_problem():
    from tiling.models import loading, runtimes

    assert not hasattr(runtimes, "check_precision")  # loading's is the only one
    loading.check_precision("bf16")
    with pytest.raises(ValueError, match="precision must be one of .*'int4'"):
        loading.check_precision("int4")
    with pytest.raises(ValueError, match="runs on OpenVINO"):
        loading.check_precision("int8", "torch")


def test_one_entry_being_made_does_not_hold_up_another_and_each_is_made_once(tmp_path, monkeypatch):
    import threading

    from tiling.models import export_cache

    monkeypatch.setenv("PATCHWISE_CACHE", str(tmp_path))
    a_started, b_made, seen = threading.Event(), threading.Event(), {}
    builds = []

    def slow(entry):  # a long quantization of model A
        builds.append(entry.name)
        a_started.set()
        seen["b_made_meanwhile"] = b_made.wait(timeout=5)
        (entry / "a.xml").write_text("a")

    def quick(entry):
        builds.append(entry.name)
        (entry / "b.xml").write_text("b")
        b_made.set()

    threads = [threading.Thread(target=export_cache.cached, args=(export_cache.entry_path("a"), "*.xml", slow))
               for _ in range(3)]  # three sessions ask for A together
    threads[0].start()
    assert a_started.wait(timeout=5)
    for t in threads[1:]:
        t.start()
    assert export_cache.cached(export_cache.entry_path("b"), "*.xml", quick).name == "b.xml"
    for t in threads:
        t.join(timeout=10)
    assert seen["b_made_meanwhile"] and sorted(builds) == ["a", "b"]  # B did not wait for A; A was made once
    assert export_cache.cached(export_cache.entry_path("a"), "*.xml", slow).name == "a.xml"


def test_pruning_skips_an_entry_being_made(tmp_path, monkeypatch):
    import fcntl

    from tiling.models import export_cache

    monkeypatch.setenv("PATCHWISE_CACHE", str(tmp_path))
    monkeypatch.setenv("PATCHWISE_CACHE_MB", "0")  # everything but the newest entry is over the limit
    busy = export_cache.entry_path("busy")
    busy.mkdir(parents=True)
    (busy / "half.bin").write_bytes(b"x" * 1000)
    with open(export_cache._lock_file(busy), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process is making it
        export_cache.cached(export_cache.entry_path("new"), "*.xml",
                            lambda entry: (entry / "m.xml").write_text("m"))
        assert (busy / "half.bin").exists()
    export_cache.cached(export_cache.entry_path("newer"), "*.xml", lambda entry: (entry / "m.xml").write_text("m"))
    assert not busy.exists() and not export_cache.entry_path("new").exists()  # idle entries are pruned
