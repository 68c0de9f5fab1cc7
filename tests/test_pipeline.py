import numpy as np
import pytest

import tiling
from tiling.merge import pair_metric

from conftest import SquareFinder, square_scene


def match_count(pred, gt, thr=0.9):
    """How many ground-truth boxes have a prediction with IoU >= thr (one-to-one, greedy)."""
    used = set()
    hits = 0
    for g in gt.xyxy:
        ious = pair_metric(np.repeat(g[None], len(pred), 0), pred.xyxy, "iou") if len(pred) else np.zeros(0)
        for k in np.argsort(-ious):
            if ious[k] < thr:
                break
            if k not in used:
                used.add(int(k))
                hits += 1
                break
    return hits


@pytest.mark.parametrize("method", ["nms", "nmm"])
@pytest.mark.parametrize("metric", ["iou", "ios"])
def test_every_object_once_even_when_cut_pieces_are_more_confident(method, metric):
    image, gt = square_scene(1000, 800, n=80, seed=3)
    model = SquareFinder(partial_conf=0.95, whole_conf=0.6)
    pred = tiling.predict_tiled(image, model, tile_size=256, overlap=0.25, conf=0.3, method=method, metric=metric,
                                threshold=0.5)
    assert len(pred.tiles) == 20
    assert len(pred.raw) > len(gt)  # duplicates and pieces at the overlaps
    assert pred.raw.data["truncated"].any()
    assert len(pred.detections) == len(gt)
    assert match_count(pred.detections, gt) == len(gt)


def test_raw_keeps_tile_of_origin_and_image_coordinates():
    image, gt = square_scene(600, 500, n=25, seed=1)
    pred = tiling.predict_tiled(image, SquareFinder(), tile_size=200, overlap=0.2, include_full=False)
    raw = pred.raw
    tiles = pred.tile_boxes
    inside = (raw.xyxy[:, 0] >= tiles[raw.data["tile_index"], 0]) & (raw.xyxy[:, 2] <= tiles[raw.data["tile_index"], 2])
    assert inside.all()
    assert set(raw.data["source"]) == {"tile"}
    frame = pred.detections.to_dataframe()
    assert list(frame.columns[:4]) == ["class_id", "class", "confidence", "x0"] and len(frame) == len(gt)


def test_concat_keeps_the_first_parts_data_columns_in_their_order():
    """CSV and JSON columns come from ``data``'s order, which must not depend on the process's string hashing."""
    keys = ["tile_index", "truncated", "source", "zeta", "alpha", "mid", "beta", "omega"]

    def part(n, names):
        return tiling.Detections(np.zeros((n, 4)), data={k: np.arange(n) for k in names})

    joined = tiling.Detections.concat([part(2, keys), part(3, keys[::-1]), part(1, [*keys[::-1], "extra"])])
    assert list(joined.data) == keys and len(joined.data["zeta"]) == 6
    assert list(tiling.Detections.concat([part(1, keys), part(1, keys[2:])]).data) == keys[2:]  # shared keys only


