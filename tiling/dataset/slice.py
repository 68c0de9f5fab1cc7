"""Slice a labelled dataset into tiles for fine-tuning: :func:`slice_dataset`, and a large raster with
its objects: :func:`slice_raster`.

Tiles are planned exactly as at inference (:class:`tiling.grid.TileSpec`), objects are clipped exactly to
each tile (tiling.dataset.clip) and kept where enough of them is inside, every tile inherits its source
image's split (tiling.dataset.splits), and a seeded share of the empty tiles is kept. Images are read one
at a time and a raster window by window, so memory holds one image (or tile) and its labels whatever
the dataset's size.
"""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .. import checks
from ..grid import Tile, TileSpec
from ..imageio import ImageError, read_image
from ..util import Progress
from .clip import clip_to_tile, object_area
from .index import ObjectIndex
from .objects import DatasetError, LabelledObject, SliceSpec, Source, SourceImage
from .raster_source import open_raster_objects
from .report import SliceReport
from .sources import open_source
from .splits import assign_splits, tile_seed
from .writer import make_writer

WRITTEN = ("images", "labels", "annotations", "data.yaml", "report.json", "contact_sheet.png")  # what a run writes


def _spec(spec: SliceSpec | None, changes: dict[str, Any]) -> SliceSpec:
    """The SliceSpec, with TileSpec fields given by keyword (``tile_size``, ``overlap``, ``edge``...) made
    into its tile plans; ``tile_sizes`` (several sizes) makes one plan per size."""
    tile_fields = checks.field_names(TileSpec)
    tile_changes = {k: changes.pop(k) for k in list(changes) if k in tile_fields}
    sizes = changes.pop("tile_sizes", None)
    spec = checks.with_changes(spec, SliceSpec, changes)
    if not tile_changes and sizes is None:
        return spec
    base = spec.tiles[0]
    sizes = list(sizes) if sizes is not None else [tile_changes.pop("tile_size", base.tile_size)]
    tile_changes.pop("tile_size", None)
    tiles = tuple(checks.with_changes(base, TileSpec, {**tile_changes, "tile_size": s}) for s in sizes)
    return checks.with_changes(spec, SliceSpec, {"tiles": tiles})


def _prepare_out(out: Path, source: Path, overwrite: bool, tree: bool = True) -> None:
    """Refuse a non-empty output folder unless ``overwrite`` (then only what a run writes is removed), and
    one that holds the source or, for a dataset (``tree``), lies in its folder."""
    out_r, src_r = out.resolve(), source.resolve()
    src_root = src_r.parent if src_r.is_file() and tree else src_r
    if out_r == src_root or out_r in src_root.parents or (tree and src_root in out_r.parents):
        raise DatasetError(f"{out}: the output folder must be apart from the source {src_root}")
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(f"{out}: the output folder is not empty (use --overwrite to replace a previous run)")
        for name in WRITTEN:
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _stems(images: list[SourceImage]) -> dict[str, str]:
    """The name each image's tiles start with: its file name's stem, or its whole path (folders joined by
    ``__``) where two images share a stem."""
    stems = [Path(im.key).stem for im in images]
    clash = {s for s, n in Counter(stems).items() if n > 1}
    return {im.key: (im.key.rsplit(".", 1)[0].replace("/", "__") if s in clash else s) for im, s in zip(images, stems)}


def _tile_name(stem: str, tile) -> str:
    return f"{stem}_{tile.x0}_{tile.y0}_{tile.width}x{tile.height}"


def slice_tiles(read: Callable[[Tile], np.ndarray], shape: tuple[int, int], objects: list[LabelledObject],
                key: str, stem: str, split: str, spec: SliceSpec, writer, report: SliceReport,
                suffix: str = ".jpg", progress: Progress | None = None) -> None:
    """Every tile of one source (an image in memory, or a raster read window by window: ``read(tile)``
    gives its pixels), written if it holds an object or is drawn as a kept empty tile. ``progress(done,
    total)`` is called per tile (a raster's tiles are many)."""
    areas = [object_area(o) for o in objects]
    index = ObjectIndex(objects, max(max(t.size_xy) for t in spec.tiles))
    report.images[split] += 1
    report.count_objects(split, "source", [o.class_id for o in objects])
    rng = np.random.default_rng(tile_seed(spec.seed, key))
    counts = report.tiles[split]
    plans = [tiles.plan(shape) for tiles in spec.tiles]
    total, done = sum(len(p) for p in plans), 0
    for plan in plans:
        for tile in plan:
            kept, dropped = clip_to_tile(objects, areas, tile.xyxy, spec.min_visibility, index.near(tile.xyxy))
            report.count_objects(split, "dropped", [objects[i].class_id for i in dropped])
            report.count_objects(split, "whole", [c.obj.class_id for _, c in kept if not c.cut])
            report.count_objects(split, "clipped", [c.obj.class_id for _, c in kept if c.cut])
            keep_empty = rng.random() < spec.negatives  # drawn for every tile: the same draws whatever the labels
            if kept or keep_empty:
                counts["labelled" if kept else "negatives"] += 1
                pixels = read(tile)
                writer.add(split, _tile_name(stem, tile), suffix, pixels, [c.obj for _, c in kept])
                if kept:
                    report.offer_tile(pixels, [c.obj for _, c in kept], rng, counts["labelled"])
            else:
                counts["skipped"] += 1
            done += 1
            if progress is not None:
                progress(done, total)


