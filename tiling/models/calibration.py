"""Where an 8-bit copy's calibration tiles come from (:mod:`.quantize` makes the copy from them).

Calibration data are tiles as ``predict_tiled`` feeds them (640 and 320 px windows at their own
resolution) cut from images: the ones being processed, or a folder the caller names. A share of them
is held out, for :mod:`.agreement` to compare the float and the 8-bit network on. The data's digest
(of the images' content and :data:`SETTINGS`) is part of the key under which copies are cached.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..grid import plan_tiles
from ..imageio import IMAGE_SUFFIXES, ImageError, image_size, read_image
from ..raster import RasterSource
from ..uris import is_uri
from ..util import cached_sha256_of_file
from .base import ModelError
from .bundled import BundledAssets
from .runtimes import MIN_INT8_SIDE
from .source import ModelSource, SourceKind

LOG = logging.getLogger(__name__)
CALIBRATION_TILES = 64  # tiles NNCF calibrates on (at most): they quantize in ~25 s on 2 cores
HELD_OUT_TILES = 24
TILE_SIZES = (640, 320)
MAX_IMAGES = 12  # calibration images read, evenly spread over a longer list
MIN_TILES = 8
RASTER_WINDOW = 1280  # px: side of the windows a streamed raster gives to calibration
# How 8-bit copies are made, in the calibration digest and in a cached copy's name: it changes when that
# changes, so older cache entries go unused.
SETTINGS = "int8-headfloat-v1"


class CalibrationError(ModelError):
    """Calibration data that cannot be used: the caller's to fix, so it is raised, never worked around."""


@dataclass(frozen=True)
class Calibration:
    """Where calibration tiles come from: image files or arrays, and a digest of their content; or the
    tiles themselves, cut once (:func:`cut_calibration`), with the digest of the sources they came from."""

    sources: tuple  # Path or np.ndarray (H x W x 3 uint8 BGR)
    digest: str
    described: str  # e.g. "4 images in samples"
    tiles: tuple | None = None  # (tiles to calibrate on, held-out tiles), when already cut


