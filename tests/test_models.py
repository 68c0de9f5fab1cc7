import os
import zipfile

import numpy as np
import pytest
import torch

import tiling
from tiling import ModelError
from tiling.models.decoding import predict_general
from tiling.models.runtimes import Precision, Runtime, available_runtimes


class Payload:
    """Pickles to a call of os.system: what a hostile checkpoint hides."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("w") / "tiny.pt"
    YOLO("yolo11n.yaml").save(str(path))
    return path


def test_malicious_pickle_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": Payload(marker), "train_args": {}}, path)
    with pytest.raises(ModelError, match="refused"):
        tiling.load_model(path)
    with pytest.raises(ModelError, match="refused"):
        tiling.load_model(path.read_bytes())
    assert not marker.exists()


@pytest.mark.slow
def test_genuine_checkpoint_loads_from_path_and_bytes(genuine):
    m = tiling.load_model(genuine, runtime="torch")
    assert m.task == "detect" and len(m.names) == 80 and m.runtime is Runtime.TORCH and len(m.digest) == 64
    assert m.precision is Precision.FP32 and m.runtime_label == "torch"
    m2 = tiling.load_model(genuine.read_bytes())  # runtime="auto": the fastest one installed here
    assert m2.digest == m.digest
    assert m2.runtime is available_runtimes()[0] and m2.precision is Precision.FP32


def test_state_dict_is_explained(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save({"conv.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ModelError, match="state_dict"):
        tiling.load_model(path)


def test_torchscript_is_explained(tmp_path):
    path = tmp_path / "ts.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    with pytest.raises(ModelError, match="TorchScript"):
        tiling.load_model(path)


def test_other_bad_files(tmp_path, genuine):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="empty"):
        tiling.load_model(empty)
    zip_path = tmp_path / "notes.pt"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ModelError, match="not a PyTorch checkpoint"):
        tiling.load_model(zip_path)
    truncated = genuine.read_bytes()[: len(genuine.read_bytes()) // 2]
    with pytest.raises(ModelError, match="truncated|not a PyTorch checkpoint"):
        tiling.load_model(truncated)
    with pytest.raises(ModelError, match="not a PyTorch checkpoint"):
        tiling.load_model(b"GIF89a not a model at all")
    text = tmp_path / "weights.txt"
    text.write_text("x")
    with pytest.raises(ModelError, match=".pt"):
        tiling.load_model(text)


@pytest.mark.parametrize("config, task", [("yolo11n-cls.yaml", "classify")])
def test_unsupported_task_is_explained(tmp_path, config, task):
    from ultralytics import YOLO

    path = tmp_path / "other.pt"
    YOLO(config).save(str(path))
    with pytest.raises(ModelError, match=f"'{task}' model"):
        tiling.load_model(path)


def test_uploaded_bytes_leave_no_file_behind(genuine, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    tiling.load_model(genuine.read_bytes(), name="../../etc/evil name.pt", runtime="torch")
    assert list(tmp_path.iterdir()) == []  # the private folder is gone; the upload's name was never a path


def test_official_name_offline_gives_a_clear_message(monkeypatch):
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    with pytest.raises(ModelError, match="cannot be downloaded"):
        tiling.load_model("yolo11n.pt")
    with pytest.raises(ModelError, match="no such file"):
        tiling.load_model("missing/other.pt")


@pytest.mark.slow
def test_lean_path_matches_ultralytics_predict(genuine):
    """Same boxes as Ultralytics' own predict on the same tiles (random weights, low threshold)."""
    m = tiling.load_model(genuine, runtime="torch")
    assert m._fast
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 255, (320, 320, 3), dtype=np.uint8) for _ in range(3)]
    torch.manual_seed(0)
    spec = tiling.InferSpec(conf=0.0005, iou=0.7, max_det=50)
    fast = m.predict(tiles, spec)
    slow = predict_general(m.yolo, tiles, spec, None, m.names, m.kpt_shape)
    for a, b in zip(fast, slow):
        assert len(a) == len(b)
        if len(a):
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1.0)
            np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-3)


def test_threads_are_restored(genuine):
    m = tiling.load_model(genuine, runtime="torch")
    before = torch.get_num_threads()
    m.predict([np.zeros((64, 64, 3), np.uint8)])
    assert torch.get_num_threads() == before


