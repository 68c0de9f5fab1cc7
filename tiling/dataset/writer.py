"""Writing the sliced dataset: tiles as images, their labels as YOLO txt files beside a ``data.yaml`` with
the source's names (what Ultralytics trains on as it is), or as one COCO json per split. Tiles are written
as they are made; only a COCO json's records are held until the end."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import yaml

from ..formats import coco_categories
from .clip import ring_area
from .objects import Kind, LabelledObject, Source


def join_rings(rings: list[np.ndarray]) -> np.ndarray:
    """One ring from several (YOLO holds one polygon per object): each further ring is joined to the rings
    before it by a zero-width slit at their closest vertices, so the filled area is the same."""
    out = rings[0]
    for ring in rings[1:]:
        d = ((out[:, None, :] - ring[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        out = np.concatenate([out[: i + 1], ring[j:], ring[: j + 1], out[i:]])
    return out


def _fmt(values) -> str:
    return " ".join(f"{float(v):.6f}" for v in values)


def yolo_row(obj: LabelledObject, width: int, height: int, task: str, kpt_dims: int = 3) -> str:
    """One object as a YOLO label row of a ``width`` x ``height`` tile (coordinates clamped to 0-1)."""
    size = np.array([width, height], np.float64)
    if obj.kind is Kind.POLYGON and task != "detect":
        return f"{obj.class_id} " + _fmt(np.clip(join_rings(obj.rings) / size, 0.0, 1.0).reshape(-1))
    if obj.kind is Kind.OBB:
        return f"{obj.class_id} " + _fmt(np.clip(obj.rings[0] / size, 0.0, 1.0).reshape(-1))
    x0, y0, x1, y1 = np.clip(np.array(obj.xyxy) / np.tile(size, 2), 0.0, 1.0)
    row = f"{obj.class_id} " + _fmt([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0])
    if obj.kind is Kind.POSE and obj.keypoints is not None:
        kp = obj.keypoints.copy()
        kp[:, :2] = np.clip(kp[:, :2] / size, 0.0, 1.0)
        row += " " + _fmt(kp[:, :kpt_dims].reshape(-1))
    return row


def _write_image(path: Path, image: np.ndarray, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), image, params):
        raise OSError(f"cannot write {path}")


class YoloWriter:
    """``images/<split>/<tile>.jpg`` and ``labels/<split>/<tile>.txt`` under ``out``, and ``data.yaml``."""

    def __init__(self, out: Path, source: Source, task: str, quality: int) -> None:
        self.out, self.source, self.task, self.quality = out, source, task, quality
        self.splits: set[str] = set()

    def add(self, split: str, name: str, suffix: str, image: np.ndarray, objects: list[LabelledObject]) -> None:
        self.splits.add(split)
        _write_image(self.out / "images" / split / f"{name}{suffix}", image, self.quality)
        h, w = image.shape[:2]
        dims = self.source.kpt_shape[1] if self.source.kpt_shape else 3
        rows = [yolo_row(o, w, h, self.task, dims) for o in objects]
        label = self.out / "labels" / split / f"{name}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(r + "\n" for r in rows))

    def close(self) -> Path:
        doc: dict = {"path": str(self.out.resolve())}
        doc.update({s: f"images/{s}" for s in ("train", "val", "test") if s in self.splits})
        if self.source.kpt_shape:
            doc["kpt_shape"] = list(self.source.kpt_shape)
        doc.update(self.source.extra)
        doc["names"] = dict(sorted(self.source.names.items()))
        path = self.out / "data.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        return path


class CocoWriter:
    """``images/<split>/<tile>.jpg`` and ``annotations/<split>.json`` (COCO) under ``out``; a COCO source
    keeps its category ids, a YOLO one gets ids from 1 in class order."""

    def __init__(self, out: Path, source: Source, task: str, quality: int) -> None:
        self.out, self.source, self.quality = out, source, quality
        kpts = source.kpt_shape[0] if source.kpt_shape else 0
        if source.coco_categories:
            self.categories = source.coco_categories
            self.ids = {i: c["id"] for i, c in enumerate(self.categories)}
        else:
            self.categories = coco_categories(source.names, 1, kpts)
            self.ids = {k: k + 1 for k in source.names}
        self.records: dict[str, dict] = {}

    def _annotation(self, obj: LabelledObject, image_id: int, ann_id: int) -> dict:
        x0, y0, x1, y1 = obj.xyxy
        area = sum(abs(ring_area(r)) for r in obj.rings) if obj.kind in (Kind.POLYGON, Kind.OBB) else (x1 - x0) * (y1 - y0)
        ann = {"id": ann_id, "image_id": image_id, "category_id": self.ids[obj.class_id], "iscrowd": 0,
               "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)], "area": round(float(area), 2)}
        if obj.kind in (Kind.POLYGON, Kind.OBB):
            ann["segmentation"] = [np.round(r, 2).reshape(-1).tolist() for r in obj.rings]
        if obj.keypoints is not None:
            ann["keypoints"] = np.round(obj.keypoints, 2).reshape(-1).tolist()
            ann["num_keypoints"] = int((obj.keypoints[:, 2] > 0).sum())
        return ann

    def add(self, split: str, name: str, suffix: str, image: np.ndarray, objects: list[LabelledObject]) -> None:
        rec = self.records.setdefault(split, {"images": [], "annotations": []})
        file_name = f"{split}/{name}{suffix}"
        _write_image(self.out / "images" / file_name, image, self.quality)
        image_id = len(rec["images"]) + 1
        rec["images"].append({"id": image_id, "file_name": file_name, "height": image.shape[0], "width": image.shape[1]})
        for obj in objects:
            rec["annotations"].append(self._annotation(obj, image_id, len(rec["annotations"]) + 1))

    def close(self) -> Path:
        folder = self.out / "annotations"
        folder.mkdir(parents=True, exist_ok=True)
        for split, rec in self.records.items():
            (folder / f"{split}.json").write_text(json.dumps({**rec, "categories": self.categories}))
        return folder


def make_writer(fmt: str, out: Path, source: Source, task: str, quality: int) -> YoloWriter | CocoWriter:
    return (CocoWriter if fmt == "coco" else YoloWriter)(out, source, task, quality)
