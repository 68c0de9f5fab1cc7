"""Oriented boxes through the library: rotated overlap, merge, the model's fast path, pipeline, exports,
drawing and evaluation, on hand-made detections and tiny untrained Ultralytics OBB models."""
from __future__ import annotations

import io
import json
import zipfile

import cv2
import numpy as np
import pytest

import tiling
from tiling import rotated
from tiling.detections import Detections
from tiling.geometry import enclosing_boxes, obb_corners
from tiling.formats import results_zip, to_coco_dataset, to_dota_txt

from conftest import page_with_uploaded_model, untrained_checkpoint

NAMES = {0: "plane", 1: "car"}


def random_obbs(rng, n, spread=60.0):
    return np.c_[rng.uniform(0, spread, (n, 2)), rng.uniform(1, 40, (n, 2)), rng.uniform(-np.pi, np.pi, n)]


# -- rotated overlap -----------------------------------------------------------------------------
def test_intersection_matches_two_independent_polygon_clippers():
    pytest.importorskip("shapely")
    from shapely.geometry import Polygon

    rng = np.random.default_rng(0)
    a, b = random_obbs(rng, 400), random_obbs(rng, 400)
    mine = rotated.intersection_areas(a, b)
    ca, cb = obb_corners(a).astype(np.float64), obb_corners(b).astype(np.float64)
    by_shapely = np.array([Polygon(p).intersection(Polygon(q)).area for p, q in zip(ca, cb)])
    by_opencv = np.array([cv2.intersectConvexConvex(p.astype(np.float32), q.astype(np.float32))[0]
                          for p, q in zip(ca, cb)])
    assert (mine > 0).mean() > 0.3  # the sample has real overlaps
    np.testing.assert_allclose(mine, by_shapely, atol=1e-3)
    np.testing.assert_allclose(mine, by_opencv, atol=1e-2)
    iou = rotated.pair_metric(a, b, "iou")
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - by_shapely
    np.testing.assert_allclose(iou, by_shapely / union, atol=1e-5)
    ios = rotated.pair_metric(a, b, "ios")
    np.testing.assert_allclose(ios, by_shapely / np.minimum(a[:, 2] * a[:, 3], b[:, 2] * b[:, 3]), atol=1e-5)


def test_overlap_edge_cases():
    box = np.array([[100.0, 100.0, 40.0, 10.0, 0.7]])
    assert rotated.pair_metric(box, box, "iou")[0] == pytest.approx(1.0, abs=1e-6)
    far = box + [500, 0, 0, 0, 0]
    assert rotated.pair_metric(box, far, "iou")[0] == 0.0
    inside = np.array([[100.0, 100.0, 10.0, 4.0, 0.7]])
    assert rotated.pair_metric(box, inside, "ios")[0] == pytest.approx(1.0, abs=1e-5)
    assert rotated.pair_metric(inside, box, "inside")[0] == pytest.approx(1.0, abs=1e-5)
    # the same rectangle described with width and height swapped and a quarter turn is the same box
    swapped = np.array([[100.0, 100.0, 10.0, 40.0, 0.7 + np.pi / 2]])
    assert rotated.pair_metric(box, swapped, "iou")[0] == pytest.approx(1.0, abs=1e-5)
    zero = np.array([[100.0, 100.0, 0.0, 10.0, 0.0]])
    assert rotated.pair_metric(box, zero, "iou")[0] == 0.0
    assert rotated.pair_metric(np.zeros((0, 5)), np.zeros((0, 5))).shape == (0,)
    m = rotated.iou_matrix(np.r_[box, far], np.r_[box, inside, far])
    assert m.shape == (2, 3) and m[0, 0] == pytest.approx(1.0, abs=1e-6) and m[1, 2] == pytest.approx(1.0, abs=1e-6)
    assert m[0, 2] == 0 and m[1, 0] == 0


def test_quads_to_obb_recovers_rectangles_and_fits_skewed_quads():
    rng = np.random.default_rng(1)
    boxes = random_obbs(rng, 50)
    back = rotated.quads_to_obb(obb_corners(boxes))
    assert np.all(rotated.pair_metric(boxes, back, "iou") > 0.9999)
    skewed = obb_corners(boxes[:1]).astype(np.float64)
    skewed[0, 0] += [3.0, 1.0]
    fit = rotated.quads_to_obb(skewed)
    assert rotated.pair_metric(fit, fit, "iou")[0] > 0.999
    fitted_corners = obb_corners(fit)[0]
    for p in skewed[0]:  # the rectangle holds every corner of the quadrilateral
        assert cv2.pointPolygonTest(fitted_corners.astype(np.float32), tuple(map(float, p)), True) >= -1e-3


