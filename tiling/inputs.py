"""A folder run's inputs and identity: which images it runs on (:func:`list_images`), the names their
outputs get (:func:`entries`), and the key that says which settings and model made a file
(:func:`run_key`). Both engines and the CLI use these, so the same run finds the same images, names
them the same way and skips the same finished ones.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .bands import BandSpec
from .imageio import IMAGE_SUFFIXES
from .models.calibration import CalibrationError, calibration_from
from .models.runtimes import Precision
from .models.source import ModelSource
from .names import display_name, unique_stems
from .raster import RASTER_SUFFIXES, should_stream
from .uris import common_root, is_uri, list_uri, relative
from .util import sha256_of

INPUT_SUFFIXES = tuple(dict.fromkeys(IMAGE_SUFFIXES + RASTER_SUFFIXES))  # what a folder run picks up


def list_images(source: str | os.PathLike | Sequence) -> tuple[Path | str, list]:
    """(root, images) for a folder (searched recursively), one image, a glob pattern or a list of paths:
    the one listing both engines and the CLI use. Photos and rasters (``tiling.raster``: GeoTIFF, JPEG
    2000, VRT...) are found alike. A folder's or a file's URI, or a list of URIs (``s3://``, ``gs://``,
    ``file://``...: :mod:`tiling.uris`), gives URIs, kept as text.

    Output names are the images' paths relative to ``root``. Raises ``ValueError`` with one line when
    there is nothing to run on."""
    if is_uri(source):  # photos: a raster by URI could not be read window by window
        return list_uri(source, IMAGE_SUFFIXES)
    if isinstance(source, (list, tuple)):
        return _listed(source)
    path = Path(source)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in INPUT_SUFFIXES and p.is_file())
        if not found:
            raise ValueError(f"{display_name(str(path))} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return path, found
    if path.is_file():
        if path.suffix.lower() not in INPUT_SUFFIXES and not should_stream(path):
            raise ValueError(f"{display_name(str(path))} is not an image ({', '.join(IMAGE_SUFFIXES)} expected) "
                             "nor a raster GDAL reads")
        return path.parent, [path]
    if glob.has_magic(str(source)):
        found = sorted(Path(p) for p in glob.glob(str(source), recursive=True)
                       if Path(p).suffix.lower() in INPUT_SUFFIXES and Path(p).is_file())
        if not found:
            raise ValueError(f"{display_name(str(source))} matches no images ({', '.join(IMAGE_SUFFIXES)})")
        root = Path(os.path.commonpath([str(p.parent) for p in found]))
        return root, found
    raise ValueError(f"{display_name(str(source))}: no such file or folder")


def _listed(source: Sequence) -> tuple[Path | str, list]:
    """(root, images) for a list of paths (each must exist) or of URIs (each read on a worker; a missing
    one fails alone)."""
    if source and all(is_uri(u) for u in source):
        return common_root(source), list(source)
    if any(is_uri(u) for u in source):
        raise ValueError("a list of images is either all paths or all URIs, not both")
    paths = [Path(p) for p in source]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"{display_name(str(missing[0]))}: no such file")
    if not paths:
        raise ValueError("the list of images is empty")
    root = Path(os.path.commonpath([str(p.resolve().parent) for p in paths]))
    return root, [p.resolve() for p in paths]


@dataclass(frozen=True)
class Entry:
    """One input image of a run: its path, its name relative to the run's root, the stem its output
    files are named by, and its COCO image id (its position in the input list, from 1)."""

    path: Path | str  # text for a URI (tiling.uris)
    rel: str
    stem: str
    image_id: int

    @property
    def shown(self) -> str:
        return display_name(self.rel)


def entries(root: Path | str, images: Sequence[Path | str]) -> list[Entry]:
    """The run's inputs with output stems that never collide (:func:`tiling.names.unique_stems`, the rule
    the page's zip follows too): ``a.jpg`` and ``a.png`` in one folder become ``a`` and ``a-2``."""
    rels = [relative(path, str(root)) if is_uri(path) else Path(path).relative_to(root).as_posix()
            for path in images]
    return [Entry(path if is_uri(path) else Path(path), rel, stem, image_id)
            for image_id, (path, rel, stem) in enumerate(zip(images, rels, unique_stems(rels)), 1)]


def run_key(tiles, infer, merge, model, precision: Precision | str = Precision.FP32, bands: BandSpec | None = None, wgs84: bool = False,
            calibration=None) -> str:
    """What decides an image's files: the three specs, the model's content (:attr:`ModelSource.digest`: a
    file's SHA-256, an OpenVINO export's over its folder's model files so the ``.bin`` weights count, an
    official name as it is), its precision and at ``int8`` the calibration data's digest, and for rasters
    the bands and the GeoJSON's CRS. Stored in each image's JSON; a rerun with another key does the image
    again instead of keeping old files."""
    parts = (tiles, infer, merge, ModelSource.of(model).digest, str(precision), bands or BandSpec(), bool(wgs84))
    if Precision.from_value(precision) is Precision.INT8 and calibration is not None:
        parts += (_calibration_id(calibration),)
    return sha256_of(repr(parts).encode("utf-8"))[:16]


def _calibration_id(calibration) -> str:
    """The calibration data's digest (its images' content); as given when it cannot be read, which the
    model's loading then reports in one line."""
    try:
        return calibration_from(calibration).digest
    except CalibrationError:
        return repr(calibration)
