"""Tile plans: which windows of the image the model sees."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def _pair(value, name: str, cast) -> tuple:
    if isinstance(value, (tuple, list, np.ndarray)):
        if len(value) != 2:
            raise ValueError(f"{name} must be a number or a pair (x, y), got {value!r}")
        return cast(value[0]), cast(value[1])
    return cast(value), cast(value)


def normalize_tile_args(tile_size, overlap) -> tuple[tuple[int, int], tuple[float, float]]:
    """Check and expand ``tile_size`` and ``overlap`` to (x, y) pairs, with messages a user can act on."""
    try:
        tw, th = _pair(tile_size, "tile_size", float)
        ox, oy = _pair(overlap, "overlap", float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"tile_size and overlap must be numbers: {exc}") from None
    for v, axis in ((tw, "width"), (th, "height")):
        if not np.isfinite(v) or v < 1 or v != int(v):
            raise ValueError(f"tile {axis} must be a whole number of pixels >= 1, got {v!r}")
    for v, axis in ((ox, "x"), (oy, "y")):
        if not np.isfinite(v) or not 0.0 <= v < 0.9:
            raise ValueError(f"overlap ({axis}) must be a fraction in [0, 0.9), got {v!r}")
    return (int(tw), int(th)), (ox, oy)


def _starts(length: int, size: int, overlap: float) -> list[int]:
    if length <= size:
        return [0]
    stride = max(1, size - int(round(size * overlap)))
    starts = list(range(0, length - size, stride))
    starts.append(length - size)  # last window shifted back inside the image, full size
    return starts


def plan_tiles(image_shape, tile_size=640, overlap=0.25) -> list[Tile]:
    """Row-major tiles covering every pixel of an image of ``image_shape`` = (height, width[, ...]).

    All tiles have the requested size except when the image is smaller than a tile along an axis,
    where the tile is the whole image along that axis.
    """
    if len(image_shape) < 2:
        raise ValueError(f"image_shape must be (height, width), got {image_shape!r}")
    height, width = int(image_shape[0]), int(image_shape[1])
    if height < 1 or width < 1:
        raise ValueError(f"image must be at least 1x1 pixels, got {width}x{height}")
    (tw, th), (ox, oy) = normalize_tile_args(tile_size, overlap)
    xs, ys = _starts(width, tw, ox), _starts(height, th, oy)
    tiles = []
    for r, y in enumerate(ys):
        for c, x in enumerate(xs):
            tiles.append(Tile(x, y, min(x + tw, width), min(y + th, height), len(tiles), r, c))
    return tiles


def count_tiles(image_shape, tile_size=640, overlap=0.25) -> int:
    """Number of tiles :func:`plan_tiles` would make, without making them."""
    (tw, th), (ox, oy) = normalize_tile_args(tile_size, overlap)
    return len(_starts(int(image_shape[1]), tw, ox)) * len(_starts(int(image_shape[0]), th, oy))


def tiles_array(tiles: list[Tile]) -> np.ndarray:
    """(T, 4) int array of tile boxes."""
    return np.array([t.xyxy for t in tiles], dtype=np.int64).reshape(-1, 4)