# -- Detections ----------------------------------------------------------------------------------
def test_oriented_boxes_follow_selection_shift_scale_and_concat():
    obb = np.array([[50, 40, 30, 10, 0.5], [10, 10, 8, 4, -0.3], [70, 20, 12, 6, 1.2]], np.float32)
    det = Detections.from_obb(obb, [0.9, 0.6, 0.3], [0, 1, 0], NAMES)
    np.testing.assert_allclose(det.xyxy, enclosing_boxes(obb))
    assert det.has_obb and det.corners().shape == (3, 4, 2)
    np.testing.assert_allclose(det[[2, 0]].obb, obb[[2, 0]])
    np.testing.assert_allclose(det[det.confidence > 0.5].obb, obb[:2])
    moved = det.shifted(100, 200)
    np.testing.assert_allclose(moved.obb[:, :2], obb[:, :2] + [100, 200])
    np.testing.assert_allclose(moved.xyxy, enclosing_boxes(moved.obb), atol=1e-4)
    half = det.scaled(0.5)
    np.testing.assert_allclose(half.obb, obb * [0.5, 0.5, 0.5, 0.5, 1])
    plain = Detections(xyxy=np.zeros((0, 4)))
    joined = Detections.concat([det, plain, det[:1]])
    assert joined.has_obb and len(joined.obb) == 4  # empty parts without oriented boxes do not drop them
    mixed = Detections.concat([det, Detections(xyxy=[[0, 0, 5, 5]])])
    assert mixed.obb is None and len(mixed) == 4
    frame = det.to_dataframe()
    assert list(frame["angle_deg"].round(2)) == list(np.degrees(obb[:, 4].astype(np.float64)).round(2))
    clipped = Detections.from_obb(obb, clip=(60, 30))
    assert clipped.xyxy[:, 2].max() <= 60 and clipped.xyxy[:, 3].max() <= 30
    with pytest.raises(ValueError, match="obb"):
        Detections(xyxy=[[0, 0, 1, 1]], obb=np.zeros((2, 5)))
    empty = Detections.empty(NAMES, with_obb=True)
    assert empty.obb.shape == (0, 5) and len(empty[np.arange(0)].obb) == 0


# -- merge ---------------------------------------------------------------------------------------
def _diagonal_pair():
    """Two long parallel objects at 45 degrees, 12 px apart: their enclosing boxes overlap heavily."""
    return np.array([[100, 100, 120, 8, np.pi / 4], [108.5, 91.5, 120, 8, np.pi / 4]], np.float32)


def test_merge_uses_rotated_overlap_not_the_enclosing_boxes():
    pair = _diagonal_pair()
    det = Detections.from_obb(pair, [0.9, 0.8], [0, 0], NAMES)
    from tiling.merge import pair_metric

    assert pair_metric(det.xyxy[:1], det.xyxy[1:], "iou")[0] > 0.6  # upright boxes would call them one object
    for metric in ("iou", "ios"):
        out = tiling.merge(det, conf=0.0, metric=metric, threshold=0.5)
        assert len(out) == 2 and out.has_obb
    duplicate = Detections.from_obb(np.r_[pair[:1], pair[:1] + [1, 1, 0, 0, 0.02]], [0.9, 0.8], [0, 0], NAMES)
    out = tiling.merge(duplicate, conf=0.0, metric="iou", threshold=0.5)
    assert len(out) == 1 and out.confidence[0] == pytest.approx(0.9)
    np.testing.assert_allclose(out.obb[0], pair[0])


def test_merge_class_aware_and_agnostic():
    box = np.array([[200, 200, 60, 20, 0.4]], np.float32)
    det = Detections.from_obb(np.r_[box, box + [2, 0, 0, 0, 0]], [0.9, 0.7], [0, 1], NAMES)
    assert len(tiling.merge(det, conf=0.0, threshold=0.5)) == 2
    agnostic = tiling.merge(det, conf=0.0, threshold=0.5, class_agnostic=True)
    assert len(agnostic) == 1 and agnostic.class_id[0] == 0


