"""Ultralytics exports as deployed (ONNX files, OpenVINO folders, zipped or not) through load_model."""
import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tiling
from conftest import DET_WEIGHTS, SAMPLES, SEG_WEIGHTS

REAL = Path(__file__).resolve().parents[2] / "shared" / "real-visdrone"
pytestmark = pytest.mark.skipif(not (DET_WEIGHTS.exists() and SEG_WEIGHTS.exists()), reason="bundled weights absent")


def export(weights: Path, out: Path, fmt: str, dynamic: bool) -> Path:
    """Ultralytics' own export of a bundled model, fixed at 1x3x640x640 unless ``dynamic``."""
    from ultralytics import YOLO

    copy = out / f"{weights.stem}-{fmt}-{'dyn' if dynamic else 'fixed'}.pt"
    shutil.copy(weights, copy)
    made = YOLO(str(copy)).export(format=fmt, dynamic=dynamic, imgsz=640, batch=1, verbose=False)
    return Path(made)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    return {(task, fmt, dyn): export(w, out, fmt, dyn) for task, w in (("detect", DET_WEIGHTS), ("segment", SEG_WEIGHTS))
            for fmt, dyn in (("onnx", True), ("onnx", False), ("openvino", False))}


@pytest.fixture(scope="module")
def scene():
    return np.ascontiguousarray(tiling.read_image(SAMPLES / "depot-2400x1800.jpg")[:1280, :1280])