def calibration_from(source) -> Calibration:
    """A folder, an image file, or a list of files or H x W x 3 uint8 arrays, as calibration data;
    a ``CalibrationError`` that says what is wrong otherwise."""
    if isinstance(source, Calibration):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            items = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not items:
                raise CalibrationError(f"calibration: {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            described = f"{len(items)} image{'s' * (len(items) > 1)} in {path.name or path}"
        elif path.is_file():
            items, described = [path], path.name
        else:
            raise CalibrationError(f"calibration: {path}: no such file or folder")
    elif isinstance(source, np.ndarray):
        items, described = [source], "1 image"
    else:
        try:
            items = list(source)
        except TypeError:
            raise CalibrationError("calibration must be a folder, an image file, or a list of image files or arrays, "
                             f"got {type(source).__name__}") from None
        if not items:
            raise CalibrationError("calibration: the list of images is empty")
        described = f"{len(items)} image{'s' * (len(items) > 1)}"
    if len(items) > MAX_IMAGES:
        items = [items[i] for i in np.linspace(0, len(items) - 1, MAX_IMAGES).round().astype(int)]
    digest = hashlib.sha256(SETTINGS.encode())
    sources = []
    for item in items:
        if isinstance(item, np.ndarray):
            if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
                raise CalibrationError(f"calibration: arrays must be H x W x 3 uint8 (BGR), got {item.dtype} "
                                       f"{item.shape}")
            digest.update(repr(item.shape).encode())
            digest.update(np.ascontiguousarray(item).data)
            sources.append(item)
        elif isinstance(item, (str, Path)) and Path(item).is_file():
            digest.update(cached_sha256_of_file(item).encode())
            sources.append(Path(item))
        else:
            shown = item if isinstance(item, (str, Path)) else type(item).__name__
            raise CalibrationError(f"calibration: {shown} is not an image file or an array")
    return Calibration(tuple(sources), digest.hexdigest(), described)


def calibration_tiles(calibration: Calibration) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(tiles to calibrate on, held-out tiles to check on): full-size 640 and 320 px windows of the
    images, drawn in a fixed pseudo-random order; each image is decoded once, on its own."""
    if calibration.tiles is not None:
        return list(calibration.tiles[0]), list(calibration.tiles[1])

    def shape_of(src) -> tuple[int, int]:
        if isinstance(src, np.ndarray):
            return src.shape[:2]
        try:
            w, h = image_size(src)
        except ImageError as exc:
            raise CalibrationError(f"calibration: {exc}") from None
        return h, w

    windows = []  # (image index, y0, x0, height, width)
    for i, src in enumerate(calibration.sources):
        h, w = shape_of(src)
        found = [(i, t.y0, t.x0, size, size) for size in TILE_SIZES if min(h, w) >= size
                 for t in plan_tiles((h, w), tile_size=size, overlap=0.0)
                 if t.y1 - t.y0 == size and t.x1 - t.x0 == size]
        if not found and min(h, w) >= MIN_INT8_SIDE:  # a small image: all of it, cut to a multiple of 32
            found = [(i, 0, 0, h // 32 * 32, w // 32 * 32)]
        windows += found
    if len(windows) < MIN_TILES:
        raise CalibrationError(f"calibration: {calibration.described} give{'s' * (len(calibration.sources) == 1)} "
                         f"{len(windows)} tiles; at least {MIN_TILES} are needed (more or larger images)")
    order = np.random.default_rng(0).permutation(len(windows))[: CALIBRATION_TILES + HELD_OUT_TILES]
    n_held = max(2, round(len(order) * HELD_OUT_TILES / (CALIBRATION_TILES + HELD_OUT_TILES)))
    chosen = [windows[k] for k in order]
    tiles: list[np.ndarray | None] = [None] * len(chosen)
    for i, src in enumerate(calibration.sources):
        wanted = [j for j, win in enumerate(chosen) if win[0] == i]
        if not wanted:
            continue
        try:
            image = src if isinstance(src, np.ndarray) else read_image(src)
        except ImageError as exc:
            raise CalibrationError(f"calibration: {exc}") from None
        for j in wanted:
            _, y, x, th, tw = chosen[j]
            tiles[j] = np.ascontiguousarray(image[y : y + th, x : x + tw])
        del image
    return tiles[n_held:], tiles[:n_held]


def cut_calibration(source) -> Calibration:
    """``source`` (as :func:`calibration_from` takes it) with its tiles cut now, keeping its digest: what a
    cluster's workers are sent, so that each makes, or finds in its cache, the copy a local run with the
    same images makes, without the images being on its disk."""
    calibration = calibration_from(source)
    calib, held = calibration_tiles(calibration)
    return Calibration((), calibration.digest, calibration.described, (tuple(calib), tuple(held)))


def calibration_inputs(images: Sequence, streamed: Callable[[Path], bool] | None = None, bands=None,
                       window: int = RASTER_WINDOW) -> list:
    """Calibration data from a run's ``images``: up to :data:`MAX_IMAGES` of them, spread over the list,
    each as its path, except rasters read window by window (``streamed(path)``), which give a few
    ``window`` px windows read through :mod:`tiling.raster` (never decoded whole; :data:`MAX_IMAGES`
    windows at most in all). A raster that cannot be read is left out: its own run reports it."""
    paths = [Path(p) for p in images if not is_uri(p)]  # calibration reads from this machine's disk only
    if len(paths) > MAX_IMAGES:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, MAX_IMAGES).round().astype(int)]
    rasters = [p for p in paths if streamed is not None and streamed(p)]
    per_raster = max(1, (MAX_IMAGES - len(paths) + len(rasters)) // max(1, len(rasters)))
    out: list = []
    for path in paths:
        if path not in rasters:
            out.append(path)
            continue
        try:
            with RasterSource(path, bands) as src:
                out += src.sample_windows(per_raster, window)
        except ImageError as exc:
            LOG.warning("calibration: %s left out (%s)", path.name, exc)
    return out


def run_calibration(model, calibration, images: Sequence, streamed: Callable[[Path], bool] | None = None,
                    bands=None, bundled: BundledAssets | None = None):
    """What a run at ``precision="int8"`` calibrates on: ``calibration`` when given; None for an export
    (it runs as it was exported) or for weights whose 8-bit copy ships in ``bundled``; else
    :func:`calibration_inputs` of the run's ``images``. ``model``: as :meth:`ModelSource.of` takes it."""
    if calibration is not None:
        return calibration
    source = ModelSource.of(model)
    if source.kind.is_export:
        return None
    if source.kind is SourceKind.CHECKPOINT and bundled is not None and bundled.copy_for(source.digest) is not None:
        return None
    return calibration_inputs(images, streamed, bands) or None
