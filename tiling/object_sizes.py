"""Auto tile size: a finer tile level chosen from the sizes of the objects a first grid of tiles found.

A detector finds objects best at some size in its input (COCO-trained YOLO: tens of pixels; a 10 px
object is near its floor). Tiles smaller than the model's input are enlarged to fill it, so the tile
size sets how large objects look: ``apparent = size x input / tile`` (a model that takes any input size
runs a tile as it is, so there the finer tiles come as a pyramid level, enlarged to its training size).
A first grid at the model's own input size (no enlargement) sees objects down to about its floor; the
smaller ones it found (:data:`SMALL_QUANTILE` percent of them are smaller still) say how much to enlarge
to bring them near :data:`BEST_OBJECT_PX`, unless the model already finds them surely (one trained on
objects that small, as the bundled detector: median confidence 0.72-0.76 on its samples, against the
COCO detector's 0.18 on the drone photos). The full-image pass is no guide: shrunk, a weak model sees
only the largest objects. Chosen on the 70 VisDrone val photos (bench/README.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detections import Detections

BEST_OBJECT_PX = 64  # input px an object is brought up to
SMALL_QUANTILE = 20  # percent: the object size taken as "the small ones"
PROBE_CONF = 0.1  # boxes of the first grid counted as objects
MAX_ENLARGE = 2.5  # at most this enlargement (4x made the COCO detectors worse, not better)
MIN_OBJECTS = 3  # fewer boxes than this say nothing about sizes
SURE_CONF = 0.5  # small objects found at this median confidence or above need no enlarging


@dataclass(frozen=True)
class LevelChoice:
    """A finer tile size to add to the first grid (None: the first grid is enough), and why."""

    tile_size: int | None
    reason: str


def input_side(model, image_shape: tuple[int, int] | None = None) -> int:
    """The model's input side (its fixed input, else the size it was trained at), at most the image's
    longer side: the first grid's tile size."""
    fixed = getattr(model, "input_hw", None)
    side = int(max(fixed)) if fixed else int(getattr(model, "train_imgsz", 640) or 640)
    return min(side, int(max(image_shape[:2]))) if image_shape is not None else side


def choose_level(probe: Detections, side: int) -> LevelChoice:
    """The finer tile size that shows the small objects of ``probe`` (the first grid's detections, run
    at ``side`` px tiles without enlargement) near :data:`BEST_OBJECT_PX`, on a 32 px step."""
    found = probe.filter(conf=PROBE_CONF)
    if len(found) < MIN_OBJECTS:
        return LevelChoice(None, f"{side} px tiles found {len(found)} objects: too few to size a finer level")
    sizes = np.maximum(found.xyxy[:, 2] - found.xyxy[:, 0], found.xyxy[:, 3] - found.xyxy[:, 1])
    small = float(np.percentile(sizes, SMALL_QUANTILE))
    sure = float(np.median(found.confidence[sizes <= small]))
    enlarge = min(BEST_OBJECT_PX / max(small, 1.0), MAX_ENLARGE)
    tile = int(max(32, round(side / enlarge / 32) * 32))
    said = (f"{len(found)} objects in {side} px tiles, the smallest {SMALL_QUANTILE}% under {small:.0f} px")
    if sure >= SURE_CONF:
        return LevelChoice(None, f"{said}, found at {sure:.2f} median confidence: this model sees them well at "
                                 f"{side} px, no finer level")
    if tile >= side - 32:
        return LevelChoice(None, f"{said}: large enough at {side} px, no finer level")
    return LevelChoice(tile, f"{said}: {tile} px tiles enlarged {side / tile:.1f}x show them at about "
                             f"{small * side / tile:.0f} px, near the {BEST_OBJECT_PX} px this model sees best")
