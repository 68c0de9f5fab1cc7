"""Tile plans: which windows of the image the model sees."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import numpy as np

from . import checks


@dataclass(frozen=True)
class Tile:
    """A window of the image, in pixels; ``x1``/``y1`` are exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int
    index: int = 0
    row: int = 0
    col: int = 0

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def xyxy(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)


Edge = Literal["trim", "shift"]
EDGES: tuple[str, ...] = get_args(Edge)
AUTO = "auto"
MAX_TILE_SIDE = 16_384  # px: far beyond any network input; keeps a typo from asking for gigabytes


def _levels(value: Any, size_xy: tuple[int, int]) -> tuple[int, ...]:
    """The pyramid's extra tile sizes: whole numbers, none repeated, none equal to the tile size."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)):
        raise checks.SettingError("levels", f"must be a list of tile sizes, got {value!r}")
    sizes = tuple(checks.whole("levels", v, 32, MAX_TILE_SIDE, name="levels entry") for v in value)
    if len(set(sizes)) != len(sizes) or (size_xy[0] == size_xy[1] and size_xy[0] in sizes):
        raise checks.SettingError("levels", f"must hold each tile size once, apart from tile_size, got {list(value)}")
    return sizes


def _pair(field: str, value: Any, check) -> tuple:
    """(x, y) of a number or a pair; ``check(value, name)`` checks one, named as its message says it."""
    if isinstance(value, (tuple, list, np.ndarray)):
        if len(value) != 2:
            raise checks.SettingError(field, f"must be a number or a pair (x, y), got {value!r}")
        return check(value[0], f"{field} (x)"), check(value[1], f"{field} (y)")
    v = check(value, field)
    return v, v


@dataclass(frozen=True)
class TileSpec:
    """Where the model looks: tile size and overlap (a number, or an (x, y) pair), how the last row and
    column meet the image's edge (see :func:`plan_tiles`), a cap on the number of tiles, so that a
    tiny tile on a huge image is refused instead of running for hours (None: no cap), and whether a
    second grid shifted by half a step both ways runs too (``offset_grid``): an object cut by a
    border of the first grid lies whole in a tile of the second, for 1.2-1.8x the tiles.

    ``levels``: more tile sizes (a tile pyramid), each grid enlarged to the model's input. ``tile_size="auto"``:
    :func:`~tiling.pipeline.predict_tiled` runs tiles at the model's input size, then adds the finer level
    the sizes of the objects they found call for (:mod:`tiling.object_sizes`); it plans nothing itself."""

    tile_size: int | tuple[int, int] | Literal["auto"] = 640
    overlap: float | tuple[float, float] = 0.25
    edge: Edge = "trim"
    max_tiles: int | None = 10_000
    offset_grid: bool = False
    levels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.tile_size == AUTO:
            size = (AUTO, AUTO)
            if self.levels:
                raise checks.SettingError("levels", "cannot be given with tile_size 'auto', which chooses them")
        else:
            size = _pair("tile_size", self.tile_size,
                         lambda v, n: checks.whole("tile_size", v, 1, MAX_TILE_SIDE, name=n))
        overlap = _pair("overlap", self.overlap,
                        lambda v, n: checks.number("overlap", v, 0.0, 0.9, hi_open=True, name=n))
        object.__setattr__(self, "tile_size", size[0] if size[0] == size[1] else size)
        object.__setattr__(self, "overlap", overlap[0] if overlap[0] == overlap[1] else overlap)
        object.__setattr__(self, "edge", checks.choice("edge", self.edge, EDGES))
        if self.max_tiles is not None:
            object.__setattr__(self, "max_tiles", checks.whole("max_tiles", self.max_tiles, 1, 10**9))
        object.__setattr__(self, "offset_grid", checks.flag("offset_grid", self.offset_grid))
        object.__setattr__(self, "levels", () if self.auto else _levels(self.levels, self.size_xy))

    @property
    def auto(self) -> bool:
        """The tile size is chosen per image by the run (``tile_size="auto"``)."""
        return self.tile_size == AUTO

    @property
    def level_specs(self) -> list[TileSpec]:
        """One spec per level of the tile pyramid: this grid, then a grid of each of ``levels``' sizes
        (square tiles, the same overlap, edge and offset grid), each run at its own scale."""
        first = replace(self, levels=())
        return [first] + [replace(first, tile_size=size) for size in self.levels]

    @property
    def size_xy(self) -> tuple[int, int]:
        if self.auto:
            raise ValueError("tile_size 'auto' is chosen per image by predict_tiled; this needs a tile size in pixels")
        return self.tile_size if isinstance(self.tile_size, tuple) else (self.tile_size, self.tile_size)

    @property
    def overlap_xy(self) -> tuple[float, float]:
        return self.overlap if isinstance(self.overlap, tuple) else (self.overlap, self.overlap)

    def count(self, image_shape) -> int:
        """Number of tiles :meth:`plan` makes (with either edge mode), without making them."""
        height, width = _shape(image_shape)
        (tw, th), (ox, oy) = self.size_xy, self.overlap_xy
        n = len(_windows(width, tw, ox, "shift")) * len(_windows(height, th, oy, "shift"))
        if self.offset_grid:
            n += len(self._offset_tiles(height, width, 0))
        return n + sum(level.count(image_shape) for level in self.level_specs[1:])

    def check_count(self, image_shape) -> int:
        """The tile count, or a ``ValueError`` saying how to get under ``max_tiles``."""
        n = self.count(image_shape)
        if self.max_tiles is not None and n > self.max_tiles:
            height, width = _shape(image_shape)
            raise ValueError(f"{self.tile_size} px tiles with {self.overlap} overlap would make {n} tiles on this "
                             f"{width}x{height} image, above the limit of {self.max_tiles}; use larger tiles or "
                             "less overlap")
        return n

    def plan(self, image_shape) -> list[Tile]:
        """Row-major tiles covering every pixel of an image of ``image_shape`` = (height, width[, ...])."""
        height, width = _shape(image_shape)
        self.check_count((height, width))
        (tw, th), (ox, oy) = self.size_xy, self.overlap_xy
        xs, ys = _windows(width, tw, ox, self.edge), _windows(height, th, oy, self.edge)
        tiles = []
        for r, (y0, y1) in enumerate(ys):
            for c, (x0, x1) in enumerate(xs):
                tiles.append(Tile(x0, y0, x1, y1, len(tiles), r, c))
        if self.offset_grid:
            tiles += self._offset_tiles(height, width, len(tiles))
        for level in self.level_specs[1:]:  # the pyramid's other grids, numbered after this one
            tiles += [replace(t, index=t.index + len(tiles)) for t in level.plan((height, width))]
        return tiles

    def _offset_tiles(self, height: int, width: int, first_index: int) -> list[Tile]:
        """The second grid: full-size tiles starting half a step in, wholly inside the image (the first
        grid already covers every pixel); along an axis with no room for a shift, the first grid's
        windows. Its rows and columns are numbered after the first grid's."""
        (tw, th), (ox, oy) = self.size_xy, self.overlap_xy
        xs, ys = _offset_windows(width, tw, ox), _offset_windows(height, th, oy)
        if not xs and not ys:
            return []  # no room to shift either way: a second grid would repeat the first
        xs = xs or _windows(width, tw, ox, self.edge)
        ys = ys or _windows(height, th, oy, self.edge)
        n_rows = len(_windows(height, th, oy, "shift"))
        n_cols = len(_windows(width, tw, ox, "shift"))
        return [Tile(x0, y0, x1, y1, first_index + r * len(xs) + c, n_rows + r, n_cols + c)
                for r, (y0, y1) in enumerate(ys) for c, (x0, x1) in enumerate(xs)]


