"""What a slicing run did, to check before training on it: tiles per split (labelled, empty kept, empty
left out), per split and class the source objects and the object-in-tile counts (whole, clipped, dropped
under the visibility threshold), and a contact sheet of a few tiles with their labels drawn."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..detections import Detections
from ..draw import class_color, draw_detections, downscale
from ..rotated import quads_to_obb
from .objects import Kind, LabelledObject

THUMB = 256  # px: side of a contact sheet cell
SHEET_CELLS = 12


@dataclass
class SliceReport:
    """Counts of one run. ``tiles[split]``: labelled, negatives (empty tiles kept) and skipped (empty tiles
    left out); ``objects[split][class name]``: source (objects in the source images), whole (in a tile
    uncut), clipped (cut by a tile edge, kept) and dropped (cut below ``min_visibility``), counted once
    per tile. ``images[split]``: source images."""

    out: Path
    names: dict[int, str]
    images: Counter = field(default_factory=Counter)
    tiles: dict = field(default_factory=lambda: defaultdict(Counter))
    objects: dict = field(default_factory=lambda: defaultdict(lambda: defaultdict(Counter)))
    sheet: list = field(default_factory=list, repr=False)

    def count_objects(self, split: str, what: str, class_ids) -> None:
        for c in class_ids:
            self.objects[split][self.names.get(int(c), str(c))][what] += 1

    def as_dict(self) -> dict:
        return {"images": dict(self.images), "tiles": {s: dict(c) for s, c in self.tiles.items()},
                "objects": {s: {n: dict(c) for n, c in per.items()} for s, per in self.objects.items()}}

    def summary(self) -> str:
        """A few lines for a terminal: per split, images, tiles, and objects kept and dropped."""
        lines = []
        for split in sorted(self.tiles):
            t, per = self.tiles[split], self.objects.get(split, {})
            tot = Counter()
            for c in per.values():
                tot.update(c)
            lines.append(f"{split}: {self.images[split]} images -> {t['labelled'] + t['negatives']} tiles "
                         f"({t['labelled']} labelled, {t['negatives']} empty); objects: {tot['source']} in the "
                         f"source, {tot['whole']} whole and {tot['clipped']} clipped in tiles, {tot['dropped']} "
                         "cuts dropped")
        return "\n".join(lines)

    def offer_tile(self, tile: np.ndarray, objects: list[LabelledObject], rng: np.random.Generator, seen: int) -> None:
        """Reservoir-sample the labelled tiles for the contact sheet (``seen``: labelled tiles so far)."""
        if len(self.sheet) < SHEET_CELLS:
            self.sheet.append(_thumbnail(tile, objects, self.names))
        elif (k := int(rng.integers(0, seen))) < SHEET_CELLS:
            self.sheet[k] = _thumbnail(tile, objects, self.names)

    def write(self) -> None:
        """``report.json`` and ``contact_sheet.png`` in the output folder."""
        (self.out / "report.json").write_text(json.dumps(self.as_dict(), indent=1))
        if self.sheet:
            cv2.imwrite(str(self.out / "contact_sheet.png"), contact_sheet(self.sheet))


def _thumbnail(tile: np.ndarray, objects: list[LabelledObject], names: dict[int, str]) -> np.ndarray:
    """A tile with its labels drawn, scaled to fit THUMB px."""
    drawn = tile.copy()
    for o in objects:
        if o.kind is Kind.POLYGON:
            cv2.polylines(drawn, [np.round(r).astype(np.int32) for r in o.rings], True, class_color(o.class_id), 1)
    if objects:
        kinds = {o.kind for o in objects}
        det = Detections(xyxy=np.array([o.xyxy for o in objects], np.float32),
                         class_id=np.array([o.class_id for o in objects]), names=names,
                         obb=quads_to_obb(np.stack([o.rings[0] for o in objects])) if kinds == {Kind.OBB} else None,
                         keypoints=np.stack([o.keypoints for o in objects]) if kinds == {Kind.POSE} else None)
        drawn = draw_detections(drawn, det, confidence=False)
    small, _ = downscale(drawn, THUMB)
    cell = np.full((THUMB, THUMB, 3), 32, np.uint8)
    cell[: small.shape[0], : small.shape[1]] = small
    return cell


def contact_sheet(cells: list[np.ndarray], columns: int = 4) -> np.ndarray:
    """Cells in a grid, ``columns`` wide, 2 px apart."""
    rows = -(-len(cells) // columns)
    sheet = np.full((rows * (THUMB + 2), columns * (THUMB + 2), 3), 255, np.uint8)
    for k, cell in enumerate(cells):
        r, c = divmod(k, columns)
        sheet[r * (THUMB + 2): r * (THUMB + 2) + THUMB, c * (THUMB + 2): c * (THUMB + 2) + THUMB] = cell
    return sheet
