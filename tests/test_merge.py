import numpy as np
import pytest
import torch
import torchvision

from tiling import Detections, merge
from tiling.merge import overlapping_pairs, pair_metric


def dets(boxes, conf, cls=None, **data):
    return Detections(xyxy=np.array(boxes, np.float32), confidence=np.array(conf),
                      class_id=np.array(cls if cls is not None else [0] * len(boxes)), data=data)


def reference_greedy(det, metric, thr, agnostic):
    """The textbook one-box-at-a-time loop, for comparison."""
    order = np.argsort(-det.confidence, kind="stable")
    keep, removed = [], set()
    for a in order:
        if a in removed:
            continue
        keep.append(a)
        for b in order:
            if b != a and b not in removed and b not in keep and (agnostic or det.class_id[a] == det.class_id[b]):
                if pair_metric(det.xyxy[[a]], det.xyxy[[b]], metric)[0] >= thr:
                    removed.add(b)
    return sorted(keep)


NESTED = [[0, 0, 100, 100], [10, 10, 40, 40]]  # a small box inside a big one: IoU 0.09, IoS 1.0


@pytest.mark.parametrize(
    "metric, thr, expected_n",
    [("iou", 0.5, 2), ("ios", 0.5, 1), ("ios", 0.99, 1), ("iou", 0.05, 1)],
)
def test_iou_vs_ios_on_nested_boxes(metric, thr, expected_n):
    out = merge(dets(NESTED, [0.9, 0.8]), method="nms", metric=metric, threshold=thr, conf=0)
    assert len(out) == expected_n
    assert out.xyxy[0].tolist() == [0, 0, 100, 100]


def test_class_aware_vs_agnostic():
    d = dets([[0, 0, 10, 10], [1, 1, 11, 11]], [0.9, 0.8], cls=[0, 1])
    assert len(merge(d, method="nms", metric="iou", threshold=0.5, conf=0, class_agnostic=False)) == 2
    agn = merge(d, method="nms", metric="iou", threshold=0.5, conf=0, class_agnostic=True)
    assert len(agn) == 1 and agn.class_id.tolist() == [0]


def test_nmm_unions_boxes_and_keeps_best_class_and_confidence():
    d = dets([[0, 0, 10, 10], [5, 0, 15, 10], [100, 100, 110, 110]], [0.7, 0.9, 0.5])
    out = merge(d, method="nmm", metric="iou", threshold=0.3, conf=0)
    assert len(out) == 2
    assert out.xyxy[0].tolist() == [0, 0, 15, 10]
    assert out.confidence.tolist() == pytest.approx([0.9, 0.5])


def test_nmm_unions_masks():
    m1 = np.zeros((10, 10), bool)
    m1[:, :5] = True
    m2 = np.ones((10, 10), bool)
    d = Detections(xyxy=np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32), confidence=np.array([0.9, 0.8]),
                   class_id=np.array([0, 0]), masks=[m1, m2])
    out = merge(d, method="nmm", metric="iou", threshold=0.3, conf=0)
    assert len(out) == 1
    assert out.mask_boxes[0].tolist() == [0, 0, 15, 10]
    assert out.masks[0].shape == (10, 15)
    expected = np.zeros((10, 15), bool)
    expected[:, :5] = True
    expected[:, 5:] = True
    assert (out.masks[0] == expected).all()
    full = out.full_mask(0, (20, 20))
    assert full.sum() == 150


def test_nms_keeps_masks_of_survivors_only():
    masks = [np.ones((10, 10), bool), np.zeros((10, 10), bool)]
    d = Detections(xyxy=np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32), confidence=np.array([0.6, 0.9]),
                   class_id=np.array([0, 0]), masks=masks)
    out = merge(d, method="nms", metric="iou", threshold=0.5, conf=0)
    assert len(out) == 1 and out.confidence[0] == pytest.approx(0.9) and not out.masks[0].any()


def test_cut_piece_never_beats_the_whole_object():
    # The piece seen at a tile edge is more confident than the whole object seen by the next tile.
    d = dets([[90, 10, 100, 30], [90, 10, 120, 30]], [0.95, 0.6], truncated=np.array([True, False]))
    for metric in ("iou", "ios"):
        out = merge(d, method="nms", metric=metric, threshold=0.5, conf=0)
        assert len(out) == 1
        assert out.xyxy[0].tolist() == [90, 10, 120, 30]


def test_cut_piece_of_another_class_is_absorbed_but_whole_objects_of_two_classes_are_not():
    # Half a truck at a tile edge looks like a car; the whole truck is in the next tile.
    piece = dets([[90, 10, 100, 30], [90, 10, 120, 30]], [0.9, 0.6], cls=[0, 1], truncated=np.array([True, False]))
    out = merge(piece, method="nms", metric="ios", threshold=0.5, conf=0)
    assert len(out) == 1 and out.class_id.tolist() == [1]
    whole = dets([[90, 10, 100, 30], [90, 10, 120, 30]], [0.9, 0.6], cls=[0, 1], truncated=np.array([False, False]))
    assert len(merge(whole, method="nms", metric="ios", threshold=0.5, conf=0)) == 2  # class-aware: two objects of two classes stay


