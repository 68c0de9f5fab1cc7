"""A COCO json as a source to slice: its images (found beside the json or in an ``images`` folder there),
categories as class indices in id order, and each image's annotations as objects in pixels: polygons
where a segmentation is given as polygons, keypoints where the category has them, boxes otherwise. Crowd
annotations (``iscrowd``: ignore regions) and RLE masks have no place in YOLO labels and are left out."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from ..labels.base import LabelError, _read_label_file
from .clip import ring_area
from .objects import DatasetError, Kind, LabelledObject, Source, SourceImage

OUTSIDE_TOLERANCE_PX = 1.0  # a box edge written a rounding past the image's edge


def read_json(path: Path, reader: str) -> object:
    """A label file's JSON, read with the label readers' size and encoding checks (``reader`` names the
    caller in their messages); anything wrong is one :class:`DatasetError`."""
    try:
        data, _ = _read_label_file(path, reader)
        return json.loads(data)
    except LabelError as exc:
        raise DatasetError(str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name}: not JSON ({str(exc).splitlines()[0]})") from None


def _load(path: Path) -> dict:
    doc = read_json(path, "parse_coco_labels")
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or not isinstance(doc.get("categories"), list):
        raise DatasetError(f"{path.name}: not a COCO json (needs 'images' and 'categories' lists)")
    return doc


def _image_path(folder: Path, name: str, where: str) -> Path:
    """Where an image of the json lies: beside it, in an ``images`` folder beside it, or in one beside its
    folder (``annotations/<split>.json`` next to ``images/``, as slice_dataset writes COCO)."""
    for p in (folder / name, folder / "images" / name, folder.parent / "images" / name):
        if p.is_file():
            return p
    raise DatasetError(f"{where}: missing image {name} (looked beside the json and in the images/ folders "
                       "beside it and its folder)")


def _ring(points: list, where: str) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    if pts.ndim != 1 or len(pts) < 6 or len(pts) % 2:
        raise DatasetError(f"{where}: a segmentation polygon must be a list of >= 3 x, y pairs")
    return pts.reshape(-1, 2)


def _annotation(ann: dict, index: dict[int, int], kpts: dict[int, int], where: str) -> LabelledObject | None:
    cat = ann.get("category_id")
    if cat not in index:
        raise DatasetError(f"{where}: category_id {cat!r} is not among the json's categories")
    try:
        x, y, w, h = (float(v) for v in ann["bbox"])
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{where}: bbox must be [x, y, width, height]") from None
    box = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    seg = ann.get("segmentation")
    if kpts.get(cat):
        raw = np.asarray(ann.get("keypoints") or [0.0] * 3 * kpts[cat], np.float64).reshape(-1, 3)
        return LabelledObject(index[cat], Kind.POSE, [box], raw)
    if isinstance(seg, list) and seg:
        return LabelledObject(index[cat], Kind.POLYGON, [_ring(r, where) for r in seg])
    return LabelledObject(index[cat], Kind.BOX, [box])


def check_inside(obj: LabelledObject, width: int, height: int, where: str, what: str = "image") -> None:
    """Refuse a label beyond the image (or raster, ``what``) by more than a rounding; clip one within it."""
    x0, y0, x1, y1 = obj.xyxy
    t = OUTSIDE_TOLERANCE_PX
    if x0 < -t or y0 < -t or x1 > width + t or y1 > height + t:
        raise DatasetError(f"{where}: label outside the {what} ({x0:.1f}, {y0:.1f}, {x1:.1f}, {y1:.1f} on a "
                           f"{width}x{height} {what})")
    obj.rings = [np.clip(r, 0.0, [width, height]) for r in obj.rings]


def _read(anns: list[dict], width: int, height: int, index, kpts, name: str) -> list[LabelledObject]:
    objects = []
    for ann in anns:
        if ann.get("iscrowd"):
            continue
        where = f"{name} annotation {ann.get('id', '?')}"
        obj = _annotation(ann, index, kpts, where)
        check_inside(obj, width, height, where)
        if sum(abs(ring_area(r)) for r in obj.rings) > 0:
            objects.append(obj)
    return objects


def _categories(doc: dict) -> tuple[list[dict], dict, dict, dict[int, str], tuple[int, int] | None]:
    """(categories in id order, id -> class index, id -> keypoint count, names, kpt_shape)."""
    cats = sorted((c for c in doc["categories"] if isinstance(c, dict) and "id" in c), key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(cats)}
    kpts = {c["id"]: len(c.get("keypoints") or []) for c in cats}
    counts = {n for n in kpts.values() if n}
    kpt_shape = (counts.pop(), 3) if len(counts) == 1 else None
    names = {i: str(c.get("name", c["id"])) for i, c in enumerate(cats)}
    return cats, index, kpts, names, kpt_shape


def read_coco_source(path: Path) -> Source:
    """A COCO json with its images; it names no split (tiling.dataset.splits draws one)."""
    doc = _load(path)
    cats, index, kpts, names, kpt_shape = _categories(doc)
    by_image: dict = {}
    for ann in doc.get("annotations") or []:
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    images, seen = [], {}
    for im in doc["images"]:
        name = str(im.get("file_name", ""))
        if name in seen:
            raise DatasetError(f"{path.name}: image {name} is listed twice (ids {seen[name]} and {im.get('id')})")
        seen[name] = im.get("id")
        p = _image_path(path.parent, name, path.name)
        read = functools.partial(_read, by_image.get(im.get("id"), []), index=index, kpts=kpts, name=path.name)
        images.append(SourceImage(p, None, name, read))
    return Source(images, names, kpt_shape, {}, coco_categories=cats)


def read_coco_objects(doc: dict, name: str, shape: tuple[int, int]) -> tuple[list[LabelledObject], Source]:
    """The objects of a COCO json (loaded: ``doc``) holding one image (a raster's), in its pixels, and
    their names."""
    if not isinstance(doc.get("images"), list) or not isinstance(doc.get("categories"), list):
        raise DatasetError(f"{name}: not a COCO json (needs 'images' and 'categories' lists)")
    if len(doc["images"]) != 1:
        raise DatasetError(f"{name}: the objects of a raster are one image's; this json lists {len(doc['images'])}")
    cats, index, kpts, names, kpt_shape = _categories(doc)
    image_id = doc["images"][0].get("id")
    anns = [a for a in doc.get("annotations") or [] if a.get("image_id") == image_id]
    objects = _read(anns, shape[1], shape[0], index=index, kpts=kpts, name=name)
    return objects, Source([], names, kpt_shape, {}, coco_categories=cats)