def same_boxes(a: tiling.Detections, b: tiling.Detections, tol: float = 1.0) -> bool:
    """Every confident box of ``a`` has a box of ``b`` of its class within ``tol`` px, and counts agree."""
    a, b = a.filter(conf=0.3), b.filter(conf=0.2)
    if abs(len(a) - len(b.filter(conf=0.3))) > max(2, len(a) // 50):
        return False
    for box, cls in zip(a.xyxy, a.class_id):
        near = (np.abs(b.xyxy - box).max(axis=1) <= tol) & (b.class_id == cls)
        if not near.any():
            return False
    return True


@pytest.mark.parametrize("task", ["detect", "segment"])
@pytest.mark.parametrize("fmt, dynamic", [("onnx", True), ("onnx", False), ("openvino", False)])
@pytest.mark.slow
def test_an_export_gives_the_boxes_of_the_pt_fast_path(exports, scene, task, fmt, dynamic, det_model, seg_model):
    path = exports[(task, fmt, dynamic)]
    model = tiling.load_model(path)
    assert model.runtime == fmt and model.task == task and model.names == (det_model if task == "detect" else
                                                                          seg_model).names
    assert model.input_hw == (None if dynamic else (640, 640))
    reference = tiling.load_model(DET_WEIGHTS if task == "detect" else SEG_WEIGHTS, runtime="torch")
    settings = dict(tile_size=640, overlap=0.0, conf=0.2)
    ours = tiling.predict_tiled(scene, model, **settings).detections
    want = tiling.predict_tiled(scene, reference, **settings).detections
    assert len(want) > 20 and same_boxes(want, ours)
    assert ours.has_masks == (task == "segment")
    # a tile larger than the fixed input is shrunk to fit it, and its boxes come back in the tile's pixels
    big = tiling.predict_full(scene, model, imgsz=1280, conf=0.2)
    assert len(big) > 0 and (big.xyxy[:, 2] <= 1280 + 1e-3).all() and (big.xyxy[:, 3] <= 1280 + 1e-3).all()


@pytest.mark.slow
def test_an_openvino_folder_loads_from_its_folder_its_xml_and_a_zip(exports, scene):
    folder = exports[("detect", "openvino", False)]
    xml = next(folder.glob("*.xml"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f"{folder.name}/{f.name}")
    results = []
    for source in (folder, xml, buf.getvalue()):
        model = tiling.load_model(source, name="upload.zip" if isinstance(source, bytes) else None)
        results.append(tiling.predict_tiled(scene, model, tile_size=640, conf=0.25).detections)
    assert len(results[0]) > 20 and all(np.allclose(r.xyxy, results[0].xyxy) for r in results[1:])
    onnx = exports[("detect", "onnx", True)]
    assert tiling.load_model(onnx.read_bytes(), name="mine.onnx").runtime == "onnx"


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.slow
def test_bad_exports_are_explained(exports, tmp_path):
    folder = exports[("detect", "openvino", False)]
    xml, bin_, meta = (next(folder.glob(p)) for p in ("*.xml", "*.bin", "metadata.yaml"))
    empty = tmp_path / "empty_openvino_model"
    empty.mkdir()
    no_bin = tmp_path / "no_bin"
    no_bin.mkdir()
    shutil.copy(xml, no_bin)
    no_meta = tmp_path / "no_meta"
    no_meta.mkdir()
    shutil.copy(xml, no_meta), shutil.copy(bin_, no_meta)
    pose = tmp_path / "pose"
    shutil.copytree(folder, pose)
    (pose / "metadata.yaml").write_text(meta.read_text().replace("task: detect", "task: pose"))
    classify = tmp_path / "classify"
    shutil.copytree(folder, classify)
    (classify / "metadata.yaml").write_text(meta.read_text().replace("task: detect", "task: classify"))
    cases = [
        (empty, "without an OpenVINO model"),
        (no_bin, "no weights file beside it"),
        (no_meta, "no metadata.yaml"),
        (pose, "pose model without a usable 'kpt_shape'"),
        (classify, "'classify' model"),
        (_zip({"m/model.xml": xml.read_bytes(), "m/run.sh": b"echo hi"}), "may hold only"),
        (_zip({"../evil.xml": b"<x/>"}), "'..' path"),
        (_zip({"a.bin": b"\0" * (8 << 20)}), "zip bomb"),
    ]
    for source, message in cases:
        with pytest.raises(tiling.ModelError, match=message):
            tiling.load_model(source, name="upload.zip" if isinstance(source, bytes) else None)


def test_an_onnx_that_is_not_a_detector_is_refused(tmp_path):
    from ultralytics import YOLO

    YOLO("yolo11n-cls.yaml").save(str(tmp_path / "cls.pt"))  # exported beside it, not in the working folder
    made = Path(YOLO(str(tmp_path / "cls.pt")).export(format="onnx", imgsz=64, verbose=False))
    with pytest.raises(tiling.ModelError, match="'classify' model"):
        tiling.load_model(made)
    import onnx

    proto = onnx.load(str(made))
    for p in list(proto.metadata_props):
        p.value = {"task": "detect", "stride": "32"}.get(p.key, p.value)
    forged = tmp_path / "forged.onnx"
    onnx.save(proto, str(forged))
    with pytest.raises(tiling.ModelError, match="not those of an Ultralytics detect head"):
        tiling.load_model(forged)


@pytest.mark.skipif(not REAL.exists(), reason="../shared/real-visdrone is absent")
@pytest.mark.slow
def test_a_real_export_finds_more_on_a_real_drone_photo_with_patches():
    model = tiling.load_model(REAL / "models" / "yolo11n_int8_openvino_model")
    assert model.runtime == "openvino" and model.input_hw == (640, 640) and model.names[2] == "car"
    image = tiling.read_image(REAL / "images" / "0000295_02900_d_0000034.jpg")
    truth = tiling.load_coco_labels(REAL / "labels_coco.json")["0000295_02900_d_0000034.jpg"]
    mapped = tuple(sorted(truth.names))
    full = tiling.predict_full(image, model, imgsz=640, conf=0.25, classes=mapped)
    tiled = tiling.predict_tiled(image, model, tile_size=640, overlap=0.2, conf=0.25, classes=mapped).detections
    full_recall, tiled_recall = tiling.evaluate(full, truth).recall, tiling.evaluate(tiled, truth).recall
    assert tiled_recall > full_recall + 0.1, (full_recall, tiled_recall)


@pytest.mark.slow
def test_the_app_takes_an_onnx_and_a_zipped_openvino_upload(exports):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    folder = exports[("detect", "openvino", False)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f"{folder.name}/{f.name}")
    for name, data, runtime in (("mine.onnx", exports[("detect", "onnx", True)].read_bytes(), "onnx"),
                                (f"{folder.name}.zip", buf.getvalue(), "openvino")):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.run()
        at.selectbox(key="model_choice").set_value("Upload my own model").run()
        at.file_uploader(key="model_upload").upload(name, data, "application/octet-stream").run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert f"runtime: **{runtime}**" in " ".join(c.value for c in at.sidebar.caption)
        assert int(at.metric[1].value) > 50  # the patch-based count on the default sample


@pytest.mark.slow
def test_a_fixed_input_is_filled_by_enlarging_smaller_tiles(exports, scene):
    """A 320 px tile through a 640x640 export is run at 2x, as the same tile enlarged by hand through the .pt."""
    import cv2

    from tiling.models.base import tile_scale

    model = tiling.load_model(exports[("detect", "onnx", False)])
    assert tile_scale(model, (320, 320)) == 2.0 and tile_scale(model, (640, 640)) is None
    reference = tiling.load_model(DET_WEIGHTS, runtime="torch")
    assert tile_scale(reference, (320, 320)) is None  # a dynamic model runs tiles at their own size
    crop = np.ascontiguousarray(scene[400:720, 400:720])
    ours = model.predict([crop], tiling.InferSpec(conf=0.2), scale=2.0)[0]
    enlarged = reference.predict([cv2.resize(crop, (640, 640), interpolation=cv2.INTER_LINEAR)],
                                 tiling.InferSpec(conf=0.2))[0]
    enlarged.xyxy = enlarged.xyxy / 2
    assert len(enlarged) >= 3 and same_boxes(enlarged, ours, tol=1.0)
    pred = tiling.predict_tiled(scene, model, tile_size=320, overlap=0.2, conf=0.2)
    assert len(pred.detections) > 20 and (pred.detections.xyxy <= 1280 + 1e-3).all()
