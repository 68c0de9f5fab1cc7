import numpy as np
import pytest

from tiling import count_tiles, plan_tiles


def xyxy(tiles):
    return [t.xyxy for t in tiles]


@pytest.mark.parametrize(
    "shape, tile, overlap, expected",
    [
        # exact fit, no overlap
        ((640, 1280), 640, 0.0, [(0, 0, 640, 640), (640, 0, 1280, 640)]),
        # last column trimmed: 260 px left + the 160 px overlap = 420, rounded up to 448 (a multiple of 32)
        ((640, 900), 640, 0.25, [(0, 0, 640, 640), (452, 0, 900, 640)]),
        # 360 px left + 160 = 520 -> 544: saves less than a quarter of the tile, so full size, shifted back
        ((640, 1000), 640, 0.25, [(0, 0, 640, 640), (360, 0, 1000, 640)]),
        # never under half a tile, for context: 10 px left + 0 overlap -> 320
        ((640, 650), 640, 0.0, [(0, 0, 640, 640), (330, 0, 650, 640)]),
        # image smaller than a tile: one tile, the whole image
        ((100, 50), 640, 0.25, [(0, 0, 50, 100)]),
        # non-square tiles (w, h) and per-axis overlap: 200 px left -> 224 wide; 100 left + 100 -> 200 high
        ((300, 500), (300, 200), (0.0, 0.5), [(0, 0, 300, 200), (276, 0, 500, 200), (0, 100, 300, 300),
                                              (276, 100, 500, 300)]),
        # one axis smaller than the tile, the other tiled: 76 px left + 256 overlap = 332 -> 352
        ((200, 1100), 512, 0.5, [(0, 0, 512, 200), (256, 0, 768, 200), (512, 0, 1024, 200), (748, 0, 1100, 200)]),
        # 1x1 image
        ((1, 1), 640, 0.25, [(0, 0, 1, 1)]),
    ],
)
def test_plan_literal(shape, tile, overlap, expected):
    tiles = plan_tiles(shape, tile, overlap)
    assert xyxy(tiles) == expected
    assert [t.index for t in tiles] == list(range(len(expected)))
    assert count_tiles(shape, tile, overlap) == len(expected)


@pytest.mark.parametrize(
    "shape, tile, overlap, expected",
    [
        # last column shifted back inside the image, all tiles full size
        ((640, 1000), 640, 0.25, [(0, 0, 640, 640), (360, 0, 1000, 640)]),
        ((200, 1100), 512, 0.5, [(0, 0, 512, 200), (256, 0, 768, 200), (512, 0, 1024, 200), (588, 0, 1100, 200)]),
    ],
)
def test_plan_literal_shifted(shape, tile, overlap, expected):
    assert xyxy(plan_tiles(shape, tile, overlap, edge="shift")) == expected
    assert count_tiles(shape, tile, overlap) == len(expected)


SHAPES = [(3000, 4000), (1080, 1920), (641, 639), (7, 3000), (1800, 2400)]
TILINGS = [(640, 0.25), (320, 0.0), (256, 0.89), ((500, 300), (0.1, 0.4))]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tile, overlap", TILINGS)
def test_plan_covers_every_pixel_with_full_size_tiles_when_shifted(shape, tile, overlap):
    tiles = plan_tiles(shape, tile, overlap, edge="shift")
    cover = np.zeros(shape, np.int32)
    tw, th = (tile, tile) if isinstance(tile, int) else tile
    for t in tiles:
        assert 0 <= t.x0 < t.x1 <= shape[1] and 0 <= t.y0 < t.y1 <= shape[0]
        assert t.width == min(tw, shape[1]) and t.height == min(th, shape[0])
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert cover.min() >= 1
    assert len({t.xyxy for t in tiles}) == len(tiles)  # no duplicates


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tile, overlap", TILINGS)
def test_trimmed_plan_keeps_the_overlap_with_less_area(shape, tile, overlap):
    """Every pixel covered, every pair of neighbours overlapping at least as asked, trimmed edge tiles
    a multiple of 32 px and at least half a tile, and never more pixels than the shifted plan."""
    tiles = plan_tiles(shape, tile, overlap)
    shifted = plan_tiles(shape, tile, overlap, edge="shift")
    assert len(tiles) == len(shifted) == count_tiles(shape, tile, overlap)
    tw, th = (tile, tile) if isinstance(tile, int) else tile
    ox, oy = (overlap, overlap) if isinstance(overlap, float) else overlap
    cover = np.zeros(shape, np.int32)
    for t in tiles:
        assert 0 <= t.x0 < t.x1 <= shape[1] and 0 <= t.y0 < t.y1 <= shape[0]
        for size, full, length in ((t.width, tw, shape[1]), (t.height, th, shape[0])):
            assert size == min(full, length) or (size % 32 == 0 and full // 2 <= size < full)
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert cover.min() >= 1
    by_pos = {(t.row, t.col): t for t in tiles}
    for (r, c), t in by_pos.items():
        if (r, c + 1) in by_pos:
            assert t.x1 - by_pos[r, c + 1].x0 >= round(tw * ox)
        if (r + 1, c) in by_pos:
            assert t.y1 - by_pos[r + 1, c].y0 >= round(th * oy)
    assert sum(t.width * t.height for t in tiles) <= sum(t.width * t.height for t in shifted)


def test_plan_rejects_an_unknown_edge():
    with pytest.raises(ValueError, match="edge must be one of"):
        plan_tiles((100, 100), 64, 0.2, edge="wrap")


@pytest.mark.parametrize(
    "tile, overlap, message",
    [
        (0, 0.25, "tile width"),
        (-5, 0.25, "tile width"),
        (12.5, 0.25, "whole number"),
        (640, 0.9, "overlap"),
        (640, -0.1, "overlap"),
        (640, float("nan"), "overlap"),
        ((640, 0), 0.2, "tile height"),
        ((1, 2, 3), 0.2, "pair"),
        ("big", 0.2, "numbers"),
    ],
)
def test_plan_rejects_bad_arguments(tile, overlap, message):
    with pytest.raises(ValueError, match=message):
        plan_tiles((1000, 1000), tile, overlap)


def test_plan_rejects_empty_image():
    with pytest.raises(ValueError, match="at least 1x1"):
        plan_tiles((0, 100), 64, 0.2)
