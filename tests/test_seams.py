"""tiling.seams: the overlap of two tiles with the most merged-away duplicates, the window shown of it, and
the pairs listed; tiling.error_causes: each false positive's cause."""
from __future__ import annotations

import numpy as np
import pytest

import tiling
from tiling.error_causes import Cause, cause_sentence, false_positive_causes
from tiling.seams import busiest_seam, in_window, merged_pairs, overlap_bands


def dets(boxes, classes=None, conf=None, tile_index=None) -> tiling.Detections:
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    d = tiling.Detections(boxes, np.asarray(conf if conf is not None else [0.9] * n, np.float32),
                          np.asarray(classes if classes is not None else [0] * n), names={0: "car", 1: "truck"})
    if tile_index is not None:
        d.data["tile_index"] = np.asarray(tile_index, np.int64)
    return d


TILES = tiling.plan_tiles((1000, 1000), tiling.TileSpec(tile_size=600, overlap=0.2))  # 2 x 2, overlaps 200 px


def test_overlap_bands_are_the_shared_rectangles_of_neighbours():
    first, second, bands = overlap_bands(TILES)
    assert len(bands) == 6  # 2 side by side, 2 above each other, 2 diagonal (their shared corner)
    by_pair = {(int(a), int(b)): tuple(int(v) for v in band) for a, b, band in zip(first, second, bands)}
    left, right = TILES[0], TILES[1]
    assert by_pair[(0, 1)] == (right.x0, 0, left.x1, left.y1)


def test_the_busiest_seam_is_where_most_duplicates_were_merged_away():
    # Three pairs of twins across the vertical seam (x 400-600) of the top row, one across the horizontal one.
    twins = [[450, 100, 470, 110], [452, 101, 471, 110], [500, 300, 515, 308], [501, 300, 516, 309],
             [520, 350, 532, 356], [521, 351, 532, 357], [100, 480, 115, 490], [101, 481, 115, 490]]
    raw = dets(twins, tile_index=[0, 1, 0, 1, 0, 1, 0, 2])
    away = np.array([False, True] * 4)
    seam = busiest_seam(TILES, raw, away, (1000, 1000), side=300)
    assert (seam.first, seam.second) == (0, 1)
    assert seam.merged_away == 3
    x0, y0, x1, y1 = seam.window
    assert (x1 - x0, y1 - y0) == (300, 300) and 0 <= x0 and x1 <= 1000 and 0 <= y0 and y1 <= 1000
    shown = in_window(raw, seam.window)
    assert shown[2:6].all()  # the two twins near each other are both in the window


def test_no_seam_without_merged_away_detections_or_with_one_tile():
    raw = dets([[450, 100, 470, 110]], tile_index=[0])
    assert busiest_seam(TILES, raw, np.array([False]), (1000, 1000)) is None
    assert busiest_seam(TILES[:1], raw, np.array([True]), (1000, 1000)) is None


def test_merged_pairs_list_each_dropped_box_with_its_owner_most_overlapping_first():
    owner = np.array([0, 0, 2, 2, -1])
    value = np.array([1.0, 0.6, 1.0, 0.9, 0.0])
    rule = ["kept", "overlap", "kept", "cut piece", "below conf"]
    pairs = merged_pairs(owner, value, rule, np.array([True, True, True, True, True]))
    assert [(p.dropped, p.owner, p.rule) for p in pairs] == [(3, 2, "cut piece"), (1, 0, "overlap")]
    assert merged_pairs(owner, value, rule, np.array([True, False, True, False, True])) == []


def test_false_positives_are_split_by_cause():
    gt = dets([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], classes=[0, 0, 1])
    pred = dets([[0, 0, 10, 10], [0, 0, 10, 9], [20, 0, 30, 10], [40, 0, 50, 10], [100, 100, 110, 110],
                 [20, 0, 40, 20]], classes=[0, 0, 1, 0, 0, 0], conf=[0.9, 0.8, 0.9, 0.9, 0.9, 0.3])
    ev = tiling.evaluate(pred, gt)
    fps = false_positive_causes(pred, gt, ev.tp[0])
    causes = dict(zip(fps.index.tolist(), fps.cause.tolist()))
    assert causes == {1: "duplicate", 2: "wrong class", 3: "wrong class", 4: "wrong place", 5: "wrong place"}
    assert fps.count(Cause.WRONG_CLASS) == 2 and fps.of(Cause.DUPLICATE).tolist() == [1]
    assert fps.best_iou[fps.index.tolist().index(5)] == pytest.approx(0.25)
    sentence = cause_sentence(fps, len(pred))
    assert sentence.startswith("5 of its 6 boxes are false positives: 1 duplicate, 2 wrong class, 2 wrong place")
    assert "1 of the wrong-place boxes do sit on an object" in sentence


def test_no_false_positives_and_unknown_causes():
    gt = dets([[0, 0, 10, 10]])
    fps = false_positive_causes(gt, gt, np.array([True]))
    assert len(fps.index) == 0 and cause_sentence(fps, 1) == "none of its boxes is a false positive"
    assert cause_sentence(false_positive_causes(dets([]), gt, np.zeros(0, bool)), 0) == "it drew no box"
    with pytest.raises(ValueError, match="no false-positive cause 'misc'"):
        Cause.from_value("misc")


def test_a_finer_tile_inside_a_coarser_one_shares_no_seam_with_it():
    big, left, right = tiling.Tile(0, 0, 640, 640, 0), tiling.Tile(0, 0, 320, 320, 1), tiling.Tile(256, 0, 576, 320, 2)
    first, second, bands = overlap_bands([big, left, right])
    assert list(zip(first.tolist(), second.tolist())) == [(1, 2)] and bands.tolist() == [[256, 0, 320, 320]]