def test_nmm_fuses_at_the_kept_boxes_angle():
    keeper = np.array([300, 300, 80, 20, 0.3], np.float32)
    extended = keeper + np.array([20 * np.cos(0.3), 20 * np.sin(0.3), 0, 0, 0.05], np.float32)
    det = Detections.from_obb(np.stack([keeper, extended]), [0.9, 0.8], [0, 0], NAMES)
    out = tiling.merge(det, conf=0.0, method="nmm", metric="iou", threshold=0.3)
    assert len(out) == 1
    fused = out.obb[0]
    assert fused[4] == pytest.approx(keeper[4])
    poly = obb_corners(out.obb)[0].astype(np.float32)
    for p in det.corners().reshape(-1, 2):  # every member's corner is inside the fused box
        assert cv2.pointPolygonTest(poly, tuple(map(float, p)), True) >= -1e-2
    assert fused[2] * fused[3] < 1.6 * keeper[2] * keeper[3] + 1e-3 and fused[2] > keeper[2] + 15
    # xyxy: the fused box's enclosing box, kept within the members' own enclosing boxes (inside the image)
    union = np.r_[det.xyxy[:, :2].min(0), det.xyxy[:, 2:].max(0)]
    around = enclosing_boxes(out.obb)[0]
    np.testing.assert_allclose(out.xyxy[0], np.r_[np.maximum(around[:2], union[:2]), np.minimum(around[2:], union[2:])],
                               atol=1e-3)


def test_a_cut_piece_never_beats_the_whole_rotated_box():
    whole = np.array([400, 300, 90, 24, 0.6], np.float32)
    piece = whole.copy()
    piece[2] = 40  # the half a tile edge left, more confident than the whole
    piece[:2] -= 25 * np.array([np.cos(0.6), np.sin(0.6)])
    det = Detections.from_obb(np.stack([piece, whole]), [0.95, 0.7], [1, 0], NAMES)
    det.data["truncated"] = np.array([True, False])
    out = tiling.merge(det, conf=0.0, metric="iou", threshold=0.5)  # their IoU is low, the piece lies inside
    assert len(out) == 1 and out.class_id[0] == 0
    np.testing.assert_allclose(out.obb[0], whole)
    assert out.confidence[0] == pytest.approx(0.95)


