"""The scene generator's oriented boxes, keypoints and label files (the demo OBB/pose models train on them)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from scripts.scenes import obb_lines, pose_lines, render_scene, yolo_lines


@pytest.fixture(scope="module")
def scene():
    # Dense enough that several objects are cut by the border.
    return render_scene(400, 300, seed=11, n_objects=40)


def _edge_distances(corners: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Signed distance (positive inside) of each point to each of the rectangle's four edges: (N, 4)."""
    a, b = corners, np.roll(corners, -1, axis=0)
    centre = corners.mean(axis=0)
    normals = np.stack([-(b - a)[:, 1], (b - a)[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    inward = np.sign(((centre - a) * normals).sum(axis=1))
    return ((points[:, None, :] - a[None]) * normals[None]).sum(axis=2) * inward[None]


def _mask_pixel_centres(obj, shape) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(obj.polygon).astype(np.int32)], 1)
    ys, xs = np.nonzero(mask)
    return np.stack([xs, ys], axis=1).astype(np.float64) + 0.5


def test_every_object_has_an_oriented_box_that_fits_its_pixels_tightly(scene):
    image, objects = scene
    cut = 0
    for obj in objects:
        assert obj.rbox is not None
        pts = _mask_pixel_centres(obj, image.shape[:2])
        dist = _edge_distances(obj.corners, pts)
        # Every drawn pixel is inside (rasterization reaches under a pixel past the geometry), except
        # the outermost row or column, where OpenCV paints the part beyond the image onto the edge ...
        h, w = image.shape[:2]
        interior = (pts[:, 0] > 1) & (pts[:, 0] < w - 1) & (pts[:, 1] > 1) & (pts[:, 1] < h - 1)
        assert dist[interior].min() > -1.0, (obj.class_id, obj.rbox)
        # ... and every edge touches the drawn pixels (the box is the object's, not a loose bound).
        # The traced polygon keeps a mask's largest piece: for an object cut by the border that may be
        # one wing tip, and for a truck whose cab is drawn apart from its trailer, the trailer (the
        # cab is at the front edge, index 1); those edges are not compared.
        x0, y0, x1, y1 = obj.box
        is_cut = x0 <= 0 or y0 <= 0 or x1 >= w or y1 >= h
        cut += is_cut
        if not is_cut:
            edges = [0, 2, 3] if obj.class_id == 1 else [0, 1, 2, 3]
            assert (dist.min(axis=0)[edges] < 1.5).all(), (obj.class_id, obj.rbox)
        cx, cy = obj.rbox[:2]
        assert 0 <= cx <= w and 0 <= cy <= h
    assert cut >= 2  # the border refit was exercised


def test_heading_and_plane_keypoints_follow_the_drawn_plane(scene):
    image, objects = scene
    planes = [o for o in objects if o.class_id == 2]
    assert planes and all(o.keypoints is not None for o in planes)
    assert all(o.keypoints is None for o in objects if o.class_id != 2)
    for plane in planes:
        cx, cy, length, _, angle = plane.rbox
        nose, tail, left, right = plane.keypoints
        heading = np.array([math.cos(angle), math.sin(angle)])
        if nose[2] and tail[2]:
            assert np.dot(nose[:2] - tail[:2], heading) > 0.9 * length
        if left[2] and right[2]:  # the left wing tip is on the left looking along the heading (y points down)
            side = heading[0] * (left[1] - right[1]) - heading[1] * (left[0] - right[0])
            assert side < 0
        visible = plane.keypoints[plane.keypoints[:, 2] > 0, :2]
        dist = _edge_distances(plane.corners, visible)
        assert dist.min() > -1.0


def test_obb_lines_round_trip_through_ultralytics_rotated_boxes(scene):
    from ultralytics.utils.ops import xyxyxyxy2xywhr

    image, objects = scene
    h, w = image.shape[:2]
    lines = obb_lines(objects, w, h)
    assert len(lines) == len(objects)
    rows = np.array([[float(v) for v in line.split()] for line in lines])
    assert rows.shape[1] == 9 and rows[:, 1:].min() >= 0 and rows[:, 1:].max() <= 1
    assert (rows[:, 0] == [o.class_id for o in objects]).all()
    inside = [i for i, o in enumerate(objects) if (o.corners >= 0).all() and (o.corners <= [w, h]).all()]
    assert len(inside) > len(objects) // 2
    corners = rows[inside, 1:].reshape(-1, 4, 2) * [w, h]
    xywhr = xyxyxyxy2xywhr(corners.reshape(-1, 8).astype(np.float32))
    expected = np.array([objects[i].rbox for i in inside])
    np.testing.assert_allclose(xywhr[:, :2], expected[:, :2], atol=0.01)
    sides = np.sort(xywhr[:, 2:4], axis=1)
    np.testing.assert_allclose(sides, np.sort(expected[:, 2:4], axis=1), atol=0.01)


def test_pose_lines_hold_the_box_and_four_keypoints_of_each_plane(scene):
    image, objects = scene
    h, w = image.shape[:2]
    planes = [o for o in objects if o.class_id == 2]
    rows = np.array([[float(v) for v in line.split()] for line in pose_lines(objects, w, h)])
    assert rows.shape == (len(planes), 5 + 4 * 3)
    assert (rows[:, 0] == 0).all() and rows[:, 1:].min() >= 0 and rows[:, 1:].max() <= 2
    kpts = rows[:, 5:].reshape(-1, 4, 3)
    for plane, row in zip(planes, kpts):
        vis = plane.keypoints[:, 2] > 0
        assert (row[vis, 2] == 2).all() and (row[~vis] == 0).all()
        np.testing.assert_allclose(row[vis, :2] * [w, h], plane.keypoints[vis, :2], atol=1e-3)


def test_make_dataset_writes_each_task_s_labels_and_yaml(tmp_path):
    from scripts.make_dataset import build

    for task, columns in (("obb", {9}), ("pose", {17}), ("segment", None)):
        yaml = build(tmp_path / task, n_train=3, n_val=2, size=160, task=task)
        text = yaml.read_text()
        assert "train: images/train" in text
        assert ("kpt_shape: [4, 3]" in text and "flip_idx: [0, 1, 3, 2]" in text) == (task == "pose")
        labels = sorted((tmp_path / task / "labels").rglob("*.txt"))
        assert len(labels) == 5 and len(list((tmp_path / task / "images").rglob("*.jpg"))) == 5
        widths = {len(line.split()) for f in labels for line in f.read_text().splitlines() if line}
        if columns is None:
            assert widths and all(n >= 7 and n % 2 == 1 for n in widths)
        else:
            assert widths <= columns


def test_oriented_labels_leave_the_bundled_samples_unchanged():
    """The geometry draws no random numbers: a bundled sample still renders to its committed labels."""
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "samples" / "depot-2400x1800.txt"
    _, objects = render_scene(2400, 1800, seed=404, n_objects=200, distractors=0.8)
    assert "\n".join(yolo_lines(objects, 2400, 1800)) + "\n" == path.read_text()


def test_obb_sample_check_matches_at_exact_rotated_iou():
    from scripts.check_obb_sample import match, rotated_iou

    square = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float)
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    diamond = square @ np.array([[c, -s], [s, c]]).T
    assert rotated_iou(square, square) == pytest.approx(1.0)
    assert rotated_iou(square, diamond) == pytest.approx(math.sqrt(2) / 2, abs=1e-4)  # octagon / union
    assert rotated_iou(square, square + [1, 0]) == pytest.approx(1 / 3)
    gt = np.stack([square, square + [10, 0]])
    preds = np.stack([square + [0.1, 0], square, square + [10, 0], square + [1.5, 0]])
    # the best-scored box takes the first object, a duplicate of it and a wrong class score nothing
    tp, n = match(np.array([0, 1]), gt, np.array([0, 0, 2, 0]), np.array([0.9, 0.8, 0.7, 0.6]), preds)
    assert (tp, n) == (1, 4)
