"""What every model is to the pipeline: tiles in, tile-coordinate ``Detections`` out, run by an
:class:`InferSpec`. Any callable ``fn(list_of_bgr_images) -> list[Detections]`` is a model too, so
the library is not tied to Ultralytics."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .. import checks
from ..detections import Detections
from ..util import usable_cpus

MAX_IMGSZ = 4096  # px: a full-image pass at 8000 asked for 5.6 GB


class ModelError(ValueError):
    """A model that cannot be loaded or used, with a message meant for the person who supplied it."""


@dataclass(frozen=True)
class InferSpec:
    """How the model runs: its own confidence floor and NMS IoU inside each tile, the classes it keeps,
    at most ``max_det`` detections per tile, ``batch_size`` tiles per call; and the full-image pass:
    the whole image resized to ``imgsz`` on its long side, merged with the tiles when ``include_full``.

    Tiles always run at their own resolution. ``conf`` is the lowest confidence any later re-merge can
    show: the app runs at 0.05 and lets its slider filter above that without the model.
    """

    conf: float = 0.25
    iou: float = 0.7
    classes: tuple[int, ...] | None = None
    max_det: int = 300
    batch_size: int = 8
    imgsz: int = 640
    include_full: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "conf", checks.number("conf", self.conf, 0.0, 1.0))
        object.__setattr__(self, "iou", checks.number("iou", self.iou, 0.0, 1.0))
        object.__setattr__(self, "classes", checks.class_ids("classes", self.classes))
        object.__setattr__(self, "max_det", checks.whole("max_det", self.max_det, 1, 100_000))
        object.__setattr__(self, "batch_size", checks.whole("batch_size", self.batch_size, 1, 256))
        object.__setattr__(self, "imgsz", checks.whole("imgsz", self.imgsz, 32, MAX_IMGSZ))
        object.__setattr__(self, "include_full", checks.flag("include_full", self.include_full))

    @property
    def full_pass(self) -> InferSpec:
        """The settings the full-image pass depends on (a cache key that ignores the rest)."""
        return replace(self, batch_size=1, include_full=False)


@contextlib.contextmanager
def torch_threads(n: int | None = None):
    """Use ``n`` intra-op threads (default: every core this process may use) and restore the old count.

    ``import ultralytics`` pins torch to one core fewer than the machine has; this is undone after
    each call, so the caller's own setting is never left changed."""
    import torch

    n = usable_cpus() if n is None else n
    old = torch.get_num_threads()
    if n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


class Model:
    """Base of every model the pipeline takes. ``imgsz`` None runs each image at its own size (tiles);
    a number resizes its long side to that (the full-image pass); ``scale`` resizes by a factor (tiles for
    an export with a fixed input, see :func:`tile_scale`)."""

    task: str = "detect"
    names: dict[int, str]
    runtime: str = "python"
    runtime_note: str = ""
    source: str = ""
    digest: str = ""

    def predict(self, images: Sequence[np.ndarray], spec: InferSpec | None = None, imgsz: int | None = None,
                scale: float | None = None) -> list[Detections]:
        raise NotImplementedError

    def predict_batches(self, batches: Iterable[Sequence[np.ndarray]], spec: InferSpec | None = None,
                        imgsz: int | None = None, scale: float | None = None) -> Iterator[list[Detections]]:
        """``predict`` over each batch in turn, yielding as each is done. A model may run the next
        batch while the caller handles this one."""
        for images in batches:
            yield self.predict(images, spec, imgsz, scale)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, classes={len(self.names)}, runtime={str(self.runtime)!r})"


def keep_best(det: Detections, max_det: int) -> Detections:
    """At most ``max_det`` detections, the most confident first."""
    if len(det) <= max_det:
        return det
    return det[np.argsort(-det.confidence, kind="stable")[:max_det]]


class CallableModel(Model):
    """Wraps ``fn(images) -> list[Detections]``; the spec's conf, classes and max_det apply after it,
    as they do inside an Ultralytics model."""

    def __init__(self, fn: Callable, names: dict[int, str] | None = None, task: str | None = None):
        self.fn = fn
        self.names = dict(names if names is not None else getattr(fn, "names", {}) or {})
        self.task = task or getattr(fn, "task", "detect")
        self.source = getattr(fn, "__name__", type(fn).__name__)

    def predict(self, images, spec=None, imgsz=None, scale=None):
        spec = spec or InferSpec()
        out = self.fn(list(images))
        if not isinstance(out, (list, tuple)) or len(out) != len(images):
            got = len(out) if isinstance(out, (list, tuple)) else type(out).__name__
            raise ModelError(f"the model returned {got} results for {len(images)} images")
        results = []
        for det in out:
            if not isinstance(det, Detections):
                raise ModelError(f"the model must return tiling.Detections, got {type(det).__name__}")
            det = keep_best(det.filter(conf=spec.conf, classes=spec.classes), spec.max_det)
            if not det.names:
                det.names = dict(self.names)
            results.append(det)
        return results


def full_scale(model: Model, image_shape: tuple[int, int], imgsz: int) -> float:
    """Model input pixels per image pixel of the full-image pass: the long side shrunk to ``imgsz``, or to
    fit a fixed input."""
    h, w = int(image_shape[0]), int(image_shape[1])
    scale = imgsz / max(h, w)
    fixed = getattr(model, "input_hw", None)
    return min(scale, fixed[0] / h, fixed[1] / w) if fixed else scale


def level_scale(model: Model, tile_size: tuple[int, int]) -> float | None:
    """How much to enlarge a tile pyramid's finer (or coarser) level: to the model's fixed input, or to
    the size it was trained at when it takes any size (None when that is the tile's own size)."""
    fixed = getattr(model, "input_hw", None)
    if fixed:
        return tile_scale(model, tile_size)
    side = int(getattr(model, "train_imgsz", 0) or 0)
    if not side:
        return None
    scale = side / max(tile_size)
    return None if abs(scale - 1.0) < 1e-9 else scale


def tile_scale(model: Model, tile_size: tuple[int, int]) -> float | None:
    """How much to enlarge tiles of ``tile_size`` (w, h) for a model with a fixed input, or None.

    An export fixed at 640x640 costs the same for a 320 px tile as for a 640 px one; filling its input
    (as Ultralytics does for SAHI and supervision) shows small objects twice as large, for free. Every
    tile of a plan gets the same factor, edge tiles included, so objects keep one size across tiles.
    """
    fixed = getattr(model, "input_hw", None)
    if not fixed:
        return None
    scale = min(fixed[0] / tile_size[1], fixed[1] / tile_size[0])
    return None if abs(scale - 1.0) < 1e-9 else scale