def test_two_cut_pieces_of_one_object_with_two_classes_are_one_piece():
    # One tile's class-aware NMS kept the same cut piece twice, as two classes (depot sample, 640 px).
    twins = dets([[480, 1416, 494, 1430], [480, 1416, 495, 1430]], [0.67, 0.34], cls=[0, 2],
                 truncated=np.array([True, True]))
    out = merge(twins, method="nms", metric="ios", threshold=0.5, conf=0)
    assert len(out) == 1 and out.class_id.tolist() == [0]
    apart = dets([[480, 1416, 494, 1430], [488, 1416, 502, 1430]], [0.67, 0.34], cls=[0, 2],
                 truncated=np.array([True, True]))
    assert len(merge(apart, method="nms", metric="ios", threshold=0.5, conf=0)) == 2  # overlapping by half (IoU 0.4): not the same piece


def test_empty_and_single():
    assert len(merge(Detections.empty(), method="nmm", metric="ios", threshold=0.5, conf=0)) == 0
    one = dets([[0, 0, 5, 5]], [0.3])
    assert merge(one, conf=0).xyxy.tolist() == one.xyxy.tolist()


@pytest.mark.parametrize("bad, message", [
    (dict(method="fuzzy"), "merge method must be one of nms, nmm, wbf, soft"), (dict(metric="giou"), "merge metric"),
    (dict(threshold=1.5), "merge threshold must be in"), (dict(conf=float("nan")), "conf must be a number"),
    (dict(conf=2), "conf must be in"), (dict(classes=[1.7]), "classes entry must be a whole number"),
    (dict(classes="car"), "classes must be a list"), (dict(class_agnostic="yes"), "class_agnostic must be True"),
])
def test_bad_arguments(bad, message):
    with pytest.raises(ValueError, match=message):
        merge(dets(NESTED, [0.9, 0.8]), **bad)


def test_an_unknown_setting_names_the_known_ones():
    with pytest.raises(TypeError, match="MergeSpec has no setting merge_threshold; its settings are"):
        merge(dets(NESTED, [0.9, 0.8]), merge_threshold=0.5)


def random_boxes(n, seed, extent=2000, size=(5, 60)):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, extent, (n, 2))
    wh = rng.uniform(*size, (n, 2))
    return dets(np.c_[xy, xy + wh], rng.random(n), rng.integers(0, 3, n))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("agnostic", [False, True])
def test_nms_iou_equals_torchvision(seed, agnostic):
    d = random_boxes(1500, seed)
    out = merge(d, method="nms", metric="iou", threshold=0.45, conf=0, class_agnostic=agnostic)
    boxes, scores = torch.from_numpy(d.xyxy), torch.from_numpy(d.confidence)
    if agnostic:
        keep = torchvision.ops.nms(boxes, scores, 0.45)
    else:
        keep = torchvision.ops.batched_nms(boxes, scores, torch.from_numpy(d.class_id), 0.45)
    # torchvision suppresses at IoU > thr, we at >= thr; random floats never tie exactly.
    assert sorted(map(tuple, out.xyxy.tolist())) == sorted(map(tuple, d.xyxy[keep.numpy()].tolist()))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("metric", ["ios", "iou"])
def test_vectorized_rounds_equal_sequential_greedy(seed, metric):
    d = random_boxes(200, seed, extent=450)
    out = merge(d, method="nms", metric=metric, threshold=0.5, conf=0, class_agnostic=True)
    keep = reference_greedy(d, metric, 0.5, True)
    assert sorted(map(tuple, out.xyxy.tolist())) == sorted(map(tuple, d.xyxy[keep].tolist()))


def test_overlapping_pairs_match_brute_force():
    d = random_boxes(700, 7, extent=800, size=(2, 120))
    big = dets([[0, 0, 900, 900]], [0.1])
    d = Detections.concat([d, big])
    i, j = overlapping_pairs(d.xyxy)
    a, b = d.xyxy[:, None], d.xyxy[None]
    inter = (np.minimum(a[..., 2], b[..., 2]) > np.maximum(a[..., 0], b[..., 0])) & (
        np.minimum(a[..., 3], b[..., 3]) > np.maximum(a[..., 1], b[..., 1]))
    bi, bj = np.nonzero(np.triu(inter, 1))
    assert set(zip(i.tolist(), j.tolist())) == set(zip(bi.tolist(), bj.tolist()))


