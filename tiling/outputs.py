"""The files a folder run writes, one image at a time: shared by the single-process CLI and the Ray engine,
so both write the same bytes.

Every image gets ``labels/<stem>.txt`` (YOLO), ``json/<stem>.json`` (its size, detections and COCO
records) and, unless turned off, ``annotated/<stem>.jpg``; a model with oriented boxes also writes
``dota/<stem>.txt`` (DOTA, with confidences; the CSV and JSON carry the angle). Each file is written
whole under a temporary name and moved into place (``os.replace``), the JSON last: an image whose JSON
exists is complete, so a rerun skips it and a crash never leaves a half-written file behind. ``detections.csv``,
``coco_results.json`` and ``coco_images.json`` are assembled from the JSONs at the end, streaming, with
image ids by position in the run's input list.
"""
from __future__ import annotations

import glob
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .detections import Detections
from .imageio import IMAGE_SUFFIXES
from .raster import RASTER_SUFFIXES

INPUT_SUFFIXES = tuple(dict.fromkeys(IMAGE_SUFFIXES + RASTER_SUFFIXES))  # what a folder run picks up

JSON_DIR, LABEL_DIR, IMAGE_DIR, GEOJSON_DIR, DOTA_DIR = "json", "labels", "annotated", "geojson", "dota"
PREVIEW_SIDE = 4096  # px: long side of a raster's annotated picture (the raster itself may not fit in memory)