def _shape(image_shape) -> tuple[int, int]:
    if len(image_shape) < 2:
        raise ValueError(f"image_shape must be (height, width), got {image_shape!r}")
    height, width = int(image_shape[0]), int(image_shape[1])
    if height < 1 or width < 1:
        raise ValueError(f"image must be at least 1x1 pixels, got {width}x{height}")
    return height, width


EDGE_ALIGN = 32  # px: trimmed edge tiles are a multiple of this (the usual network stride), so none is padded
# Trim only edge tiles that lose at least a quarter of the tile. Trimmed tiles run in batches of their own,
# often part-filled: at 640 px, trimming 608 px edges costs 3% (parking sample), while trimming 480 and
# 384 px edges saves 9.5% (depot).
TRIM_AT_MOST = 0.75


def _windows(length: int, size: int, overlap: float, edge: str) -> list[tuple[int, int]]:
    """(start, end) of each window along one axis."""
    if length <= size:
        return [(0, length)]
    stride = max(1, size - int(round(size * overlap)))
    starts = list(range(0, length - size, stride))
    last = size  # "shift": the last window is full size, shifted back inside the image
    if edge == "trim":
        # The last window keeps the same overlap with its neighbour as every other pair and ends at the
        # image's edge, so it is only as wide as it needs to be (never under half a tile, for context).
        rest = length - (starts[-1] + size)
        need = max(rest + (size - stride), size // 2)
        last = min(size, -(-need // EDGE_ALIGN) * EDGE_ALIGN)
        if last > size * TRIM_AT_MOST:  # too little saved to pay for a batch of odd-sized tiles
            last = size
    return [(s, s + size) for s in starts] + [(length - last, length)]


def _offset_windows(length: int, size: int, overlap: float) -> list[tuple[int, int]]:
    """(start, end) of full-size windows starting half a step in, along one axis, inside ``length``."""
    if length <= size:
        return []
    stride = max(1, size - int(round(size * overlap)))
    return [(s, s + size) for s in range(stride // 2, length - size + 1, stride)]


def plan_tiles(image_shape, spec: TileSpec | None = None, **changes) -> list[Tile]:
    """Row-major tiles covering every pixel of an image of ``image_shape`` = (height, width[, ...]).

    ``spec`` (or a default :class:`TileSpec`) with any of its fields changed by keyword, e.g.
    ``plan_tiles((h, w), tile_size=640, overlap=0.25, edge="trim")``. Where the image does not end on a
    whole step, ``edge`` decides the last column and row. ``"trim"`` (default) ends them at the image's
    edge with the same overlap as every other pair of neighbours, only as large as that needs: a
    multiple of 32 px, at least half a tile, and only when that saves a quarter of the tile or more.
    ``"shift"`` keeps them full size and moves them back inside the image (more overlap there), as SAHI
    and supervision do. An image smaller than a tile along an axis gets one tile that is the whole
    image along it.
    """
    return checks.with_changes(spec, TileSpec, changes).plan(image_shape)


def count_tiles(image_shape, spec: TileSpec | None = None, **changes) -> int:
    """Number of tiles :func:`plan_tiles` would make (with either ``edge``), without making them."""
    return checks.with_changes(spec, TileSpec, changes).count(image_shape)


def row_groups(plan: list[Tile], rows_per_group: int) -> list[list[Tile]]:
    """Rows of tiles (tiles sharing a top edge), ``rows_per_group`` at a time, from the top down. The plan
    lists an offset grid's tiles after the first grid's (:attr:`TileSpec.offset_grid`); grouped by top
    edge, the two grids' rows interleave, so each group covers a band of pixels only a few tiles tall
    and every tile of a later group starts at or below the first row of the next one."""
    rows: dict[int, list[Tile]] = {}
    for t in plan:
        rows.setdefault(t.y0, []).append(t)
    keys = sorted(rows)
    step = max(1, int(rows_per_group))
    return [[t for r in keys[i : i + step] for t in rows[r]] for i in range(0, len(keys), step)]


def tiles_array(tiles: list[Tile]) -> np.ndarray:
    """(T, 4) int array of tile boxes."""
    return np.array([t.xyxy for t in tiles], dtype=np.int64).reshape(-1, 4)
