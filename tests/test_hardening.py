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
from tiling.models.runtimes import Precision, Runtime
from tiling.georef import Georef


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

    from tiling.tiff_header import raster_size

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
    code = ("import sys; from pathlib import Path; from tiling.tiff_header import raster_size; "
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


def test_the_guard_measures_a_network_without_touching_the_model(det_model):
    import torch

    from tiling.models import agreement, runtimes

    original, seen = det_model.net, []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append((det_model.net is original, det_model.min_input, det_model._lock.locked(), x.shape[-1]))
            return original(x)

    tiles = [np.zeros((64, 64, 3), np.uint8)] * 2 + [np.full((96, 128, 3), 90, np.uint8)]
    out = agreement.outputs(det_model, Spy(), tiles)
    assert len(out) == 3 and all(isinstance(d, tiling.Detections) for d in out)
    # the model keeps its own network and input floor throughout, and nobody else runs it meanwhile
    assert seen and all(s[:3] == (True, 0, True) for s in seen)
    assert {s[3] for s in seen} == {runtimes.MIN_INT8_SIDE, 128}  # the probe pads to the 8-bit floor
    assert det_model.net is original and det_model.min_input == 0 and not det_model._lock.locked()


def test_without_bundled_assets_int8_asks_for_calibration_images():
    from conftest import DET_WEIGHTS, ROOT

    from tiling.models import loading
    from tiling.models.bundled import BundledAssets
    from tiling.util import cached_sha256_of_file

    digest = cached_sha256_of_file(DET_WEIGHTS)
    nothing = BundledAssets()
    assert nothing.copy_for(digest) is None and not nothing.has_weights(digest) and nothing.samples_for("detect") == []
    for bundled in (None, nothing, BundledAssets(models_dir=ROOT / "models")):  # no samples: not calibrated here
        if bundled is not None and bundled.copy_for(digest) is not None:
            continue  # the shipped copy is used as it is
        with pytest.raises(tiling.ModelError, match="needs calibration images"):
            loading._check_calibration(digest, None, "weights.pt", bundled)
    assert loading._check_calibration(digest, None, "weights.pt", BundledAssets(ROOT / "models", ROOT / "samples")) is None


def test_shipped_files_are_hashed_once_per_version_and_calibration_is_resolved_once(monkeypatch, tmp_path):
    from conftest import ROOT

    from tiling import util
    from tiling.models import calibration, loading
    from tiling.models.bundled import BundledAssets

    calls = []
    real = util.sha256_of_file
    monkeypatch.setattr(util, "sha256_of_file", lambda p: calls.append(str(p)) or real(p))
    util._cached_sha256_of_file.cache_clear()
    bundled = BundledAssets(ROOT / "models", ROOT / "samples")
    image = tmp_path / "a.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((700, 700, 3), np.uint8))
    first = loading._check_calibration("0" * 64, [image], "m.pt", bundled)
    assert isinstance(first, calibration.Calibration) and calibration.calibration_from(first) is first
    for _ in range(3):
        assert calibration.calibration_from([image]).digest == first.digest
        assert not bundled.has_weights("0" * 64) and bundled.copy_for("0" * 64) is None
    assert calls.count(str(image)) == 1 and len(calls) == len(set(calls))  # each file read once
    cv2.imwrite(str(image), np.full((700, 700, 3), 9, np.uint8))  # a new version is hashed again
    assert calibration.calibration_from([image]).digest != first.digest


def _page_with_uploaded_model(image_sizes):
    import cv2
    from streamlit.testing.v1 import AppTest

    from conftest import DET_WEIGHTS, ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    up = at.file_uploader(key="image_upload")
    for k, (h, w) in enumerate(image_sizes):
        up.upload(f"img{k}.png", cv2.imencode(".png", np.full((h, w, 3), 60 + k, np.uint8))[1].tobytes(), "image/png")
    at.run()
    at.selectbox(key="model_choice").set_value("Upload my own model").run()
    at.file_uploader(key="model_upload").upload("mine.pt", DET_WEIGHTS.read_bytes(), "application/octet-stream").run()
    at.radio(key="runtime").set_value("Fast: 8-bit numbers").run()
    return at


@pytest.mark.slow
def test_an_uploaded_model_that_cannot_be_calibrated_runs_in_full_precision_with_a_note():
    at = _page_with_uploaded_model([(300, 400), (900, 1300)])  # the first image gives 1 calibration tile
    assert not at.exception and not at.error  # no fallback to the bundled detector
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "at least 8 are needed" in captions and "runs in full precision" in captions
    assert "runtime: **openvino**" in captions
    first = at.session_state["int8_calibration"]
    assert [item.name for item in first.values()] == ["img0.png"]  # one image, kept for this model


@pytest.mark.slow
def test_uploaded_models_over_the_parameter_cap_are_not_quantized(monkeypatch):
    from ui import resources as res

    monkeypatch.setattr(res, "INT8_MAX_PARAMS", 1000)
    called = []
    monkeypatch.setattr(res, "_calibration_for", lambda *a: called.append(a) or ("", ()))
    at = _page_with_uploaded_model([(300, 400)])
    assert not at.exception and not at.error and not called
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "M parameters" in captions and "runs in full precision" in captions


def test_bundled_models_calibrate_on_the_samples_of_their_kind():
    from conftest import DET_WEIGHTS, ROOT

    from tiling.models.bundled import BundledAssets
    from tiling.util import cached_sha256_of_file

    obb_weights = DET_WEIGHTS.parent / "synth-yolo11n-obb.pt"
    if not (DET_WEIGHTS.exists() and obb_weights.exists()):
        pytest.skip("bundled weights not present")
    bundled = BundledAssets(ROOT / "models", ROOT / "samples")
    assert bundled.has_weights(cached_sha256_of_file(DET_WEIGHTS)) and bundled.has_weights(cached_sha256_of_file(obb_weights))
    assert [p.name for p in bundled.samples_for("obb")] == ["apron-3200x2400.jpg"]
    upright = bundled.samples_for("detect")
    assert upright and "apron-3200x2400.jpg" not in [p.name for p in upright]
    assert not bundled.has_weights("0" * 64)  # other weights bring their own images
    assert not BundledAssets(ROOT / "models").has_weights(cached_sha256_of_file(DET_WEIGHTS))  # no samples given: none used


def test_a_visitors_model_shown_the_samples_calibrates_on_the_sample_files_of_its_kind():
    from ui import resources as res

    from tiling.models.calibration import calibration_from

    for task in ("obb", "detect"):
        key, calibration = res._calibration_for(f"model-{task}", (), task)
        files = res._runtime_args((Runtime.AUTO, Precision.INT8), calibration)["calibration"]
        assert key == f"samples-{task}" and all(p.is_file() for p in files)  # image files: the folder was refused
        assert calibration_from(files).sources
        assert (["apron-3200x2400.jpg"] == [p.name for p in files]) == (task == "obb")