# -- the pipeline with a model that returns oriented boxes --------------------------------------
def rotated_scene(width=900, height=700, n=40, seed=0):
    """Black image with white rotated rectangles; returns (image, ground-truth oriented Detections)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    boxes = []
    while len(boxes) < n:
        cand = np.array([rng.uniform(40, width - 40), rng.uniform(40, height - 40), rng.uniform(20, 60),
                         rng.uniform(8, 20), rng.uniform(0, np.pi)])
        if boxes and rotated.pair_metric(np.repeat(cand[None], len(boxes), 0), np.array(boxes), "iou").max() > 0 \
                or any(np.hypot(*(cand[:2] - np.array(b[:2]))) < 70 for b in boxes):
            continue
        boxes.append(cand)
    gt = Detections.from_obb(np.array(boxes), class_id=np.zeros(n), names={0: "bar"})
    for pts in gt.corners():
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], (255, 255, 255))
    return img, gt


def find_bars(images):
    """A stand-in OBB model: every white blob as its minimum-area rotated rectangle."""
    out = []
    for im in images:
        fg = (im[..., 0] > 128).astype(np.uint8)
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        rows = []
        for c in contours:
            (cx, cy), (w, h), deg = cv2.minAreaRect(c)
            rows.append([cx, cy, w + 1, h + 1, np.radians(deg)])
        h, w = im.shape[:2]
        out.append(Detections.from_obb(np.array(rows, np.float32).reshape(-1, 5), np.full(len(rows), 0.9),
                                       np.zeros(len(rows)), {0: "bar"}, clip=(w, h)))
    return out


def test_predict_tiled_carries_oriented_boxes_to_one_box_per_object():
    image, gt = rotated_scene()
    model = tiling.CallableModel(find_bars, names={0: "bar"}, task="obb")
    pred = tiling.predict_tiled(image, model, tile_size=256, overlap=0.25, conf=0.25)
    assert pred.raw.has_obb and pred.detections.has_obb
    assert pred.raw.data["truncated"].any()  # bars were cut by tile edges
    assert len(pred.raw) > len(gt)
    result = tiling.evaluate(pred.detections, gt)
    assert result.recall == 1.0 and result.duplicates == 0 and result.precision == 1.0
    best = rotated.iou_matrix(pred.detections.obb, gt.obb).max(axis=1)
    assert np.median(best) > 0.8
    nothing = tiling.predict_tiled(np.zeros((300, 300, 3), np.uint8), model, tile_size=128)
    assert nothing.detections.has_obb and len(nothing.detections) == 0


# -- evaluation ----------------------------------------------------------------------------------
def test_evaluation_scores_oriented_boxes_by_rotated_iou():
    pytest.importorskip("shapely")
    from shapely.geometry import Polygon

    gt = Detections.from_obb(_diagonal_pair()[:1], class_id=[0], names=NAMES)
    # the same centre and size, turned a quarter: its enclosing box is identical, the rectangles barely meet
    turned = Detections.from_obb(_diagonal_pair()[:1] + [0, 0, 0, 0, np.pi / 2], [0.9], [0], NAMES)
    np.testing.assert_allclose(turned.xyxy, gt.xyxy, atol=1e-3)
    expected = Polygon(turned.corners()[0]).intersection(Polygon(gt.corners()[0])).area
    expected /= Polygon(turned.corners()[0]).union(Polygon(gt.corners()[0])).area
    from tiling.evaluate import detection_iou

    assert detection_iou(turned, gt)[0, 0] == pytest.approx(expected, abs=1e-5) and expected < 0.2
    assert tiling.evaluate(turned, gt).ap50 == 0.0
    exact = Detections.from_obb(gt.obb, [0.9], [0], NAMES)
    result = tiling.evaluate(exact, gt)
    assert result.ap50 == pytest.approx(1.0) and result.ap50_95 == pytest.approx(1.0)


def test_evaluation_ap_agrees_with_shapely_matching():
    pytest.importorskip("shapely")
    from shapely.geometry import Polygon

    rng = np.random.default_rng(3)
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(6)), -1).reshape(-1, 2) * 100.0 + 60  # apart: no label overlaps another
    gt_obb = np.c_[grid, rng.uniform(20, 60, (60, 2)), rng.uniform(0, np.pi, 60)]
    gt = Detections.from_obb(gt_obb, class_id=np.zeros(60), names=NAMES)
    noisy = gt_obb + np.c_[rng.normal(0, 4, (60, 2)), rng.normal(0, 4, (60, 2)), rng.normal(0, 0.2, 60)]
    pred = Detections.from_obb(noisy, rng.uniform(0.3, 1.0, 60), np.zeros(60), NAMES)
    result = tiling.evaluate(pred, gt)
    by_shapely = np.array([Polygon(p).intersection(Polygon(q)).area / Polygon(p).union(Polygon(q)).area
                           for p, q in zip(pred.corners(), gt.corners())])
    # labels are apart, so each prediction can only match its own: TP at 0.5 is its shapely IoU >= 0.5
    assert result.per_class["tp"].iloc[0] == int((by_shapely >= 0.5).sum())
    assert 0 < result.recall < 1


# -- export and labels ---------------------------------------------------------------------------
def test_exports_hold_the_oriented_boxes(tmp_path):
    obb = np.array([[50, 40, 30, 10, 0.5], [20, 20, 8, 4, -0.3]], np.float32)
    det = Detections.from_obb(obb, [0.9, 0.6], [0, 1], {0: "small vehicle", 1: "plane"}, clip=(100, 80))
    shape = (80, 100, 3)
    yolo = tiling.to_yolo_txt(det, shape)
    back = tiling.parse_yolo_labels(yolo, shape, obb=True)
    assert back.has_obb and np.all(rotated.pair_metric(back.obb, det.obb, "iou") > 0.999)
    dota = to_dota_txt(det, with_conf=True).splitlines()
    fields = dota[0].split()
    assert len(fields) == 11 and fields[8] == "small-vehicle" and fields[9] == "0" and float(fields[10]) == 0.9
    np.testing.assert_allclose(np.array(fields[:8], float).reshape(4, 2), det.corners()[0], atol=0.06)
    rows = json.loads(tiling.to_json(det))
    assert rows[0]["obb"]["angle_deg"] == pytest.approx(np.degrees(0.5), abs=1e-3) and len(rows[0]["corners"]) == 8
    csv = tiling.to_csv(det).splitlines()
    assert "angle_deg" in csv[0].split(",") and "cx" in csv[0].split(",")
    records = tiling.to_coco(det)
    assert records[0]["obb"][4] == pytest.approx(0.5) and len(records[0]["segmentation"][0]) == 8
    dataset = to_coco_dataset({"a.jpg": (shape, det)}, det.names)
    assert dataset["annotations"][0]["area"] == pytest.approx(300.0)
    pycocotools = pytest.importorskip("pycocotools.coco")
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(dataset))
    coco = pycocotools.COCO(str(path))
    mask = coco.annToMask(coco.loadAnns(1)[0])
    assert abs(int(mask.sum()) - 300) < 60  # the polygon is the rotated box, not its enclosing box (722 px)
    image = np.zeros(shape, np.uint8)
    archive = zipfile.ZipFile(io.BytesIO(results_zip({"a.jpg": (image, det, det)})))
    assert archive.read("dota/a.txt").decode().count("\n") == 2


def test_yolo_obb_labels_are_checked():
    with pytest.raises(tiling.LabelError, match="line 2: 4 values after the class; an oriented box"):
        tiling.parse_yolo_labels("0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2\n0 0.5 0.5 0.1 0.1\n", (100, 100), obb=True)
    with pytest.raises(tiling.LabelError, match="line 1"):
        tiling.parse_yolo_labels("0 0.1 0.1 0.2 nan 0.2 0.2 0.1 0.2\n", (100, 100), obb=True)
    outside = tiling.parse_yolo_labels("0 1.1 1.1 1.2 1.1 1.2 1.2 1.1 1.2\n", (100, 100), obb=True)
    assert len(outside) == 0 and outside.has_obb
    assert tiling.parse_yolo_labels("", (100, 100), obb=True).has_obb
    corners = "0 0.1 0.1 0.3 0.1 0.3 0.2 0.1 0.2\n1 0.5 0.4 0.6 0.5 0.5 0.6 0.4 0.5\n"
    auto = tiling.parse_yolo_labels(corners, (100, 200))  # every row four corners: YOLO-OBB
    assert auto.has_obb
    np.testing.assert_allclose(auto.obb, tiling.parse_yolo_labels(corners, (100, 200), obb=True).obb)
    np.testing.assert_allclose(auto.obb[0], [40, 15, 40, 10, 0], atol=1e-4)
    np.testing.assert_allclose(auto.xyxy, tiling.parse_yolo_labels(corners, (100, 200), obb=False).xyxy)
    assert not tiling.parse_yolo_labels(corners + "0 0.5 0.5 0.1 0.1\n", (100, 200)).has_obb


# -- drawing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dashed", [False, True])
def test_rotated_boxes_are_drawn_at_their_angle(dashed):
    det = Detections.from_obb([[100, 100, 120, 20, np.pi / 4]], [0.9], [0], NAMES)
    out = tiling.draw_detections(np.zeros((200, 200, 3), np.uint8), det, labels=False, line_width=2, dashed=dashed)
    drawn = out.any(axis=2)
    x0, y0, x1, y1 = det.xyxy[0].astype(int)
    assert not drawn[y0 + 2, x0 + 2] and not drawn[y1 - 3, x1 - 3]  # the enclosing box's corners stay empty
    corner = np.round(det.corners()[0, 0]).astype(int)
    assert drawn[corner[1] - 2 : corner[1] + 3, corner[0] - 2 : corner[0] + 3].any()
    huge = Detections.from_obb([[1e6, 1e6, 4e6, 10, 0.3]], [0.9], [0], NAMES)
    tiling.draw_detections(np.zeros((50, 50, 3), np.uint8), huge, dashed=dashed)  # bounded by the image


# -- Ultralytics OBB models ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def obb_checkpoint(tmp_path_factory):
    return untrained_checkpoint("yolo11n-obb.yaml", tmp_path_factory.mktemp("obb"))


@pytest.mark.slow
def test_obb_checkpoint_passes_the_safe_loader(obb_checkpoint):
    model = tiling.load_model(obb_checkpoint.read_bytes(), runtime="torch", name="upload.pt")
    assert model.task == "obb" and model._fast


@pytest.mark.slow
def test_obb_fast_path_matches_ultralytics_predict(obb_checkpoint):
    model = tiling.load_model(obb_checkpoint, runtime="torch")
    image = (np.random.default_rng(0).random((128, 128, 3)) * 255).astype(np.uint8)  # few anchors: a quick NMS
    spec = tiling.InferSpec(conf=0.45, max_det=50)
    fast = model.predict([image], spec, imgsz=128)[0]
    model._fast = False
    general = model.predict([image], spec, imgsz=128)[0]
    model._fast = True
    assert len(fast) == len(general) > 0 and fast.has_obb and general.has_obb
    a, b = fast[np.argsort(-fast.confidence)], general[np.argsort(-general.confidence)]
    np.testing.assert_allclose(a.obb, b.obb, atol=1e-3)
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
    pred = tiling.predict_tiled(np.tile(image, (2, 3, 1)), model, tile_size=128, overlap=0.2, conf=0.3, max_det=20,
                                include_full=False)
    assert pred.raw.has_obb and pred.detections.has_obb and len(pred.detections) > 0
    assert set(pred.raw.data["tile_index"]) == set(range(len(pred.tiles)))  # every tile found boxes
    inside = (pred.detections.xyxy >= 0).all() and (pred.detections.xyxy[:, 2] <= 384).all()
    assert inside and (pred.detections.xyxy[:, 3] <= 256).all()


@pytest.mark.slow
def test_obb_onnx_export_loads_and_agrees(obb_checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    from ultralytics import YOLO

    onnx = YOLO(str(obb_checkpoint)).export(format="onnx", dynamic=True, imgsz=320, verbose=False)
    model = tiling.load_model(onnx)
    assert model.runtime == "onnx" and model.task == "obb"
    torch_model = tiling.load_model(obb_checkpoint, runtime="torch")
    image = (np.random.default_rng(1).random((128, 128, 3)) * 255).astype(np.uint8)
    x, layout = torch_model._prepare([image, image], None)
    ours, theirs = model.net(x)[0], torch_model.net(x)[0]
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-3)
    det = model.predict([image], tiling.InferSpec(conf=0.45))[0]
    assert det.has_obb and len(det) > 0


# -- the page ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_every_view_of_the_page_works_with_rotated_boxes(obb_checkpoint):
    """An uploaded OBB checkpoint on an uploaded image with YOLO-OBB labels, through each tab."""
    from ui.views import SCORES, STEPS, ZOOM

    image, gt = rotated_scene(width=256, height=192, n=4, seed=2)
    labels = tiling.to_yolo_txt(Detections.from_obb(gt.obb, class_id=gt.class_id), image.shape)
    at = page_with_uploaded_model("obb.pt", obb_checkpoint.read_bytes(), image, labels)
    assert not at.exception and not at.error
    assert "obb" in " ".join(c.value for c in at.sidebar.caption)
    table = at.dataframe[0].value
    assert {"angle_deg", "cx", "obb_w"} <= set(table.columns) and len(table) > 0
    assert "dl_dota" in [b.key for b in at.get("download_button")]
    for view in (ZOOM, STEPS, SCORES):
        at.session_state["view"] = view
        at.run()
        assert not at.exception and not at.error, view
    assert any("missed" in c.caption for im in at.image for c in im.proto.imgs)


def test_samples_are_picked_by_the_kind_of_their_labels(tmp_path):
    from tiling.labels import is_oriented_label_file
    from tiling.models.bundled import BundledAssets

    for name, rows in (("a-upright", ["0 0.5 0.5 0.1 0.1"]), ("b-oriented", ["1 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2"] * 2),
                       ("c-mixed", ["1 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2", "0 0.5 0.5 0.1 0.1"]), ("d-bare", None)):
        cv2.imwrite(str(tmp_path / f"{name}.jpg"), np.zeros((8, 8, 3), np.uint8))
        if rows is not None:
            (tmp_path / f"{name}.txt").write_text("\n".join(rows) + "\n")
    assert is_oriented_label_file(tmp_path / "b-oriented.txt") and not is_oriented_label_file(tmp_path / "c-mixed.txt")
    assert not is_oriented_label_file(tmp_path / "d-bare.txt")  # none
    samples = BundledAssets(samples_dir=tmp_path)
    assert [p.name for p in samples.samples_for("obb")] == ["b-oriented.jpg", "d-bare.jpg"]
    assert [p.name for p in samples.samples_for("detect")] == ["a-upright.jpg", "c-mixed.jpg", "d-bare.jpg"]
    assert BundledAssets().samples_for("detect") == []  # no samples given: none