def test_batches_and_progress():
    image, _ = square_scene(900, 700, n=10)
    shapes = []

    class Recording(SquareFinder):
        def __call__(self, images):
            shapes.append({im.shape for im in images})
            return super().__call__(images)

    model = Recording()
    calls = []
    pred = tiling.predict_tiled(image, model, tile_size=256, overlap=0.25, batch_size=4, include_full=False,
                                progress=lambda done, total: calls.append((done, total)))
    n = len(pred.tiles)
    sizes = [sum((t.width, t.height) == wh for t in pred.tiles) for wh in {(t.width, t.height) for t in pred.tiles}]
    assert len(sizes) > 1  # 900 x 700 leaves trimmed edge tiles at 256 px
    assert model.calls == sum(-(-k // 4) for k in sizes) and model.images_seen == n
    assert all(len(s) == 1 for s in shapes)  # one tile size per batch
    assert calls[-1] == (n, n) and [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert set(pred.timings) >= {"plan", "infer", "merge", "total"}


def test_remerge_does_not_call_the_model():
    image, gt = square_scene(800, 600, n=30, seed=5)
    model = SquareFinder(partial_conf=0.3, whole_conf=0.9)
    pred = tiling.predict_tiled(image, model, tiling.TileSpec(256, 0.25), tiling.InferSpec(conf=0.1),
                                tiling.MergeSpec(conf=0.5))
    calls = model.calls
    low = pred.remerge(conf=0.2)
    agnostic = pred.remerge(method="nmm", metric="iou", threshold=0.6, class_agnostic=True, classes=[1])
    assert model.calls == calls
    assert len(low.raw) == len(pred.raw)
    assert set(agnostic.detections.class_id.tolist()) <= {1}
    assert agnostic.merge.method == "nmm" and pred.merge.method == "wbf"
    assert pred.remerge(pred.merge) is pred  # the same spec: nothing to do
    with pytest.raises(ValueError, match="below"):
        pred.remerge(conf=0.05)


def test_include_full_adds_a_full_image_pass():
    image, gt = square_scene(400, 300, n=5, seed=2, size=(60, 90))
    pred = tiling.predict_tiled(image, SquareFinder(), tile_size=128, overlap=0.1, include_full=True, imgsz=400)
    assert "full" in set(pred.raw.data["source"])
    assert match_count(pred.detections, gt) == len(gt)


def test_masks_follow_the_tiles_and_merge():
    image, gt = square_scene(700, 500, n=20, seed=4)
    pred = tiling.predict_tiled(image, SquareFinder(masks=True), tile_size=200, overlap=0.25, method="nmm")
    det = pred.detections
    assert det.has_masks and len(det) == len(gt)
    for k in range(len(det)):
        x0, y0, x1, y1 = det.mask_boxes[k]
        assert det.masks[k].shape == (y1 - y0, x1 - x0)
        assert det.masks[k].all()  # squares are solid: the union of pieces covers the whole box


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(conf=1.5), "conf"),
        (dict(method="avg"), "merge method"),
        (dict(metric="dice"), "metric"),
        (dict(tile_size=0), "tile_size must be between"),
        (dict(tile_size="640"), "tile_size must be a whole number"),
        (dict(tile_size=True), "tile_size must be a whole number"),
        (dict(max_det=-1), "max_det must be between 1"),
        (dict(imgsz=0), "imgsz must be between 32 and 4096"),
        (dict(imgsz=8000), "imgsz must be between 32 and 4096"),
        (dict(imgsz=1.5), "imgsz must be a whole number"),
        (dict(iou=float("nan")), "iou must be a number"),
        (dict(classes=[1.7]), "classes entry must be a whole number"),
        (dict(overlap=0.95), "overlap"),
        (dict(batch_size=0), "batch_size"),
        (dict(tile_size=16, overlap=0.5, max_tiles=100), "tiles on this 300x300 image, above the limit"),
    ],
)
def test_bad_parameters(kwargs, message):
    image, _ = square_scene(300, 300, n=3)
    with pytest.raises(ValueError, match=message):
        tiling.predict_tiled(image, SquareFinder(), **kwargs)


def test_conf_zero_and_one_and_tile_larger_than_image():
    image, gt = square_scene(300, 200, n=4)
    assert len(tiling.predict_tiled(image, SquareFinder(), tile_size=1024, conf=0.0).detections) == len(gt)
    assert len(tiling.predict_tiled(image, SquareFinder(), tile_size=1024, conf=1.0).detections) == 0


def test_bad_images():
    with pytest.raises(ValueError, match="H x W x 3"):
        tiling.predict_tiled(np.zeros((10, 10, 4), np.uint8), SquareFinder())
    with pytest.raises(ValueError, match="uint8"):
        tiling.predict_tiled(np.zeros((10, 10, 3), np.float32), SquareFinder())