@pytest.mark.slow
def test_lean_path_matches_ultralytics_on_real_tiles(det_model):
    from conftest import SAMPLES

    image = tiling.read_image(SAMPLES / "parking-3000x2000.jpg")
    tiles = [image[:640, :640], image[640:1280, 640:1280], image[1000:1640, 2000:2640]]
    m = tiling.load_model(SAMPLES.parent / "models" / "synth-yolo11n-det.pt", runtime="torch")
    fast = m.predict(tiles, tiling.InferSpec(conf=0.25, iou=0.7))
    slow = predict_general(m.yolo, tiles, tiling.InferSpec(conf=0.25, iou=0.7), None, m.names, m.kpt_shape)
    assert sum(len(a) for a in fast) > 10
    for a, b in zip(fast, slow):
        order_a, order_b = np.lexsort(a.xyxy.T[::-1]), np.lexsort(b.xyxy.T[::-1])
        np.testing.assert_allclose(a.xyxy[order_a], b.xyxy[order_b], atol=1.0)


@pytest.mark.slow
def test_seg_masks_line_up_with_the_objects(seg_model):
    """A 700 x 480 tile is letterboxed by Ultralytics; resizing its padded masks straight to the tile
    (what peers do) shifts them off the objects. Ours must fit the true object shapes as well as
    Ultralytics' own full-resolution (retina) masks, and move away from them when shifted by 1 px."""
    import cv2

    from scripts.scenes import render_scene

    image, objects = render_scene(700, 480, seed=77, n_objects=40)
    truth = []
    for o in objects:
        canvas = np.zeros(image.shape[:2], np.uint8)
        cv2.fillPoly(canvas, [np.round(o.polygon).astype(np.int32)], 1)
        truth.append(canvas.astype(bool))

    def fit(mask):
        return max((mask & t).sum() / max(1, (mask | t).sum()) for t in truth)

    ours = seg_model.predict([image], tiling.InferSpec(conf=0.3))[0]
    retina = seg_model.yolo.predict(image, imgsz=704, conf=0.3, retina_masks=True, verbose=False)[0]
    letterboxed = seg_model.yolo.predict(image, imgsz=704, conf=0.3, verbose=False)[0].masks.data.numpy()
    ours_fit = np.median([fit(ours.full_mask(k, image.shape[:2])) for k in range(len(ours))])
    retina_fit = np.median([fit(m > 0.5) for m in retina.masks.data.numpy()])
    naive_fit = np.median([fit(cv2.resize(m, (700, 480)) > 0.5) for m in letterboxed])
    shifted_fit = np.median([fit(np.roll(ours.full_mask(k, image.shape[:2]), 1, axis=1)) for k in range(len(ours))])
    assert len(ours) >= 30
    assert ours_fit >= retina_fit - 0.02 and ours_fit > 0.7
    assert naive_fit < ours_fit - 0.3 and shifted_fit < ours_fit


@pytest.mark.parametrize("config", ["yolov8n-seg.yaml", "yolov10n.yaml", "yolo26n.yaml", "yolo26n-seg.yaml",
                                    "rtdetr-l.yaml"])
@pytest.mark.slow
def test_architectures_run_through_the_pipeline(config, tmp_path):
    """Random weights at confidence 0 give boxes everywhere, including against tile borders."""
    from ultralytics import RTDETR, YOLO

    path = tmp_path / "m.pt"
    torch.manual_seed(0)  # some random YOLO26 initialisations score every box 0: fix one that does not
    (RTDETR if config.startswith("rtdetr") else YOLO)(config).save(str(path))
    model = tiling.load_model(path, runtime="torch")
    assert model.task == ("segment" if "seg" in config else "detect")
    image = (np.random.default_rng(0).random((500, 700, 3)) * 255).astype(np.uint8)
    pred = tiling.predict_tiled(image, model, tile_size=320, overlap=0.2, conf=0.0, max_det=20, include_full=False)
    full = tiling.predict_full(image, model, imgsz=320, conf=0.0, max_det=20)
    assert len(pred.raw) == 20 * len(pred.tiles) and len(full) == 20
    assert pred.detections.has_masks == (model.task == "segment")
    if model.task == "segment":
        for det in (pred.detections, full):
            for k in range(len(det)):
                x0, y0, x1, y1 = det.mask_boxes[k]
                assert det.masks[k].shape == (y1 - y0, x1 - x0)
