import numpy as np
import pytest

from tiling import TileSpec, count_tiles, plan_tiles


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
    tiles = plan_tiles(shape, tile_size=tile, overlap=overlap, max_tiles=None)
    assert xyxy(tiles) == expected
    assert [t.index for t in tiles] == list(range(len(expected)))
    assert count_tiles(shape, tile_size=tile, overlap=overlap) == len(expected)


@pytest.mark.parametrize(
    "shape, tile, overlap, expected",
    [
        # last column shifted back inside the image, all tiles full size
        ((640, 1000), 640, 0.25, [(0, 0, 640, 640), (360, 0, 1000, 640)]),
        ((200, 1100), 512, 0.5, [(0, 0, 512, 200), (256, 0, 768, 200), (512, 0, 1024, 200), (588, 0, 1100, 200)]),
    ],
)
def test_plan_literal_shifted(shape, tile, overlap, expected):
    assert xyxy(plan_tiles(shape, tile_size=tile, overlap=overlap, edge="shift", max_tiles=None)) == expected
    assert count_tiles(shape, tile_size=tile, overlap=overlap) == len(expected)


SHAPES = [(3000, 4000), (1080, 1920), (641, 639), (7, 3000), (1800, 2400)]
TILINGS = [(640, 0.25), (320, 0.0), (256, 0.89), ((500, 300), (0.1, 0.4))]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("tile, overlap", TILINGS)
def test_plan_covers_every_pixel_with_full_size_tiles_when_shifted(shape, tile, overlap):
    tiles = plan_tiles(shape, tile_size=tile, overlap=overlap, edge="shift", max_tiles=None)
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
    tiles = plan_tiles(shape, tile_size=tile, overlap=overlap, max_tiles=None)
    shifted = plan_tiles(shape, tile_size=tile, overlap=overlap, edge="shift", max_tiles=None)
    assert len(tiles) == len(shifted) == count_tiles(shape, tile_size=tile, overlap=overlap)
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
        plan_tiles((100, 100), tile_size=64, overlap=0.2, edge="wrap")


@pytest.mark.parametrize(
    "tile, overlap, message",
    [
        (0, 0.25, "tile_size must be between 1 and"),
        (-5, 0.25, "tile_size must be between 1 and"),
        (12.5, 0.25, "tile_size must be a whole number"),
        ("640", 0.25, "tile_size must be a whole number"),
        (True, 0.25, "tile_size must be a whole number"),
        (10**9, 0.25, "tile_size must be between"),
        (640, 0.9, "overlap must be in"),
        (640, -0.1, "overlap must be in"),
        (640, float("nan"), "overlap must be a number"),
        (640, "0.2", "overlap must be a number"),
        ((640, 0), 0.2, r"tile_size \(y\) must be between"),
        ((1, 2, 3), 0.2, "pair"),
    ],
)
def test_plan_rejects_bad_arguments(tile, overlap, message):
    with pytest.raises(ValueError, match=message):
        plan_tiles((1000, 1000), tile_size=tile, overlap=overlap)


def test_plan_rejects_empty_image():
    with pytest.raises(ValueError, match="at least 1x1"):
        plan_tiles((0, 100), tile_size=64, overlap=0.2)


def test_a_tile_spec_caps_the_tile_count_with_a_way_out():
    spec = TileSpec(tile_size=64, overlap=0.5, max_tiles=100)
    assert spec.count((640, 640)) > 100
    with pytest.raises(ValueError, match="above the limit of 100; use larger tiles or less overlap"):
        spec.plan((640, 640))
    assert len(plan_tiles((640, 640), spec, max_tiles=None)) == spec.count((640, 640))


def test_tile_specs_are_normalized_so_equal_settings_are_one_cache_key():
    assert TileSpec((640, 640), (0.25, 0.25)) == TileSpec(640, 0.25)
    assert hash(TileSpec(640.0, 0.25, "TRIM")) == hash(TileSpec(640, 0.25, "trim"))
    assert TileSpec((640, 320)).size_xy == (640, 320)


