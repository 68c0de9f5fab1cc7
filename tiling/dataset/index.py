"""Which objects may touch a tile, without testing every object against every tile: objects binned by
the cells of a coarse grid their boxes overlap (a large raster holds tens of thousands of objects and
thousands of tiles)."""
from __future__ import annotations

import math

from .objects import LabelledObject


class ObjectIndex:
    """Objects binned by ``cell`` px square cells; :meth:`near` lists those whose box may meet a window."""

    def __init__(self, objects: list[LabelledObject], cell: int) -> None:
        self.cell = max(1, int(cell))
        self.bins: dict[tuple[int, int], list[int]] = {}
        for i, obj in enumerate(objects):
            for key in self._cells(obj.xyxy):
                self.bins.setdefault(key, []).append(i)

    def _cells(self, xyxy) -> list[tuple[int, int]]:
        x0, y0, x1, y1 = (v / self.cell for v in xyxy)
        return [(cx, cy) for cy in range(math.floor(y0), math.floor(y1) + 1)
                for cx in range(math.floor(x0), math.floor(x1) + 1)]

    def near(self, window) -> list[int]:
        """Sorted indices of the objects binned in the cells the window overlaps."""
        found: set[int] = set()
        for key in self._cells(window):
            found.update(self.bins.get(key, ()))
        return sorted(found)
