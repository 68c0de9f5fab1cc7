"""Official checkpoints pre-fetched on the host (as the Docker image does) are found first, and checked."""
import re
import shutil
import subprocess
import sys

import pytest

import tiling
from conftest import DET_WEIGHTS, ROOT, SAMPLES
from tiling.models import official

pytestmark = pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """A pre-fetched folder holding the bundled detector under an official name that has no pin."""
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(DET_WEIGHTS, folder / "yolov8n.pt")
    monkeypatch.setenv("PATCHWISE_WEIGHTS_DIR", str(folder))
    return folder


@pytest.mark.slow
def test_the_library_finds_an_official_name_in_the_prefetched_folder_first(weights_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # and not in the working folder, nor online
    model = tiling.load_model("yolov8n.pt", runtime="torch")
    assert model.source == "yolov8n.pt" and set(model.names.values()) == {"car", "truck", "plane"}
    assert official.availability("yolov8n.pt") == (True, "on this host")
    ok, why = official.availability("yolo11s.pt")
    assert not ok and "YOLO_OFFLINE" in why


def test_a_prefetched_file_that_does_not_match_its_pin_is_refused(weights_dir):
    shutil.copy(DET_WEIGHTS, weights_dir / "yolo11n.pt")  # the pin is the real yolo11n.pt's
    with pytest.raises(tiling.ModelError, match="does not match its pinned SHA-256"):
        tiling.load_model("yolo11n.pt")
    ok, why = official.availability("yolo11n.pt")
    assert not ok and "pinned SHA-256" in why


@pytest.mark.slow
def test_the_cli_finds_it_too(weights_dir, tmp_path):
    out = subprocess.run([sys.executable, "-m", "tiling", "predict", SAMPLES / "depot-2400x1800.jpg", "--model",
                          "yolov8n.pt", "--out", tmp_path / "o", "--no-images"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "o" / "detections.csv").read_text().count("\n") > 100


@pytest.mark.slow
def test_the_app_lists_it_as_ready_and_runs_it(weights_dir):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.run()
    box = at.selectbox(key="model_choice")
    labels = [box.format_func(o) if callable(getattr(box, "format_func", None)) else o for o in box.options]
    assert any("yolov8n.pt (COCO, on this host)" in str(l) for l in labels), labels
    assert any("yolo11s.pt (unavailable here)" in str(l) for l in labels), labels
    box.set_value("yolov8n.pt").run()
    assert not at.exception and not at.error
    assert "car" in " ".join(c.value for c in at.sidebar.caption)


def test_the_pins_are_well_formed_and_the_image_build_checks_them():
    pins = official.read_pins()
    assert set(pins) == {"yolo11n.pt", "yolo11n-seg.pt"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in pins.values())
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "sha256sum -c /home/user/app/tiling/models/official-weights.sha256" in dockerfile
    assert official.RELEASE_URL in dockerfile.replace("$name", "")
    assert re.search(r"ENV PATCHWISE_WEIGHTS_DIR=\S+", dockerfile)
    bad = ROOT / "tests" / "_bad.sha256"
    try:
        bad.write_text("abc  yolo11n.pt\n")
        with pytest.raises(ValueError, match="line 1: expected"):
            official.read_pins(bad)
    finally:
        bad.unlink()