def _slice_image(im: SourceImage, stem: str, split: str, spec: SliceSpec, writer, report: SliceReport) -> None:
    """One source image, read whole (a photo: decoded once, cut in memory)."""
    try:
        image = read_image(im.path)
    except ImageError as exc:
        raise DatasetError(f"{im.key}: {exc}") from None
    h, w = image.shape[:2]
    suffix = ".png" if im.path.suffix.lower() == ".png" else ".jpg"
    slice_tiles(lambda t: image[t.y0 : t.y1, t.x0 : t.x1], (h, w), im.labels(w, h), im.key, stem, split, spec,
                writer, report, suffix)


def slice_dataset(source: str | Path, out: str | Path, spec: SliceSpec | None = None, *, overwrite: bool = False,
                  progress: Progress | None = None, **changes) -> SliceReport:
    """Slice the labelled dataset at ``source`` (a YOLO ``data.yaml`` or a folder holding one, or a COCO
    json) into tiles under ``out``, for training as it is: a YOLO dataset (``data.yaml`` with the same
    names) or COCO (``spec.format``). Settings are a :class:`SliceSpec` or keywords: its fields, and
    ``tile_size``/``overlap``/``edge`` (one plan) or ``tile_sizes`` (one plan per size), e.g.
    ``slice_dataset("data.yaml", "tiles", tile_size=640, overlap=0.25, min_visibility=0.5)``.

    ``min_visibility`` (default 0.5): keep an object cut by a tile's edge when at least this share of
    its area is inside. With the default overlap every object up to a quarter tile lies whole in some
    tile, so no tile needs a fragment to find it; a sliver under half teaches the model to fire on parts
    of objects, while half or more is what inference itself sees of an object a tile cuts.
    ``negatives`` (default 0.1): the share of empty tiles kept, drawn from the seed, so the model sees bare
    ground and clutter (most tiles of a large image) without the empty tiles outnumbering the rest.

    Returns the run's :class:`SliceReport` (also written as ``report.json`` and ``contact_sheet.png``).
    Raises :class:`DatasetError` (one line) on a bad source, and refuses a non-empty ``out`` unless
    ``overwrite``.
    """
    spec = _spec(spec, dict(changes))
    src: Source = open_source(source, spec.task)
    if not src.images:
        raise DatasetError(f"{source}: no images")
    out = Path(out)
    _prepare_out(out, Path(source), overwrite)
    splits = assign_splits(src.images, spec.split_by, spec.val_fraction, spec.seed)
    writer = make_writer(spec.format, out, src, spec.task, spec.jpeg_quality)
    report = SliceReport(out, src.names)
    images = sorted(src.images, key=lambda im: im.key)
    stems = _stems(images)
    for done, im in enumerate(images, 1):
        _slice_image(im, stems[im.key], splits[im.key], spec, writer, report)
        if progress is not None:
            progress(done, len(images))
    writer.close()
    report.write()
    return report


def slice_raster(raster: str | Path, objects: str | Path, out: str | Path, spec: SliceSpec | None = None, *,
                 split: str = "train", class_property: str = "class", names: Sequence[str] | None = None,
                 overwrite: bool = False, progress: Progress | None = None, **changes) -> SliceReport:
    """Slice a raster too large to decode whole (GeoTIFF, COG...), read window by window, with its objects:
    a GeoJSON of (Multi)Polygons whose ``class_property`` names each one's class (the classes are the
    values sorted, or ``names`` in order), or a COCO json of the raster as its one image. The whole raster
    is one source image, so all its tiles go to ``split``. Settings as for :func:`slice_dataset`;
    ``progress(done, total)`` counts tiles."""
    spec = _spec(spec, dict(changes))
    raster, out = Path(raster), Path(out)
    _prepare_out(out, raster, overwrite, tree=False)
    src, found, source = open_raster_objects(raster, Path(objects), class_property, list(names) if names else None)
    with src:
        writer = make_writer(spec.format, out, source, spec.task, spec.jpeg_quality)
        report = SliceReport(out, source.names)
        slice_tiles(lambda t: src.read(t)[0], src.shape, found, raster.name, raster.stem, split, spec, writer, report,
                    progress=progress)
    writer.close()
    report.write()
    return report


def slice_image_objects(objects: list[LabelledObject], areas: Sequence[float], shape, spec: SliceSpec):
    """(tile, kept, dropped) for every tile of an image of ``shape`` holding ``objects``: what
    :func:`slice_tiles` keeps and drops, without images or files (for checks and tests)."""
    index = ObjectIndex(objects, max(max(t.size_xy) for t in spec.tiles))
    for tiles in spec.tiles:
        for tile in tiles.plan(shape):
            yield (tile, *clip_to_tile(objects, list(areas), tile.xyxy, spec.min_visibility, index.near(tile.xyxy)))
