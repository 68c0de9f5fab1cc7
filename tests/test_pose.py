"""Keypoints through the library: they travel with their box through tiling and merging (a merged group
keeps its best member's), are drawn and exported; Ultralytics pose models run on the lean batch path."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SquareFinder, page_with_uploaded_model, square_scene, untrained_checkpoint

import tiling
from tiling.detections import Detections
from tiling.formats import to_coco_dataset


def corner_keypoints(xyxy: np.ndarray) -> np.ndarray:
    """(N, 4, 3): each box's four corners as keypoints, all visible."""
    x0, y0, x1, y1 = np.asarray(xyxy, np.float32).T
    pts = np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1), np.stack([x1, y1], 1), np.stack([x0, y1], 1)], 1)
    return np.concatenate([pts, np.ones((len(pts), 4, 1), np.float32)], axis=2)


def test_keypoints_follow_selection_shift_scale_and_concat():
    xyxy = np.array([[0, 0, 10, 10], [20, 20, 40, 30]], np.float32)
    det = Detections(xyxy=xyxy, confidence=[0.9, 0.5], keypoints=corner_keypoints(xyxy))
    assert det.has_keypoints and det[[1]].keypoints.shape == (1, 4, 3)
    np.testing.assert_allclose(det[[1]].keypoints, corner_keypoints(xyxy[1:]))
    moved = det.shifted(5, 7)
    np.testing.assert_allclose(moved.keypoints, corner_keypoints(xyxy + [5, 7, 5, 7]))
    np.testing.assert_allclose(det.scaled(2).keypoints[..., :2], det.keypoints[..., :2] * 2)
    np.testing.assert_allclose(det.scaled(2).keypoints[..., 2], 1)
    assert Detections.concat([det, Detections.empty(), det]).keypoints.shape == (4, 4, 3)
    assert Detections.concat([det, Detections(xyxy=[[0, 0, 1, 1]])]).keypoints is None  # one part has none
    other = Detections(xyxy=xyxy[:1], keypoints=np.zeros((1, 17, 3)))
    assert Detections.concat([det, other]).keypoints is None  # different skeletons cannot share an array
    assert "kp3_conf" in det.to_dataframe().columns
    with pytest.raises(ValueError, match="keypoints"):
        Detections(xyxy=xyxy, keypoints=np.zeros((2, 4, 2)))
    assert Detections.empty(keypoints=17).keypoints.shape == (0, 17, 3)


@pytest.mark.parametrize("method", ["nms", "nmm"])
def test_a_merged_group_keeps_the_keypoints_of_its_best_member(method):
    whole = np.array([100, 100, 160, 140], np.float32)
    piece = np.array([100, 100, 130, 140], np.float32)  # cut by a tile edge at x = 130, more confident
    det = Detections(xyxy=np.stack([piece, whole]), confidence=[0.95, 0.7],
                     keypoints=corner_keypoints(np.stack([piece, whole])))
    det.data["truncated"] = np.array([True, False])
    out = tiling.merge(det, conf=0.0, method=method)
    assert len(out) == 1
    np.testing.assert_allclose(out.keypoints[0], corner_keypoints(whole[None])[0])
    plain = Detections(xyxy=np.stack([whole, whole + 2]), confidence=[0.6, 0.9],
                       keypoints=corner_keypoints(np.stack([whole, whole + 2])))
    out = tiling.merge(plain, conf=0.0, method=method)
    np.testing.assert_allclose(out.keypoints[0], corner_keypoints((whole + 2)[None])[0])


class CornerFinder(SquareFinder):
    """The squares of ``SquareFinder`` with their corners as keypoints, as a pose model would give them."""

    task = "pose"

    def _one(self, im):
        det = super()._one(im)
        det.keypoints = corner_keypoints(det.xyxy)
        return det


def test_keypoints_come_back_in_image_pixels_through_tiling():
    image, gt = square_scene(n=40)
    finder = CornerFinder()
    finder.task = "pose"
    model = tiling.CallableModel(finder, names=finder.names, task="pose")
    pred = tiling.predict_tiled(image, model, tile_size=256, overlap=0.25, conf=0.25)
    det = pred.detections
    assert det.has_keypoints and pred.raw.has_keypoints and len(det) == len(gt)
    np.testing.assert_allclose(det.keypoints, corner_keypoints(det.xyxy), atol=1e-4)
    assert tiling.evaluate(det, gt).recall == 1.0
    assert tiling.predict_tiled(np.zeros((300, 300, 3), np.uint8), model, tile_size=128).detections.keypoints is None