def test_an_offset_grid_adds_full_size_tiles_half_a_step_in():
    base = TileSpec(tile_size=640, overlap=0.2)
    both = TileSpec(tile_size=640, overlap=0.2, offset_grid=True)
    first, plan = base.plan((3000, 4000)), both.plan((3000, 4000))
    assert plan[: len(first)] == first  # the first grid is unchanged and comes first
    extra = plan[len(first):]
    stride = 640 - 128
    assert extra and both.count((3000, 4000)) == len(plan)
    assert [t.index for t in plan] == list(range(len(plan)))
    for t in extra:
        assert (t.width, t.height) == (640, 640)
        assert 0 <= t.x0 and t.x1 <= 4000 and 0 <= t.y0 and t.y1 <= 3000
        assert (t.x0 - stride // 2) % stride == 0 and (t.y0 - stride // 2) % stride == 0
    # Every inner corner where four tiles of the first grid meet is inside a tile of the second.
    inner_x = sorted({t.x1 for t in first if t.x1 < 4000})
    inner_y = sorted({t.y1 for t in first if t.y1 < 3000})
    for x in inner_x[:-1]:
        for y in inner_y[:-1]:
            assert any(t.x0 + 32 <= x <= t.x1 - 32 and t.y0 + 32 <= y <= t.y1 - 32 for t in extra), (x, y)
    assert len({(t.row, t.col) for t in plan}) == len(plan)


def test_an_offset_grid_shifts_only_along_axes_with_room_and_never_repeats_one_tile():
    spec = TileSpec(tile_size=640, overlap=0.2, offset_grid=True)
    assert len(spec.plan((500, 600))) == 1  # one tile covers the image
    plan = spec.plan((765, 1360))  # too short to shift down: the second grid shifts sideways only
    extra = plan[len(TileSpec(tile_size=640, overlap=0.2).plan((765, 1360))):]
    assert extra and {t.x0 for t in extra} == {256} and all(t.height <= 640 for t in extra)
    with pytest.raises(ValueError, match="offset_grid"):
        TileSpec(offset_grid="yes")


def test_the_offset_grid_is_a_cli_option():
    from tiling.cli import build_parser
    from tiling.cli_specs import settings

    args = build_parser().parse_args(["predict", "x.jpg", "--model", "m.pt", "--out", "o", "--offset-grid"])
    assert settings(args)[0].offset_grid is True


def test_levels_add_a_grid_per_tile_size_numbered_after_the_first():
    spec = TileSpec(tile_size=640, overlap=0.25, levels=[320])
    one, two = TileSpec(tile_size=640, overlap=0.25), TileSpec(tile_size=320, overlap=0.25)
    plan = spec.plan((765, 1360))
    assert len(plan) == spec.count((765, 1360)) == len(one.plan((765, 1360))) + len(two.plan((765, 1360)))
    assert [t.index for t in plan] == list(range(len(plan)))
    assert [s.tile_size for s in spec.level_specs] == [640, 320] and spec.level_specs[1].overlap == 0.25
    assert max(t.width for t in plan[len(one.plan((765, 1360))):]) == 320


@pytest.mark.parametrize("levels, message", [([640], "each tile size once, apart from tile_size"),
                                             ([320, 320], "each tile size once"), (["x"], "levels entry"),
                                             ([8], "levels entry must be")])
def test_bad_levels_are_named(levels, message):
    with pytest.raises(ValueError, match=message):
        TileSpec(tile_size=640, levels=levels)


def test_auto_tile_size_plans_nothing_itself():
    auto = TileSpec(tile_size="auto")
    assert auto.auto and not TileSpec().auto
    with pytest.raises(ValueError, match="tile_size 'auto' is chosen per image"):
        auto.plan((100, 100))
