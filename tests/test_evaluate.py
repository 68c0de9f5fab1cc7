import json

import numpy as np
import pytest

import tiling
from tiling.evaluate import evaluate, matched, score_table
from tiling.labels import LabelError, load_coco_labels, load_yolo_labels, parse_coco_labels, parse_yolo_labels
from tiling.formats import coco_categories


def random_case(seed, n_images=3):
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for _ in range(n_images):
        n = int(rng.integers(5, 40))
        xy = rng.uniform(0, 500, (n, 2))
        wh = rng.uniform(8, 60, (n, 2))
        gt = tiling.Detections(xyxy=np.c_[xy, xy + wh], class_id=rng.integers(0, 3, n))
        keep = rng.random(n) < 0.8
        jitter = rng.normal(0, 4, (n, 4))
        p_boxes = (gt.xyxy + jitter)[keep]
        p_boxes[:, 2:] = np.maximum(p_boxes[:, 2:], p_boxes[:, :2] + 1)  # COCO ignores boxes of negative area
        extra = int(rng.integers(0, 10))
        exy = rng.uniform(0, 500, (extra, 2))
        p_boxes = np.r_[p_boxes, np.c_[exy, exy + rng.uniform(8, 60, (extra, 2))]]
        cls = np.r_[gt.class_id[keep], rng.integers(0, 3, extra)]
        preds.append(tiling.Detections(xyxy=p_boxes, confidence=rng.random(len(p_boxes)), class_id=cls))
        gts.append(gt)
    return preds, gts


@pytest.mark.parametrize("seed", range(3))
def test_ap_agrees_with_pycocotools(seed, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    preds, gts = random_case(seed)
    names = {0: "a", 1: "b", 2: "c"}
    images, anns = [], []
    for i, g in enumerate(gts, 1):
        images.append({"id": i, "width": 600, "height": 600, "file_name": f"{i}.jpg"})
        for k in range(len(g)):
            x0, y0, x1, y1 = (float(v) for v in g.xyxy[k])
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(g.class_id[k]) + 1,
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": coco_categories(names)}))
    coco = COCO(str(path))
    dets = coco.loadRes(tiling.to_coco([(i, p) for i, p in enumerate(preds, 1)]))
    ev = COCOeval(coco, dets, "bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    ours = evaluate(preds, gts, max_det=100)  # COCO's cap; every image here has fewer
    assert ours.ap50_95 == pytest.approx(ev.stats[0], abs=1e-3)
    assert ours.ap50 == pytest.approx(ev.stats[1], abs=1e-3)


def test_precision_recall_and_missed_objects():
    gt = tiling.Detections(xyxy=np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), class_id=np.array([0, 0]))
    pred = tiling.Detections(xyxy=np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), confidence=np.array([0.9, 0.8]),
                             class_id=np.array([0, 0]))
    ev = evaluate(pred, gt)
    assert ev.precision == 0.5 and ev.recall == 0.5
    assert ev.tp[0].tolist() == [True, False] and ev.fn[0].tolist() == [False, True]
    assert ev.per_class.loc[0, "n_gt"] == 2
    assert matched(pred, gt).tolist() == [True, False]
    assert ev.duplicates == 0 and ev.partials == 0


def test_duplicates_and_partial_boxes_are_counted():
    gt = tiling.Detections(xyxy=np.array([[0, 0, 100, 20]]), class_id=np.array([0]))
    pred = tiling.Detections(xyxy=np.array([[0, 0, 100, 20], [1, 0, 100, 20], [60, 0, 100, 20]]),
                             confidence=np.array([0.9, 0.8, 0.7]), class_id=np.array([0, 0, 0]))
    ev = evaluate(pred, gt)
    assert ev.precision == pytest.approx(1 / 3)
    assert ev.duplicates == 1 and ev.partials == 1


def test_label_loaders(tmp_path):
    det = parse_yolo_labels("0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.3 0.1 0.3 0.3\n", (100, 200))
    assert det.xyxy.tolist() == [[80, 30, 120, 70], [20, 10, 60, 30]] and det.class_id.tolist() == [0, 1]
    (tmp_path / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.3 0.1 0.3 0.3\n")
    assert load_yolo_labels(tmp_path / "a.txt", (100, 200)).xyxy.tolist() == det.xyxy.tolist()
    with pytest.raises(LabelError, match="line 1"):
        parse_yolo_labels("car 0.5 0.5 0.1 0.1", (10, 10))
    coco = {"images": [{"id": 3, "file_name": "x.jpg", "width": 10, "height": 10}],
            "annotations": [{"id": 1, "image_id": 3, "category_id": 2, "bbox": [1, 2, 3, 4]}],
            "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "truck"}]}
    out = parse_coco_labels(json.dumps(coco))
    assert out["x.jpg"].xyxy.tolist() == [[1, 2, 4, 6]] and out["x.jpg"].class_names == ["truck"]
    (tmp_path / "gt.json").write_text(json.dumps(coco))
    assert load_coco_labels(tmp_path / "gt.json")["x.jpg"].xyxy.tolist() == [[1, 2, 4, 6]]


def test_score_table_scores_the_shown_boxes_and_ranks_them_all():
    """Precision and recall count the boxes at the confidence shown; AP ranks every box; no box: no precision."""
    gt = tiling.Detections(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32), class_id=np.array([0, 0]))
    pred = tiling.Detections(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32),
                             np.array([0.9, 0.1], np.float32), np.array([0, 0]))
    nothing = tiling.Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int))
    table = score_table([nothing], [pred], [gt], conf=0.5).set_index("mode")
    full, tiled = table.loc["full image"], table.loc["patches"]
    assert np.isnan(full.iloc[0]["precision"]) and full.iloc[0]["recall"] == 0 and full.iloc[0]["AP50"] == 0
    assert tiled.iloc[0]["precision"] == 1.0 and tiled.iloc[0]["recall"] == 0.5  # one box at 0.5 and above
    assert tiled.iloc[0]["AP50"] == pytest.approx(1.0)  # both boxes, ranked: the whole curve
