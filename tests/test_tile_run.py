"""The tile loop every engine shares (tiling.tile_run) and the run checks they all call (tiling.settings)."""
from __future__ import annotations

import numpy as np
import pytest

import tiling
from tiling.detections import Detections
from tiling.settings import check_run
from tiling.tile_run import TileRun, array_reader, batch_order, in_run_order


def bright_spots(images):
    """One box per tile around its brightest pixel, confidence from the pixel value: a model whose answer
    depends only on what the tile shows, so a tile read wrongly gives a different box."""
    out = []
    for im in images:
        grey = im.max(axis=2)
        y, x = np.unravel_index(int(np.argmax(grey)), grey.shape)
        box = [[max(x - 4, 0), max(y - 4, 0), min(x + 4, im.shape[1]), min(y + 4, im.shape[0])]]
        out.append(Detections(np.array(box, np.float32), np.array([grey[y, x] / 255.0], np.float32),
                              np.zeros(1, np.int64), names={0: "spot"}))
    return out


@pytest.fixture
def scene():
    rng = np.random.default_rng(7)
    image = (rng.random((300, 420, 3)) * 120).astype(np.uint8)
    for x, y in [(30, 40), (200, 150), (400, 280), (130, 260)]:
        image[y - 2 : y + 3, x - 2 : x + 3] = 200 + (x % 50)
    return image


MODEL = tiling.CallableModel(bright_spots, names={0: "spot"})
TILES = tiling.TileSpec(tile_size=128, overlap=0.2)
INFER = tiling.InferSpec(conf=0.0, batch_size=3, include_full=False)


def test_array_reader_cuts_the_window_of_an_array_that_starts_at_origin(scene):
    band = scene[100:300]
    t = tiling.Tile(64, 120, 200, 200, 5)  # x0, y0, x1, y1 in image pixels
    crop, valid = array_reader(band, np.ones(band.shape[:2], bool), origin=(0, 100))(t)
    assert np.array_equal(crop, scene[120:200, 64:200])
    assert valid.shape == (80, 136) and valid.all()


def test_a_whole_run_is_predict_tiled_raw_with_cut_flags_and_source(scene):
    run = TileRun.start(MODEL, TILES, scene.shape[:2], INFER)
    raw = run.detect(array_reader(scene))
    pred = tiling.predict_tiled(scene, MODEL, TILES, INFER)
    assert len(raw) == len(run.plan) == len(pred.tiles)
    assert np.array_equal(raw.xyxy, pred.raw.xyxy)
    assert np.array_equal(raw.data["tile_index"], pred.raw.data["tile_index"])
    assert np.array_equal(raw.data["truncated"], pred.raw.data["truncated"])
    assert set(raw.data["source"]) == {"tile"}
    # boxes are in image coordinates: each lies inside its own tile
    tiles = tiling.grid.tiles_array(run.plan)[raw.data["tile_index"]]
    assert (raw.xyxy[:, :2] >= tiles[:, :2]).all() and (raw.xyxy[:, 2:] <= tiles[:, 2:]).all()


def test_parts_run_apart_and_put_in_run_order_equal_one_run(scene):
    """What a Ray band run or a streamed region run relies on: running the plan in pieces, in any order,
    then sorting into run order gives the one-run answer exactly."""
    whole = TileRun.start(MODEL, TILES, scene.shape[:2], INFER)
    one = whole.detect(array_reader(scene))
    run = TileRun.start(MODEL, TILES, scene.shape[:2], INFER)
    halves = [run.plan[len(run.plan) // 2 :], run.plan[: len(run.plan) // 2]]
    parts = [run.detect(array_reader(scene), h) for h in halves]
    joined = in_run_order(Detections.concat(parts), batch_order(run.plan, INFER.batch_size))
    assert np.array_equal(joined.xyxy, one.xyxy)
    assert np.array_equal(joined.confidence, one.confidence)
    assert np.array_equal(joined.data["truncated"], one.data["truncated"])


def test_nodata_tiles_are_not_run_and_boxes_on_nodata_are_dropped(scene):
    valid = np.ones(scene.shape[:2], bool)
    valid[:, :150] = False  # the left columns are nodata: tiles there are skipped
    valid[150:, 250:] = False  # a box lying mostly here is dropped
    seen = []
    calls = []

    def counting(images):
        calls.append(len(images))
        return bright_spots(images)

    run = TileRun.start(tiling.CallableModel(counting, names={0: "spot"}), TILES, scene.shape[:2], INFER,
                        progress=lambda done, total: seen.append((done, total)))
    raw = run.detect(array_reader(scene, valid))
    all_nodata = sum(not valid[t.y0 : t.y1, t.x0 : t.x1].any() for t in run.plan)
    assert run.skipped == all_nodata > 0
    assert sum(calls) == len(run.plan) - all_nodata
    assert run.dropped > 0
    assert len(raw) == len(run.plan) - all_nodata - run.dropped
    assert seen[-1] == (len(run.plan), len(run.plan))
    assert [d for d, _ in seen] == sorted({d for d, _ in seen})  # rising, each count once


def test_an_empty_run_still_carries_every_column(scene):
    run = TileRun.start(tiling.CallableModel(lambda ims: [Detections.empty() for _ in ims]), TILES,
                        scene.shape[:2], INFER)
    raw = run.detect(array_reader(scene))
    assert len(raw) == 0
    assert {"tile_index", "truncated", "source"} <= set(raw.data)
    assert raw.data["tile_index"].dtype == np.int64


def test_a_progress_callback_that_raises_stops_the_run(scene):
    calls = []

    def stop(done, total):
        raise KeyboardInterrupt

    def counting(images):
        calls.append(len(images))
        return bright_spots(images)

    run = TileRun.start(tiling.CallableModel(counting), TILES, scene.shape[:2], INFER, progress=stop)
    with pytest.raises(KeyboardInterrupt):
        run.detect(array_reader(scene))
    assert len(calls) < len(run.plan) / INFER.batch_size


def test_check_run_refuses_what_cannot_run_together():
    assert not check_run(include_full=True, streamed=True)[1].include_full  # a streamed raster has no full pass
    assert check_run()[1].include_full
    with pytest.raises(ValueError, match="levels .a tile pyramid. is not available for a streamed raster"):
        check_run(levels=[320], streamed=True)
    with pytest.raises(ValueError, match="tile_size 'auto' is chosen per photo; a Ray run needs a tile size"):
        check_run(tile_size="auto", engine="a Ray run")
    with pytest.raises(ValueError, match="a streamed raster needs a tile size in pixels"):
        check_run(tile_size="auto", streamed=True)
    assert check_run(tile_size="auto")[0].auto
    with pytest.raises(ValueError, match="merge conf 0.1 is below the 0.3"):
        check_run(infer=tiling.InferSpec(conf=0.3), merge=tiling.MergeSpec(conf=0.1))
    with pytest.raises(TypeError, match="unknown setting tile_sise"):
        check_run(tile_sise=640)
    tiles, infer, merge = check_run(tile_size=320, conf=0.4)
    assert (tiles.tile_size, infer.conf, merge.conf) == (320, 0.4, 0.4)
