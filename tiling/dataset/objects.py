"""The value types of dataset slicing: one labelled object in pixels, one source image, the settings."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Callable, Literal, get_args

import numpy as np

from .. import checks
from ..grid import TileSpec


class DatasetError(ValueError):
    """A dataset that cannot be sliced as given: one line naming the file and what is wrong."""


class Kind(str, Enum):
    """What a label row holds; each kind is clipped its own way (tiling.dataset.clip)."""

    BOX = "box"  # cls cx cy w h
    POLYGON = "polygon"  # cls x y x y ... (segment); COCO may give several rings
    OBB = "obb"  # cls x1 y1 ... x4 y4, an oriented box
    POSE = "pose"  # cls cx cy w h, then x y [v] per keypoint

    @classmethod
    def from_value(cls, value: str | Kind) -> Kind:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"label kind must be one of {', '.join(k.value for k in cls)}, got {value!r}") from None


@dataclass
class LabelledObject:
    """One object in source-image pixels. ``rings``: the outline(s), (K, 2) each; a box's or pose's is
    its four corners, an oriented box's its four corners in order, a polygon's its ring(s) (holes as
    rings of the opposite winding). ``keypoints``: (K, 3) x, y, visibility (0 absent, 1 hidden, 2 seen)."""

    class_id: int
    kind: Kind
    rings: list[np.ndarray]
    keypoints: np.ndarray | None = None

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        pts = np.concatenate(self.rings)
        return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


@dataclass
class SourceImage:
    """One source image: its path, its split (None where the source names none, see
    tiling.dataset.splits), its key, and a way to read its labels when its turn comes."""

    path: Path
    split: str | None
    key: str  # unique within the source: the image's path relative to the source's root
    labels: Callable[[int, int], list[LabelledObject]] | None = field(repr=False, default=None)  # (width, height)


@dataclass
class Source:
    """A dataset to slice: its images (each with its split, None when the source names none), the class
    names, the keypoint shape of a pose dataset, and the yaml keys to carry to the output (``flip_idx``)."""

    images: list[SourceImage]
    names: dict[int, str]
    kpt_shape: tuple[int, int] | None = None
    extra: dict = field(default_factory=dict)
    coco_categories: list[dict] | None = None  # a COCO source's categories, in class-index order


SplitBy = Literal["image", "group"]
OutputFormat = Literal["yolo", "coco"]
TaskChoice = Literal["auto", "detect", "segment", "obb", "pose"]
# Keep an object cut by a tile's edge when at least half of its area is inside. With the default overlap
# (a quarter of a 640 px tile, 160 px) every object up to 160 px lies whole in some tile, so no tile needs
# a fragment to find it. Under half, a fragment is a sliver that teaches the model to fire on parts of
# objects (duplicate part-boxes the merge must then remove); from half up it is what inference itself sees
# of an object cut by a tile's edge, and its label is the part inside.
MIN_VISIBILITY = 0.5
# Keep a tenth of the empty tiles: enough bare ground and clutter that the model learns not to fire on
# them (most tiles of a large image at inference are such), few enough that on sparse imagery they do not
# outnumber the labelled tiles (Ultralytics advises up to about 10% background images).
NEGATIVES = 0.1
VAL_FRACTION = 0.2  # of the source images (or groups), where the source names no split


@dataclass(frozen=True)
class SliceSpec:
    """How a dataset is sliced: tile plans (one TileSpec per size, planned exactly as at inference), the
    share of an object's area that must be inside a tile to keep it, the share of empty tiles kept, how
    a source without splits is split, the output format and the seed of every random choice."""

    tiles: tuple[TileSpec, ...] = (TileSpec(),)
    min_visibility: float = MIN_VISIBILITY
    negatives: float = NEGATIVES
    split_by: SplitBy = "image"
    val_fraction: float = VAL_FRACTION
    format: OutputFormat = "yolo"
    task: TaskChoice = "auto"
    seed: int = 0
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        tiles = (self.tiles,) if isinstance(self.tiles, TileSpec) else tuple(self.tiles)
        if not tiles or not all(isinstance(t, TileSpec) for t in tiles):
            raise checks.SettingError("tiles", f"must be one TileSpec or several, got {self.tiles!r}")
        object.__setattr__(self, "tiles", tiles)
        object.__setattr__(self, "min_visibility",
                           checks.number("min_visibility", self.min_visibility, 0.0, 1.0, hi_open=False))
        if self.min_visibility == 0.0:
            raise checks.SettingError("min_visibility", "must be above 0 (an object with nothing inside is no label)")
        object.__setattr__(self, "negatives", checks.number("negatives", self.negatives, 0.0, 1.0))
        object.__setattr__(self, "split_by", checks.choice("split_by", self.split_by, get_args(SplitBy)))
        object.__setattr__(self, "val_fraction", checks.number("val_fraction", self.val_fraction, 0.0, 0.9))
        object.__setattr__(self, "format", checks.choice("format", self.format, get_args(OutputFormat)))
        object.__setattr__(self, "task", checks.choice("task", self.task, get_args(TaskChoice)))
        object.__setattr__(self, "seed", checks.whole("seed", self.seed, 0, 2**32 - 1))
        object.__setattr__(self, "jpeg_quality", checks.whole("jpeg_quality", self.jpeg_quality, 50, 100))