def test_keypoints_are_exported_and_drawn(tmp_path):
    xyxy = np.array([[10, 10, 50, 40], [60, 20, 90, 70]], np.float32)
    kp = corner_keypoints(xyxy)
    kp[1, 2, 2] = 0.1  # one point the model is unsure of
    det = Detections(xyxy=xyxy, confidence=[0.9, 0.6], class_id=[0, 0], keypoints=kp, names={0: "plane"})
    shape = (80, 100, 3)
    line = tiling.to_yolo_txt(det, shape).splitlines()[1].split()
    assert len(line) == 1 + 4 + 4 * 3 and float(line[5]) == pytest.approx(0.6) and float(line[-4]) == pytest.approx(0.1)
    rows = json.loads(tiling.to_json(det))
    assert rows[1]["keypoints"][2] == [90.0, 70.0, 0.1]
    assert "kp2_conf" in tiling.to_csv(det).splitlines()[0]
    rec = tiling.to_coco(det)[1]
    assert rec["keypoints"][6:9] == [90.0, 70.0, 0.1] and rec["num_keypoints"] == 3
    dataset = to_coco_dataset({"a.jpg": (shape, det)}, det.names)
    assert dataset["categories"][0]["keypoints"] == ["kp0", "kp1", "kp2", "kp3"]
    assert dataset["annotations"][1]["keypoints"][6:9] == [0, 0, 0]  # unsure: COCO's "not labelled"
    coco = pytest.importorskip("pycocotools.coco")
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(dataset))
    assert coco.COCO(str(path)).loadAnns(2)[0]["num_keypoints"] == 3
    drawn = tiling.draw_detections(np.zeros(shape, np.uint8), det, labels=False, line_width=1)
    assert drawn[40, 10].any() and drawn[39:42, 48:53].any()
    bare = tiling.draw_detections(np.zeros(shape, np.uint8), det[[1]], labels=False, line_width=1)
    assert bare[70, 90].any()  # the box corner is drawn either way; the unsure point itself is not
    only_kp = Detections(xyxy=[[0, 0, 1, 1]], keypoints=[[[60, 60, 0.1], [30, 30, 0.9]]])
    dots = tiling.draw_detections(np.zeros(shape, np.uint8), only_kp, labels=False, line_width=1)
    assert dots[30, 30].any() and not dots[60, 60].any()


# -- Ultralytics pose models ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def pose_checkpoint(tmp_path_factory):
    return untrained_checkpoint("yolo11n-pose.yaml", tmp_path_factory.mktemp("pose"))


@pytest.mark.slow
def test_pose_fast_path_matches_ultralytics_predict(pose_checkpoint):
    model = tiling.load_model(pose_checkpoint.read_bytes(), runtime="torch", name="upload.pt")
    assert model.task == "pose" and model._fast and model.kpt_shape == (17, 3)
    image = (np.random.default_rng(0).random((128, 128, 3)) * 255).astype(np.uint8)
    spec = tiling.InferSpec(conf=0.45, max_det=30)
    fast = model.predict([image], spec, imgsz=128)[0]
    model._fast = False
    general = model.predict([image], spec, imgsz=128)[0]
    model._fast = True
    assert len(fast) == len(general) > 0 and fast.keypoints.shape == (len(fast), 17, 3)
    a, b = fast[np.argsort(-fast.confidence)], general[np.argsort(-general.confidence)]
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
    pred = tiling.predict_tiled(np.tile(image, (2, 2, 1)), model, tile_size=128, overlap=0.2, conf=0.45, max_det=10)
    assert pred.detections.keypoints.shape[1:] == (17, 3)
    xy = pred.detections.keypoints[..., :2]
    assert (xy >= 0).all() and (xy <= 256).all()


def test_a_pose_checkpoint_with_a_forged_keypoint_shape_is_refused(tmp_path):
    from ultralytics import YOLO

    yolo = YOLO("yolo11n-pose.yaml")
    yolo.model.model[-1].kpt_shape = (10**7, 3)
    path = tmp_path / "forged.pt"
    yolo.save(str(path))
    with pytest.raises(tiling.ModelError, match="keypoint shape"):
        tiling.load_model(path, runtime="torch")


@pytest.mark.slow
def test_a_pose_onnx_export_loads_with_its_keypoint_shape(pose_checkpoint):
    pytest.importorskip("onnxruntime")
    from ultralytics import YOLO

    onnx = YOLO(str(pose_checkpoint)).export(format="onnx", dynamic=True, imgsz=128, verbose=False)
    model = tiling.load_model(onnx)
    assert model.runtime == "onnx" and model.task == "pose" and model.kpt_shape == (17, 3)
    image = (np.random.default_rng(1).random((128, 128, 3)) * 255).astype(np.uint8)
    det = model.predict([image], tiling.InferSpec(conf=0.45, max_det=10))[0]
    assert det.keypoints.shape == (len(det), 17, 3) and len(det) > 0


@pytest.mark.slow
def test_the_page_takes_an_uploaded_pose_checkpoint(pose_checkpoint):
    image = (np.random.default_rng(2).random((192, 256, 3)) * 255).astype(np.uint8)
    at = page_with_uploaded_model("pose.pt", pose_checkpoint.read_bytes(), image)
    assert not at.exception and not at.error
    assert "pose" in " ".join(c.value for c in at.sidebar.caption)
    table = at.dataframe[0].value
    assert len(table) > 0 and table["keypoints seen"].str.endswith("of 17").all()