def display_name(path: str) -> str:
    """A file name as text that any output can hold: bytes that are not UTF-8 become U+FFFD."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def list_images(source: str | os.PathLike | Sequence) -> tuple[Path | str, list]:
    """(root, images) for a folder (searched recursively), one image, a glob pattern or a list of paths:
    the one listing both engines and the CLI use. Photos and rasters (``tiling.raster``: GeoTIFF, JPEG
    2000, VRT...) are found alike. A folder's or a file's URI, or a list of URIs (``s3://``, ``gs://``,
    ``file://``...: :mod:`tiling.uris`), gives URIs, kept as text.

    Output names are the images' paths relative to ``root``. Raises ``ValueError`` with one line when
    there is nothing to run on."""
    from .raster import should_stream
    from .uris import common_root, is_uri, list_uri

    if is_uri(source):  # photos: a raster by URI could not be read window by window
        return list_uri(source, IMAGE_SUFFIXES)
    if isinstance(source, (list, tuple)) and source and all(is_uri(u) for u in source):
        return common_root(source), list(source)  # each is read on a worker; a missing one fails alone
    if isinstance(source, (list, tuple)):
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


def entries(root: Path, images: Sequence[Path]) -> list[Entry]:
    """The run's inputs with output stems that never collide: ``a.jpg`` and ``a.png`` in one folder
    become ``a`` and ``a-png`` (the first in sorted order keeps the plain stem)."""
    from .uris import is_uri, relative

    out, taken = [], set()
    for image_id, path in enumerate(images, 1):
        rel = relative(path, str(root)) if is_uri(path) else Path(path).relative_to(root).as_posix()
        stem = base = Path(rel).with_suffix("").as_posix()
        k = 2
        while stem.casefold() in taken:
            stem = f"{base}-{Path(rel).suffix[1:]}" if k == 2 else f"{base}-{Path(rel).suffix[1:]}-{k - 1}"
            k += 1
        taken.add(stem.casefold())
        out.append(Entry(path if is_uri(path) else Path(path), rel, stem, image_id))
    return out


def run_key(tiles, infer, merge, model, precision: str = "fp32", bands=None, wgs84: bool = False,
            calibration=None) -> str:
    """What decides an image's files: the three specs, the model's content (a file's SHA-256; an OpenVINO
    export's, given as its folder or its ``.xml``, over the folder's model files, so the ``.bin`` weights
    count; else its name), its precision and at ``int8`` the calibration data's digest, and for rasters
    the bands and the GeoJSON's CRS. Stored in each image's JSON; a rerun with another key does the image
    again instead of keeping old files."""
    from .bands import BandSpec
    from .util import sha256_of

    parts = (tiles, infer, merge, _model_id(model), precision, bands or BandSpec(), bool(wgs84))
    if precision == "int8" and calibration is not None:
        parts += (_calibration_id(calibration),)
    return sha256_of(repr(parts).encode("utf-8"))[:16]


def _model_id(model) -> str:
    """The model's content digest (see :func:`run_key`), or its name when it is not a file."""
    from .models.archive import EXPORT_FILES
    from .util import sha256_of, sha256_of_file

    if isinstance(model, (bytes, bytearray, memoryview)):
        return sha256_of(bytes(model))
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.is_dir() or (path.suffix.lower() == ".xml" and path.is_file()):
            folder = path if path.is_dir() else path.parent
            return sha256_of("".join(f"{p.name}:{sha256_of_file(p)}" for p in sorted(folder.iterdir())
                                     if p.is_file() and p.suffix.lower() in EXPORT_FILES).encode())
        if path.is_file():
            return sha256_of_file(path)
    # an official name, or a callable model
    return model if isinstance(model, str) else (getattr(model, "source", "") or type(model).__name__)


def _calibration_id(calibration) -> str:
    """The calibration data's digest (its images' content); as given when it cannot be read, which the
    model's loading then reports in one line."""
    from .models.calibration import CalibrationError, calibration_from

    try:
        return calibration_from(calibration).digest
    except CalibrationError:
        return repr(calibration)


def union_columns(column_lists: Iterable[Sequence[str]]) -> list[str]:
    """Every column of the lists, each once, in a stable order: the first list's order, and a column
    another list adds placed right after the column it follows there (oriented boxes' ``cx``..``angle_deg``
    after ``height`` whichever image brings them first)."""
    out: list[str] = []
    for columns in column_lists:
        for k, col in enumerate(columns):
            if col not in out:
                out.insert(out.index(columns[k - 1]) + 1 if k else 0, col)
    return out


def _plain(value):
    """A numpy scalar as the Python value ``json`` and ``csv`` write the same way."""
    return value.item() if isinstance(value, np.generic) else value


def write_atomic(path: Path, data: bytes) -> None:
    """``data`` at ``path``, all or nothing: written beside it under a temporary name, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OutputFolder:
    """Where a run's files go; ``write`` one image, ``is_done`` for a rerun, ``assemble`` at the end."""

    def __init__(self, out: str | os.PathLike, with_images: bool = True, key: str = ""):
        self.out = Path(out)
        self.with_images = with_images
        self.key = key  # :func:`run_key` of the run, kept in each image's JSON

    def prepare(self) -> None:
        """Create the folders (an ``OSError`` if ``out`` cannot be written), before any model loads."""
        for sub in (LABEL_DIR, JSON_DIR) + ((IMAGE_DIR,) if self.with_images else ()):
            (self.out / sub).mkdir(parents=True, exist_ok=True)

    def json_path(self, entry: Entry) -> Path:
        return self.out / JSON_DIR / f"{entry.stem}.json"

    def label_path(self, entry: Entry) -> Path:
        return self.out / LABEL_DIR / f"{entry.stem}.txt"

    def image_path(self, entry: Entry) -> Path:
        return self.out / IMAGE_DIR / f"{entry.stem}.jpg"

    def dota_path(self, entry: Entry) -> Path:
        return self.out / DOTA_DIR / f"{entry.stem}.txt"

    def geojson_path(self, entry: Entry) -> Path:
        return self.out / GEOJSON_DIR / f"{entry.stem}.geojson"

    def is_done(self, entry: Entry) -> bool:
        """True when this image's files are all there from an earlier run with the same key (its JSON
        names this image; one written without a key is taken as it is)."""
        path = self.json_path(entry)
        if not path.is_file() or not self.label_path(entry).is_file():
            return False
        if self.with_images and not self.image_path(entry).is_file():
            return False
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if "angle_deg" in record.get("columns", ()) and not self.dota_path(entry).is_file():
                return False  # oriented boxes: their DOTA file is one of the image's files
            return record.get("image") == entry.shown and (record.get("run") or self.key) == self.key
        except (OSError, ValueError, AttributeError, TypeError):
            return False

    def write(self, entry: Entry, det: Detections, image_shape: Sequence[int], image: np.ndarray | None = None) -> int:
        """Write one image's files (the JSON last); returns its number of detections. ``image`` (BGR) is
        needed for the annotated picture when the folder has them."""
        from .formats import encode_jpeg, to_coco, to_dota_txt, to_yolo_txt

        h, w = int(image_shape[0]), int(image_shape[1])
        write_atomic(self.label_path(entry), to_yolo_txt(det, (h, w)).encode("utf-8"))
        if det.has_obb:
            write_atomic(self.dota_path(entry), to_dota_txt(det, with_conf=True).encode("utf-8"))
        if self.with_images:
            if image is None:
                raise ValueError(f"{entry.shown}: the annotated picture needs the image")
            from .draw import draw_detections

            write_atomic(self.image_path(entry), encode_jpeg(draw_detections(image, det), 90))
        frame = det.to_dataframe()
        frame.insert(0, "image", entry.shown)
        columns = [str(c) for c in frame.columns]
        record = {
            "image": entry.shown, "run": self.key, "height": h, "width": w, "columns": columns,
            "detections": [dict(zip(columns, map(_plain, row))) for row in frame.itertuples(index=False)],
            "coco": [{k: v for k, v in rec.items() if k != "image_id"} for rec in to_coco(det, image_id=0)],
        }
        write_atomic(self.json_path(entry), json.dumps(record).encode("utf-8"))
        return len(det)

    def write_raster(self, entry: Entry, det: Detections, image_shape: Sequence[int], georef, to_wgs84: bool = False,
                     preview: tuple[np.ndarray, float] | None = None) -> int:
        """Write one raster's files: its GeoJSON (``tiling.geojson``, in ``georef``'s CRS or EPSG:4326), its
        annotated picture drawn on ``preview`` = (overview image, its scale) when the folder has pictures,
        then the label and the JSON (last). Returns its number of detections."""
        from .draw import draw_detections
        from .formats import encode_jpeg
        from .geojson import write_geojson

        self.geojson_path(entry).parent.mkdir(parents=True, exist_ok=True)
        write_geojson(self.geojson_path(entry), det, georef, to_wgs84, name=Path(entry.rel).stem)
        if self.with_images:
            if preview is None:
                raise ValueError(f"{entry.shown}: the annotated picture needs the raster's overview")
            picture, factor = preview
            write_atomic(self.image_path(entry), encode_jpeg(draw_detections(picture, det.scaled(factor)), 90))
        return OutputFolder(self.out, with_images=False, key=self.key).write(entry, det, image_shape)

    def _records(self, run: Sequence[Entry], with_entries: bool = False) -> Iterator[dict | None]:
        """Each image's JSON record, read one at a time; images without one are passed over (or None
        in their place with ``with_entries``)."""
        for entry in run:
            try:
                yield json.loads(self.json_path(entry).read_text(encoding="utf-8"))
            except FileNotFoundError:
                if with_entries:
                    yield None

    def assemble(self, run: Iterable[Entry], names: dict[int, str]) -> tuple[int, int]:
        """``detections.csv``, ``coco_results.json`` and ``coco_images.json`` from the per-image JSONs of
        ``run`` (images without one failed and are left out), one image in memory at a time. Returns
        (images, detections)."""
        import csv

        from .formats import coco_categories

        run = list(run)
        columns = union_columns(record["columns"] for record in self._records(run))
        n_images = n_objects = 0
        images_meta = []
        csv_tmp, coco_tmp = self.out / ".detections.csv.tmp", self.out / ".coco_results.json.tmp"
        with open(csv_tmp, "w", newline="", encoding="utf-8") as csv_file, \
                open(coco_tmp, "w", encoding="utf-8") as coco:
            writer = csv.DictWriter(csv_file, columns, restval="")  # an image without a column leaves it empty
            if columns:
                writer.writeheader()
            coco.write("[")
            first = True
            for entry, record in zip(run, self._records(run, with_entries=True)):
                if record is None:
                    continue
                n_images += 1
                n_objects += len(record["detections"])
                images_meta.append({"id": entry.image_id, "file_name": record["image"], "height": record["height"],
                                    "width": record["width"]})
                writer.writerows(record["detections"])
                for rec in record["coco"]:
                    coco.write(("" if first else ",") + "\n" + json.dumps({"image_id": entry.image_id, **rec}))
                    first = False
            coco.write("\n]\n")
        os.replace(csv_tmp, self.out / "detections.csv")
        os.replace(coco_tmp, self.out / "coco_results.json")
        points = sum(1 for c in columns if c.startswith("kp") and c.endswith("_x") and c[2:-2].isdigit())
        meta = {"images": images_meta, "categories": coco_categories(names, keypoints=points)}
        write_atomic(self.out / "coco_images.json", json.dumps(meta, indent=1).encode("utf-8"))
        return n_images, n_objects
