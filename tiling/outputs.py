"""The files a folder run writes, one image at a time: shared by the single-process CLI and the Ray engine,
so both write the same bytes.

Every image gets ``labels/<stem>.txt`` (YOLO), ``json/<stem>.json`` (its size, detections and COCO
records) and, unless turned off, ``annotated/<stem>.jpg``; a model with oriented boxes also writes
``dota/<stem>.txt`` (DOTA, with confidences; the CSV and JSON carry the angle). Each file is written
whole under a temporary name and moved into place (``os.replace``), the JSON last: an image whose JSON
exists is complete, so a rerun skips it and a crash never leaves a half-written file behind. ``detections.csv``,
``coco_results.json`` and ``coco_images.json`` are assembled from the JSONs at the end, streaming, with
image ids by position in the run's input list. Which images a run has, and the names their files get,
come from :mod:`tiling.inputs`.
"""
from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .detections import Detections
from .draw import draw_detections
from .formats import coco_categories, encode_jpeg, to_coco, to_dota_txt, to_yolo_txt
from .geojson import write_geojson
from .inputs import Entry

JSON_DIR, LABEL_DIR, IMAGE_DIR, GEOJSON_DIR, DOTA_DIR = "json", "labels", "annotated", "geojson", "dota"
PREVIEW_SIDE = 4096  # px: long side of a raster's annotated picture (the raster itself may not fit in memory)


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
        self.key = key  # :func:`tiling.inputs.run_key` of the run, kept in each image's JSON

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
        h, w = int(image_shape[0]), int(image_shape[1])
        write_atomic(self.label_path(entry), to_yolo_txt(det, (h, w)).encode("utf-8"))
        if det.has_obb:
            write_atomic(self.dota_path(entry), to_dota_txt(det, with_conf=True).encode("utf-8"))
        if self.with_images:
            if image is None:
                raise ValueError(f"{entry.shown}: the annotated picture needs the image")
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