def test_callable_returning_wrong_type():
    with pytest.raises(tiling.ModelError, match="Detections"):
        tiling.predict_tiled(np.zeros((64, 64, 3), np.uint8), lambda ims: [None] * len(ims), tile_size=64)


@pytest.mark.slow
def test_ultralytics_plumbing_with_a_yaml_model(yaml_detector):
    image, _ = square_scene(700, 500, n=10)
    pred = tiling.predict_tiled(image, yaml_detector, tile_size=320, overlap=0.2, conf=0.0, batch_size=3)
    assert len(pred.tiles) == 6 and pred.timings["infer"] > 0
    full = tiling.predict_full(image, yaml_detector, imgsz=320, conf=0.0)
    assert isinstance(full, tiling.Detections)
    for det in (pred.raw, full):
        if len(det):
            assert (det.xyxy[:, 2] <= 700 + 1e-3).all() and (det.xyxy[:, 3] <= 500 + 1e-3).all()


def test_suggest_tile_size_enlarges_small_objects_towards_the_size_the_model_sees_best(finder):
    from tiling.object_sizes import BEST_OBJECT_PX, MAX_ENLARGE

    small, _ = square_scene(2000, 1500, n=60, size=(12, 20))
    sure = tiling.suggest_tile_size(small, finder)  # found at 0.8: the model sees them well as they are
    assert sure.tiles.tile_size == 640 and not sure.tiles.levels and "no finer level" in sure.reason
    finder = SquareFinder(whole_conf=0.3, partial_conf=0.2)  # found, but unsurely: worth enlarging
    fixed = tiling.as_model(finder)
    fixed.input_hw = (640, 640)  # an export fixed at 640 px enlarges any smaller tile to it
    s = tiling.suggest_tile_size(small, fixed)
    assert s.tiles.tile_size % 32 == 0 and 640 / MAX_ENLARGE - 32 <= s.tiles.tile_size < 640 and not s.tiles.levels
    assert "enlarged" in s.reason and f"{BEST_OBJECT_PX} px" in s.reason
    any_size = tiling.suggest_tile_size(small, finder)  # runs a tile as it is: the finer size comes as a level
    assert any_size.tiles.tile_size == 640 and any_size.tiles.levels == (s.tiles.tile_size,)
    assert "second grid over 640 px tiles" in any_size.reason
    large, _ = square_scene(2000, 1500, n=30, size=(60, 90))
    s = tiling.suggest_tile_size(large, finder)
    assert s.tiles.tile_size == 640 and "large enough" in s.reason
    assert 90 / s.tiles.tile_size <= s.tiles.overlap + 1e-6  # the largest object fits in the overlap
    empty = tiling.suggest_tile_size(np.zeros((3000, 4000, 3), np.uint8), finder)
    assert empty.tiles.tile_size == 640 and "found 0 objects" in empty.reason


def test_auto_tile_size_adds_the_finer_level_the_objects_call_for():
    finder = SquareFinder(whole_conf=0.35, partial_conf=0.2)
    image, gt = square_scene(1500, 1200, n=60, size=(12, 20))
    pred = tiling.predict_tiled(image, finder, tile_size="auto", conf=0.3)
    assert pred.tile_spec.tile_size == 640 and len(pred.tile_spec.levels) == 1 and pred.tile_spec.levels[0] < 640
    assert "enlarged" in pred.tile_reason
    level = np.asarray(pred.raw.data["scale"])[np.asarray(pred.raw.data["tile_index"]) >= 0]
    assert set(np.round(level, 3)) <= {1.0, round(640 / pred.tile_spec.levels[0], 3)}
    assert len(pred.tiles) == len(pred.tile_spec.plan(image.shape))
    again = tiling.predict_tiled(image, finder, pred.tile_spec, conf=0.3)  # the resolved spec runs the same pyramid
    np.testing.assert_array_equal(again.detections.xyxy, pred.detections.xyxy)
    with pytest.raises(ValueError, match="levels .a tile pyramid. is not available for a streamed raster"):
        tiling.settings.check_run(levels=[320], streamed=True)
    with pytest.raises(ValueError, match="levels cannot be given with tile_size 'auto'"):
        tiling.TileSpec(tile_size="auto", levels=[320])


