"""COCO annotation files: images, categories and annotations, checked field by field."""
from __future__ import annotations

import json
import math
import os

import numpy as np

from ..detections import Detections
from . import base
from .base import (
    MAX_CLASS_NAME_BYTES,
    _JSON_CONTAINERS_PER_ITEM,
    _MAX_CLASS_ID,
    _MAX_COORD,
    _SHORT,
    LabelError,
    _check_name,
    _clip_boxes,
    _read_label_file,
    _text,
    _too_many,
)


class _OutOfRange:
    """An integer literal too long for any field (ids fit 32 bits, sizes and coordinates float32): kept as
    its length, so the field's own check names it, instead of Python's 4,300-digit limit on ``int(str)``
    failing inside the JSON parser, or a float conversion overflowing later."""

    MAX_DIGITS = 39  # float32's largest value has 39 digits

    def __init__(self, digits: int):
        self.digits = digits

    def __repr__(self) -> str:
        return f"<an integer of {self.digits:,} digits>"

    @classmethod
    def parse(cls, text: str) -> "int | _OutOfRange":
        return int(text) if len(text.lstrip("-")) <= cls.MAX_DIGITS else cls(len(text.lstrip("-")))


def _json_type(value: object) -> str:
    kinds = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _json_document(text: str, name: str) -> dict:
    """The top-level object; objects and arrays are counted before parsing, since each costs ~60-100 bytes."""
    containers, limit = text.count("{") + text.count("["), _JSON_CONTAINERS_PER_ITEM * base.MAX_LABEL_ITEMS
    if containers > limit:
        raise LabelError(f"{name}: {containers:,} JSON objects and arrays is over the limit of {limit:,} "
                         f"({_JSON_CONTAINERS_PER_ITEM} per item at PATCHWISE_MAX_LABEL_ITEMS={base.MAX_LABEL_ITEMS:,})")
    try:
        doc = json.loads(text, parse_int=_OutOfRange.parse)
    except json.JSONDecodeError as exc:
        raise LabelError(f"{name} line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise LabelError(f"{name}: JSON nested too deeply to be a COCO file") from None
    if not isinstance(doc, dict):
        raise LabelError(f"{name}: the top level is a JSON {_json_type(doc)}; a COCO file is an object with "
                         "'images', 'annotations' and 'categories'")
    return doc


def _coco_list(doc: dict, key: str, name: str, required: bool) -> list:
    value = doc.get(key)
    if value is None and not required:
        return []
    if value is None:
        raise LabelError(f"{name}: '{key}' is missing; a COCO file lists its images")
    if not isinstance(value, list):
        raise LabelError(f"{name}: '{key}' is a JSON {_json_type(value)}, expected an array")
    _too_many(len(value), key, name)
    return value


def _coco_object(value: object, where: str, name: str) -> dict:
    if not isinstance(value, dict):
        raise LabelError(f"{name}: {where} is a JSON {_json_type(value)}, expected an object")
    return value


def _coco_int(obj: dict, key: str, where: str, name: str, limit: int | None = None) -> int:
    """An integer field (booleans and 2.0 are not integers; ``limit`` bounds the magnitude)."""
    value = obj.get(key)
    if type(value) is not int or (limit is not None and abs(value) > limit):
        bound = f" of at most {limit:,} in magnitude" if limit is not None else ""
        raise LabelError(f"{name}: {where}.{key} must be an integer{bound}, got {_SHORT.repr(value)}")
    return value


def _coco_size(img: dict, key: str, where: str, name: str) -> float:
    """Image width or height; inf when absent, so clipping only bounds the box from below."""
    value = img.get(key)
    if value is None:
        return math.inf
    if type(value) not in (int, float) or not (0 < value < math.inf):
        raise LabelError(f"{name}: {where}.{key} must be a positive number, got {_SHORT.repr(value)}")
    return float(value)


def _coco_names(categories: list, name: str, offset: int) -> dict[int, str]:
    names = {}
    for i, cat in enumerate(categories):
        where = f"categories[{i}]"
        cid = _coco_int(_coco_object(cat, where, name), "id", where, name, _MAX_CLASS_ID)
        if not isinstance(cat.get("name"), str):
            raise LabelError(f"{name}: {where}.name must be a string, got {_SHORT.repr(cat.get('name'))}")
        if len(cat["name"].encode("utf-8", "surrogatepass")) > MAX_CLASS_NAME_BYTES:
            raise LabelError(f"{name}: {where}.name is longer than {MAX_CLASS_NAME_BYTES} bytes "
                             "(it is drawn beside every box of its class)")
        names[cid - offset] = cat["name"]
    return names


def _coco_images(images: list, name: str) -> tuple[list[int], list[str], list[tuple[float, float]]]:
    """Ids, file names and (width, height) of the images, each field checked."""
    ids, files, sizes = [], [], []
    for i, img in enumerate(images):
        where = f"images[{i}]"
        ids.append(_coco_int(_coco_object(img, where, name), "id", where, name))
        if not isinstance(img.get("file_name"), str):
            raise LabelError(f"{name}: {where}.file_name must be a string, got {_SHORT.repr(img.get('file_name'))}")
        files.append(img["file_name"])
        sizes.append((_coco_size(img, "width", where, name), _coco_size(img, "height", where, name)))
    return ids, files, sizes


def _is_coord(v: object) -> bool:
    return type(v) is float or (type(v) is int and abs(v) <= _MAX_COORD)  # huge ints would overflow numpy


def _coco_annotations(annotations: list, name: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Image ids, category ids and xyxy boxes of the non-crowd annotations, each field checked."""
    image_ids, categories, boxes, index = [], [], [], []
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        if _coco_object(ann, where, name).get("iscrowd"):
            continue
        image_ids.append(_coco_int(ann, "image_id", where, name))
        categories.append(_coco_int(ann, "category_id", where, name, _MAX_CLASS_ID))
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_coord(v) for v in bbox)):
            raise LabelError(f"{name}: {where}.bbox must be 4 numbers [x, y, width, height], got {_SHORT.repr(bbox)}")
        boxes.append(bbox)
        index.append(i)
    xywh = np.array(boxes, np.float64).reshape(-1, 4)
    not_finite, negative = ~(np.abs(xywh) <= _MAX_COORD).all(axis=1), (xywh[:, 2:] < 0).any(axis=1)
    if (not_finite | negative).any():
        k = int(np.argmax(not_finite | negative))
        problem = "values must be finite numbers" if not_finite[k] else "width and height must not be negative"
        raise LabelError(f"{name}: annotations[{index[k]}].bbox {problem}, got {_SHORT.repr(boxes[k])}")
    return image_ids, np.array(categories, np.int64), np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]


def parse_coco_labels(data: bytes | str, name: str = "labels.json", category_offset: int = 1) -> dict[str, Detections]:
    """COCO JSON content (an instances file) -> {file_name: Detections}; class = category_id - offset.

    ``data`` is content, never a path: uploads must not reach the file system. ``name`` is only used in
    messages. Crowd annotations are skipped; boxes are clipped to the image's width/height when given
    (to x, y >= 0 otherwise) and boxes left with no area are dropped. Anything malformed is a LabelError.
    """
    name = _check_name(name)
    doc = _json_document(_text(data, name, "load_coco_labels"), name)
    images = _coco_list(doc, "images", name, required=True)
    annotations = _coco_list(doc, "annotations", name, required=False)
    names = _coco_names(_coco_list(doc, "categories", name, required=False), name, category_offset)
    ids, files, sizes = _coco_images(images, name)
    image_ids, categories, xyxy = _coco_annotations(annotations, name)
    by_image: dict[int, list[int]] = {}
    for k, image_id in enumerate(image_ids):
        by_image.setdefault(image_id, []).append(k)
    out = {}
    for image_id, file_name, (width, height) in zip(ids, files, sizes):
        rows = by_image.get(image_id, [])
        boxes, keep = _clip_boxes(xyxy[rows], width, height)
        out[file_name] = Detections(xyxy=boxes[keep].astype(np.float32),
                                    class_id=categories[rows][keep] - category_offset, names=names)
    return out


def load_coco_labels(path: str | os.PathLike, category_offset: int = 1) -> dict[str, Detections]:
    """A COCO JSON file -> {file_name: Detections} (see parse_coco_labels). A str is always a path."""
    data, name = _read_label_file(path, "parse_coco_labels")
    return parse_coco_labels(data, name, category_offset)