def test_explain_names_the_rule_and_owner_of_every_raw_detection():
    from tiling.merge import Rule, explain

    d = dets([[0, 0, 20, 20], [1, 1, 21, 21], [90, 10, 100, 30], [90, 10, 120, 30], [300, 300, 310, 310],
              [500, 500, 510, 510]],
             [0.9, 0.8, 0.95, 0.6, 0.7, 0.01], cls=[0, 0, 0, 1, 0, 0],
             truncated=np.array([False, False, True, False, False, False]))
    why = explain(d, metric="iou", threshold=0.5, conf=0.05)
    assert why.kept.tolist() == [True, False, False, True, True, False]
    assert why.owner.tolist() == [0, 0, 3, 3, 4, -1]
    assert list(why.rule) == [Rule.KEPT, Rule.OVERLAP, Rule.CUT_PIECE, Rule.KEPT, Rule.KEPT, Rule.FILTERED]
    assert why.value[1] == pytest.approx(pair_metric(d.xyxy[[0]], d.xyxy[[1]], "iou")[0])
    assert why.value[2] == pytest.approx(1.0)  # the piece lies wholly inside the truck
    assert np.isnan(why.value[5])
    merged = merge(d, metric="iou", threshold=0.5, conf=0.05)
    assert merged.confidence.tolist() == pytest.approx([0.95, 0.9, 0.7])  # a group keeps its best confidence
    assert len(merged) == int(why.kept.sum())


def test_wbf_averages_the_whole_boxes_of_one_object_by_confidence_and_ignores_cut_pieces():
    d = dets([[10, 10, 30, 30], [12, 12, 32, 32], [10, 10, 22, 30]], [0.9, 0.3, 0.95],
             truncated=np.array([False, False, True]))
    out = merge(d, method="wbf", metric="iou", threshold=0.45, conf=0)
    assert len(out) == 1 and out.confidence[0] == pytest.approx(0.95)  # the group's best confidence
    np.testing.assert_allclose(out.xyxy[0], (0.9 * np.array([10, 10, 30, 30]) + 0.3 * np.array([12, 12, 32, 32])) / 1.2,
                               atol=1e-4)
    alone = merge(dets([[0, 0, 10, 10]], [0.5]), method="wbf", conf=0)
    assert alone.xyxy.tolist() == [[0, 0, 10, 10]]


def test_soft_nms_keeps_overlapping_boxes_with_confidence_lowered_by_the_overlap():
    d = dets([[0, 0, 20, 20], [2, 0, 22, 20], [100, 100, 110, 110]], [0.9, 0.8, 0.5])
    hard = merge(d, method="nms", metric="iou", threshold=0.5, conf=0)
    soft = merge(d, method="soft", metric="iou", threshold=0.5, conf=0)
    iou = pair_metric(d.xyxy[[0]], d.xyxy[[1]], "iou")[0]
    assert len(hard) == 2 and len(soft) == 3
    assert sorted(soft.confidence.tolist()) == pytest.approx(sorted([0.9, 0.5, 0.8 * (1 - iou)]))
    piece = dets([[90, 10, 100, 30], [90, 10, 120, 30]], [0.95, 0.6], truncated=np.array([True, False]))
    assert len(merge(piece, method="soft", conf=0)) == 1  # a cut piece is part of the box, not a neighbour


def test_a_coarse_views_guess_at_a_small_object_is_left_to_the_tiles():
    # Full pass at 0.25 input px per image px: a 40 px box is 10 input px there, a guess; a 200 px one is not.
    d = dets([[0, 0, 40, 40], [300, 300, 500, 500], [600, 600, 640, 640]], [0.9, 0.8, 0.7],
             scale=np.array([0.25, 0.25, 1.0]), tile_index=np.array([-1, -1, 3]))
    from tiling.merge import Rule, coarse_guesses, explain

    assert coarse_guesses(d).tolist() == [True, False, False]
    assert merge(d, conf=0).confidence.tolist() == pytest.approx([0.8, 0.7])
    assert explain(d, conf=0).rule[0] == Rule.COARSE_GUESS
    same_view = dets([[0, 0, 40, 40]], [0.9], scale=np.array([0.25]))  # no finer view: nothing to leave it to
    assert len(merge(same_view, conf=0)) == 1


def test_soft_nms_never_returns_a_box_below_the_merge_conf_and_explain_says_which_it_lowered():
    from tiling.merge import Rule, explain

    d = dets([[0, 0, 20, 20], [6, 0, 26, 20], [1, 1, 21, 21]], [0.9, 0.8, 0.6])  # IoU with the first: 0.54, 0.82
    out = merge(d, method="soft", metric="iou", threshold=0.5, conf=0.3)
    assert out.confidence.tolist() == pytest.approx([0.9, 0.8 * (1 - 280 / 520)])  # 0.6 * 0.18 falls below 0.3
    why = explain(d, method="soft", metric="iou", threshold=0.5, conf=0.3)
    assert int(why.kept.sum()) == len(out)
    assert Rule.LOWERED in set(why.rule[why.kept])


def test_a_view_that_enlarges_is_never_a_coarse_guess():
    # An image smaller than the full pass's input: the full pass enlarged it (scale 1.28), the tile did not.
    d = dets([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], scale=np.array([1.0, 1.28]), tile_index=np.array([0, -1]))
    from tiling.merge import coarse_guesses

    assert not coarse_guesses(d).any()
