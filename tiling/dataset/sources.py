"""Labelled sources to slice: a YOLO dataset (``data.yaml`` and its splits) or a COCO json (see
tiling.dataset.coco_source). Each lists its images with their split, and reads an image's labels only when
its turn comes, so memory holds one image's labels at a time."""
from __future__ import annotations

import functools
from pathlib import Path

import yaml

from ..imageio import IMAGE_SUFFIXES
from .coco_source import read_coco_source
from .objects import DatasetError, Source, SourceImage
from .yolo_rows import read_yolo_rows

SPLITS = ("train", "val", "test")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _listed(entry: str, root: Path, where: str) -> list[Path]:
    """The images a split entry names: a folder (searched recursively), a .txt list of images, or one image."""
    path = (root / entry) if not Path(entry).is_absolute() else Path(entry)
    if path.is_dir():
        return _images_in(path)
    if path.suffix.lower() == ".txt" and path.is_file():
        lines = [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]
        images = [(root / s) if not Path(s).is_absolute() else Path(s) for s in lines]
        for p in images:
            if not p.is_file():
                raise DatasetError(f"{path.name}: missing image {p} (listed in the {where} split)")
        return images
    if path.is_file():
        return [path]
    raise DatasetError(f"data.yaml: the {where} split names {entry!r}, which is not a folder, list or image under {root}")


def label_path(image: Path) -> Path:
    """Where Ultralytics looks for an image's labels: its path with the last ``images`` folder read as
    ``labels`` and a .txt suffix; an image in no ``images`` folder has its labels beside it."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _names(raw, where: str) -> dict[int, str]:
    if isinstance(raw, list):
        return {i: str(n) for i, n in enumerate(raw)}
    if isinstance(raw, dict) and all(isinstance(k, int) for k in raw):
        return {int(k): str(v) for k, v in raw.items()}
    raise DatasetError(f"{where}: 'names' must be a list or a mapping from class index to name")


def _kpt_shape(raw, where: str) -> tuple[int, int] | None:
    if raw is None:
        return None
    if not (isinstance(raw, list) and len(raw) == 2 and raw[1] in (2, 3) and isinstance(raw[0], int) and raw[0] > 0):
        raise DatasetError(f"{where}: kpt_shape must be [keypoints, 2 or 3], got {raw!r}")
    return int(raw[0]), int(raw[1])


def _split_images(doc: dict, root: Path, where: str) -> dict[str, list[Path]]:
    """Each split's images. A file named twice, in two splits or twice in one, is an error: its tiles would
    leak from one split into another (or weigh twice)."""
    splits: dict[str, list[Path]] = {}
    seen: dict[Path, str] = {}
    for split in SPLITS:
        entries = doc.get(split)
        if not entries:
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            for image in _listed(str(entry), root, split):
                key = image.resolve()
                if key in seen:
                    also = "twice in the same split" if seen[key] == split else f"in both {seen[key]} and {split}"
                    raise DatasetError(f"{where}: {image.name} is named {also}; each image must be in one split "
                                       "(drop 'val:' to split by image or group)")
                seen[key] = split
                splits.setdefault(split, []).append(image)
    if not splits:
        raise DatasetError(f"{where}: names no split (train:, val: or test:)")
    return splits


def read_yolo_source(yaml_path: Path, task: str = "auto") -> Source:
    """A YOLO dataset from its ``data.yaml``. A dataset naming only ``train`` has no split to keep: its
    images get None, and tiling.dataset.splits draws one."""
    where = yaml_path.name
    try:
        doc = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{where}: cannot read it ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or "names" not in doc:
        raise DatasetError(f"{where}: not a YOLO data.yaml (no 'names')")
    root = Path(doc.get("path") or ".")
    root = root if root.is_absolute() else (yaml_path.parent / root)
    names, kpt_shape = _names(doc["names"], where), _kpt_shape(doc.get("kpt_shape"), where)
    splits = _split_images(doc, root, where)
    only_train = list(splits) == ["train"]
    images = []
    for split, paths in splits.items():
        for p in paths:
            read = functools.partial(_read_labels, label_path(p), names=names, kpt_shape=kpt_shape, task=task)
            images.append(SourceImage(p, None if only_train else split, _key(p, root), read))
    extra = {k: doc[k] for k in ("flip_idx",) if k in doc}
    return Source(images, names, kpt_shape, extra)


def _key(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _read_labels(label: Path, width: int, height: int, names, kpt_shape, task):
    return read_yolo_rows(label, width, height, names, kpt_shape, task)


def open_source(source: str | Path, task: str = "auto") -> Source:
    """The dataset at ``source``: a data.yaml, a folder holding one, or a COCO .json."""
    path = Path(source)
    if path.is_dir() and (path / "data.yaml").is_file():
        path = path / "data.yaml"
    if not path.exists():
        raise DatasetError(f"{source}: no such file or folder")
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        return read_yolo_source(path, task)
    if path.suffix.lower() == ".json" and path.is_file():
        return read_coco_source(path)
    raise DatasetError(f"{source}: expected a YOLO data.yaml (or a folder holding one) or a COCO .json")
