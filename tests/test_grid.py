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
        # last column shifted back inside the image, all tiles full size
        ((640, 1000), 640, 0.25, [(0, 0, 640, 640), (360, 0, 1000, 640)]),
        # image smaller than a tile: one tile, the whole image
        ((100, 50), 640, 0.25, [(0, 0, 50, 100)]),
        # non-square tiles (w, h) and per-axis overlap
        ((300, 500), (300, 200), (0.0, 0.5), [(0, 0, 300, 200), (200, 0, 500, 200), (0, 100, 300, 300),
                                              (200, 100, 500, 300)]),
        # one axis smaller than the tile, the other tiled
        ((200, 1100), 512, 0.5, [(0, 0, 512, 200), (256, 0, 768, 200), (512, 0, 1024, 200), (588, 0, 1100, 200)]),
        # 1x1 image
        ((1, 1), 640, 0.25, [(0, 0, 1, 1)]),
    ],
)
def test_plan_literal(shape, tile, overlap, expected):
    tiles = plan_tiles(shape, tile, overlap)
    assert xyxy(tiles) == expected
    assert [t.index for t in tiles] == list(range(len(expected)))
    assert count_tiles(shape, tile, overlap) == len(expected)


@pytest.mark.parametrize("shape", [(3000, 4000), (1080, 1920), (641, 639), (7, 3000)])
@pytest.mark.parametrize("tile, overlap", [(640, 0.25), (320, 0.0), (256, 0.89), ((500, 300), (0.1, 0.4))])
def test_plan_covers_every_pixel_with_full_size_tiles(shape, tile, overlap):
    tiles = plan_tiles(shape, tile, overlap)
    cover = np.zeros(shape, np.int32)
    tw, th = (tile, tile) if isinstance(tile, int) else tile
    for t in tiles:
        assert 0 <= t.x0 < t.x1 <= shape[1] and 0 <= t.y0 < t.y1 <= shape[0]
        assert t.width == min(tw, shape[1]) and t.height == min(th, shape[0])
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
    assert cover.min() >= 1
    assert len({t.xyxy for t in tiles}) == len(tiles)  # no duplicates


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
