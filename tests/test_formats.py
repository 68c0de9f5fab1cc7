import io
import json

import numpy as np
import pandas as pd
import pytest

import tiling
from tiling.formats import coco_categories, mask_polygons


@pytest.fixture
def det():
    masks = [np.ones((10, 20), bool), np.zeros((6, 6), bool)]
    masks[1][1:5, 1:5] = True
    return tiling.Detections(
        xyxy=np.array([[10, 20, 30, 30], [50.5, 60.25, 56.5, 66.25]], np.float32), confidence=np.array([0.9, 0.4]),
        class_id=np.array([1, 0]), masks=masks, mask_boxes=np.array([[10, 20, 30, 30], [50, 60, 56, 66]]),
        names={0: "car", 1: "truck"},
    )


def test_csv_round_trip(det):
    frame = pd.read_csv(io.StringIO(tiling.to_csv(det)))
    assert frame["class"].tolist() == ["truck", "car"]
    assert frame[["x0", "y0", "x1", "y1"]].iloc[0].tolist() == [10, 20, 30, 30]
    assert frame["confidence"].tolist() == pytest.approx([0.9, 0.4])
    several = pd.read_csv(io.StringIO(tiling.to_csv({"a.jpg": det, "b.jpg": det[[0]]})))
    assert several["image"].tolist() == ["a.jpg", "a.jpg", "b.jpg"]


def test_json(det):
    rows = json.loads(tiling.to_json({"a.jpg": det}))
    assert rows[0]["image"] == "a.jpg" and rows[0]["box"] == [10, 20, 30, 30] and rows[0]["class"] == "truck"
    assert len(rows[0]["polygons"][0]) >= 6


def test_coco_results_load_with_pycocotools(det, tmp_path):
    from pycocotools.coco import COCO

    gt = {
        "images": [{"id": 7, "width": 100, "height": 100, "file_name": "a.jpg"}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 2, "bbox": [10, 20, 20, 10], "area": 200,
                         "iscrowd": 0}],
        "categories": coco_categories(det.names),
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    coco = COCO(str(path))
    res = tiling.to_coco(det, image_id=7)
    assert res[0]["bbox"] == [10, 20, 20, 10] and res[0]["category_id"] == 2 and res[0]["score"] == 0.9
    loaded = coco.loadRes(json.loads(tiling.to_coco_json(det, image_id=7)))
    assert len(loaded.getAnnIds()) == 2
    assert loaded.anns[1]["segmentation"]


def test_yolo_txt_round_trip():
    boxes = tiling.Detections(xyxy=np.array([[0, 0, 50, 100], [100, 50, 200, 100]], np.float32),
                              class_id=np.array([2, 0]))
    lines = tiling.to_yolo_txt(boxes, (200, 400)).splitlines()
    assert lines == ["2 0.062500 0.250000 0.125000 0.500000", "0 0.375000 0.375000 0.250000 0.250000"]
    assert tiling.to_yolo_txt(boxes, (200, 400), with_conf=True).splitlines()[0].endswith("1.00000")
    assert tiling.to_yolo_txt(tiling.Detections.empty(), (10, 10)) == ""


def test_yolo_txt_polygons_for_masks(det):
    line = tiling.to_yolo_txt(det, (100, 100)).splitlines()[0].split()
    assert line[0] == "1" and len(line) >= 9
    pts = np.array(line[1:], float).reshape(-1, 2) * 100
    assert pts[:, 0].min() == pytest.approx(10, abs=1) and pts[:, 0].max() == pytest.approx(29, abs=1)


def test_mask_polygons_offsets():
    m = np.zeros((5, 5), bool)
    m[1:4, 2:4] = True
    (poly,) = mask_polygons(m, (100, 200, 105, 205))
    assert poly[:, 0].min() == 102 and poly[:, 1].min() == 201
    assert mask_polygons(np.zeros((3, 3), bool), (0, 0, 3, 3)) == []


def test_draw_keeps_size_and_marks_pixels(det):
    image = np.zeros((100, 100, 3), np.uint8)
    out = tiling.draw_detections(image, det)
    assert out.shape == image.shape and out.any() and not image.any()
    grid = tiling.draw_tiles(image, tiling.plan_tiles((100, 100), tile_size=40, overlap=0.25))
    assert grid.any()
    dashed = tiling.draw_detections(image, det, color=(0, 0, 255), dashed=True, labels=False)
    assert (dashed[..., 2] > 0).any()