@pytest.mark.slow
def test_tiling_finds_the_small_objects_a_full_image_pass_misses(det_model):
    from conftest import SAMPLES

    image = tiling.read_image(SAMPLES / "depot-2400x1800.jpg")
    gt = tiling.load_yolo_labels(SAMPLES / "depot-2400x1800.txt", image.shape)
    full = tiling.predict_full(image, det_model, imgsz=640)
    tiled = tiling.predict_tiled(image, det_model, tile_size=640, overlap=0.25).detections
    full_eval, tiled_eval = tiling.evaluate(full, gt), tiling.evaluate(tiled, gt)
    assert full_eval.recall < 0.5 and tiled_eval.recall > 0.85
    assert tiled_eval.ap50 > 0.85
    found_only_by_tiles = gt[~tiled_eval.fn[0] & full_eval.fn[0]]
    assert len(found_only_by_tiles) > len(gt) // 2
    assert tiled_eval.duplicates <= 2


def test_an_unknown_setting_is_refused_with_the_known_names():
    image, _ = square_scene(300, 300, n=3)
    with pytest.raises(TypeError, match="unknown setting merge_threshold; the settings are"):
        tiling.predict_tiled(image, SquareFinder(), merge_threshold=0.5)


def test_a_callable_model_honours_max_det_and_classes_like_an_ultralytics_one():
    image, gt = square_scene(400, 400, n=12, seed=6)
    pred = tiling.predict_tiled(image, SquareFinder(), tile_size=1024, max_det=5, conf=0.0, include_full=False)
    assert len(pred.raw) == 5 and len(gt) > 5
    only = tiling.predict_tiled(image, SquareFinder(), tile_size=1024, classes=[1], conf=0.0)
    assert set(only.raw.class_id.tolist()) == {1}


def test_the_tile_size_sweep_reports_each_size_and_skips_what_cannot_run():
    image, gt = square_scene(1000, 800, n=40, seed=8)
    rows = tiling.sweep_tile_sizes(image, SquareFinder(), sizes=(0, 2000, 512, 256, 8), labels=gt,
                                   tiles=tiling.TileSpec(overlap=0.25, max_tiles=500))
    assert [r["size"] for r in rows] == [0, 512, 256]  # 2000 > the image; 8 px would pass max_tiles
    assert rows[0]["tiles"] == 1 and rows[2]["tiles"] == tiling.count_tiles((800, 1000), tile_size=256, overlap=0.25)
    assert all(r["seconds"] >= 0 and 0 <= r["ap50"] <= 1 for r in rows)
    assert rows[2]["objects"] == len(gt)


def test_the_offset_grid_sees_whole_an_object_every_tile_of_the_first_grid_cuts():
    image = np.zeros((1000, 1000, 3), np.uint8)
    image[130:190, 220:290] = (255, 0, 0)  # 70 px wide across the 26 px overlap at x 230-256: cut in both tiles
    gt = tiling.Detections(np.array([[220, 130, 290, 190]], np.float32))
    one = tiling.predict_tiled(image, SquareFinder(), tile_size=256, overlap=0.1, conf=0.3, include_full=False)
    two = tiling.predict_tiled(image, SquareFinder(), tile_size=256, overlap=0.1, conf=0.3, offset_grid=True,
                                include_full=False)
    assert match_count(one.detections, gt) == 0 and one.raw.data["truncated"].all()
    assert len(two.tiles) > len(one.tiles)
    assert len(two.detections) == 1 and match_count(two.detections, gt) == 1
