"""Compare detections with ground truth (precision, recall, AP50, AP50-95) or with each other.

AP follows COCO's definition (greedy matching by score, 101-point interpolated precision, per
class then averaged), without COCO's 100-detections-per-image cap by default: the images this
tool is for hold hundreds of objects.
"""
from __future__ import annotations

import json
import math
import os
import reprlib
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .detections import Detections

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU matrix (for the moderate sizes of one image's predictions vs its labels)."""
    import torch
    from torchvision.ops import box_iou as tv_box_iou

    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float64)
    return tv_box_iou(torch.from_numpy(np.asarray(a, np.float64)), torch.from_numpy(np.asarray(b, np.float64))).numpy()


def matched(pred: Detections, reference: Detections, iou: float = 0.5, class_aware: bool = True) -> np.ndarray:
    """For each prediction: does some reference box of the same class (or any class) overlap it at ``iou``?"""
    if len(pred) == 0 or len(reference) == 0:
        return np.zeros(len(pred), bool)
    m = box_iou(pred.xyxy, reference.xyxy) >= iou
    if class_aware:
        m &= pred.class_id[:, None] == reference.class_id[None, :]
    return m.any(axis=1)


def _match_image(pred: Detections, gt: Detections, thresholds: np.ndarray):
    """COCO greedy matching for one image and one class.

    Returns the (T, P) true-positive table of the predictions and the (T, G) table of matched labels.
    """
    order = np.argsort(-pred.confidence, kind="mergesort")
    ious = box_iou(pred.xyxy[order], gt.xyxy)
    tp = np.zeros((len(thresholds), len(order)), bool)
    gt_match = np.zeros((len(thresholds), len(gt)), bool)
    for t, thr in enumerate(thresholds):
        for d in range(len(order)):
            if len(gt) == 0:
                break
            cand = np.where(gt_match[t], -1.0, ious[d])
            g = int(np.argmax(cand))
            if cand[g] >= thr - 1e-10:
                gt_match[t, g] = True
                tp[t, d] = True
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return tp[:, inverse], gt_match


def _ap(tp_sorted: np.ndarray, n_gt: int) -> float:
    if n_gt == 0:
        return float("nan")
    if len(tp_sorted) == 0:
        return 0.0
    tps = np.cumsum(tp_sorted)
    fps = np.cumsum(~tp_sorted)
    recall = tps / n_gt
    precision = tps / np.maximum(tps + fps, np.finfo(float).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    return float(np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0).mean())


@dataclass
class Evaluation:
    precision: float
    recall: float
    ap50: float
    ap50_95: float
    per_class: object  # pandas DataFrame: class_id, class, n_gt, n_pred, tp, precision, recall, ap50, ap50_95
    tp: list[np.ndarray]  # per image: prediction is a true positive at IoU 0.5
    fn: list[np.ndarray]  # per image: ground-truth object was missed at IoU 0.5
    duplicates: int = 0  # false positives overlapping an already-found object of their class at IoU >= 0.5
    partials: int = 0  # other false positives lying mostly (>= 70%) inside one labelled object

    def as_dict(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "ap50": self.ap50, "ap50_95": self.ap50_95,
                "duplicates": self.duplicates, "partials": self.partials}


def evaluate(
    predictions: Detections | Sequence[Detections],
    ground_truth: Detections | Sequence[Detections],
    max_det: int | None = None,
) -> Evaluation:
    """Score predictions (one ``Detections`` per image) against ground truth (confidences ignored)."""
    import pandas as pd

    preds = [predictions] if isinstance(predictions, Detections) else list(predictions)
    gts = [ground_truth] if isinstance(ground_truth, Detections) else list(ground_truth)
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} prediction sets for {len(gts)} ground-truth sets")
    if max_det is not None:
        preds = [p[np.argsort(-p.confidence, kind="mergesort")[:max_det]] for p in preds]
    names: dict[int, str] = {}
    for d in (*preds, *gts):
        names.update(d.names)
    classes = sorted(set(np.concatenate([d.class_id for d in (*preds, *gts)]).tolist()) if preds else set())
    tp_img = [np.zeros(len(p), bool) for p in preds]
    tp_gt = [np.zeros(len(g), bool) for g in gts]
    rows = []
    for c in classes:
        scores, tables, n_gt = [], [], 0
        for i, (p, g) in enumerate(zip(preds, gts)):
            pi, gi = np.flatnonzero(p.class_id == c), np.flatnonzero(g.class_id == c)
            n_gt += len(gi)
            table, found = _match_image(p[pi], g[gi], IOU_THRESHOLDS)
            tp_img[i][pi] = table[0]
            tp_gt[i][gi] = found[0]
            scores.append(p.confidence[pi])
            tables.append(table)
        score = np.concatenate(scores) if scores else np.zeros(0)
        table = np.concatenate(tables, axis=1) if tables else np.zeros((len(IOU_THRESHOLDS), 0), bool)
        order = np.argsort(-score, kind="mergesort")
        aps = [_ap(table[t, order], n_gt) for t in range(len(IOU_THRESHOLDS))]
        n_pred, tp = len(score), int(table[0].sum())
        rows.append({
            "class_id": c, "class": names.get(c, str(c)), "n_gt": n_gt, "n_pred": n_pred, "tp": tp,
            "precision": tp / n_pred if n_pred else float("nan"), "recall": tp / n_gt if n_gt else float("nan"),
            "ap50": aps[0], "ap50_95": float(np.nanmean(aps)) if n_gt else float("nan"),
        })
    frame = pd.DataFrame(rows, columns=["class_id", "class", "n_gt", "n_pred", "tp", "precision", "recall", "ap50",
                                        "ap50_95"])
    duplicates = partials = 0
    for p, g, t in zip(preds, gts, tp_img):
        fp = p[~t]
        if len(fp) == 0 or len(g) == 0:
            continue
        same_class = fp.class_id[:, None] == g.class_id[None, :]
        dup = ((box_iou(fp.xyxy, g.xyxy) >= 0.5) & same_class).any(axis=1)
        inside = _inside_fraction(fp.xyxy, g.xyxy) >= 0.7
        duplicates += int(dup.sum())
        partials += int((~dup & inside.any(axis=1)).sum())
    n_pred = sum(len(p) for p in preds)
    n_gt = sum(len(g) for g in gts)
    tp = int(sum(t.sum() for t in tp_img))
    with_gt = frame[frame["n_gt"] > 0]
    return Evaluation(
        precision=tp / n_pred if n_pred else 0.0,
        recall=tp / n_gt if n_gt else 0.0,
        ap50=float(with_gt["ap50"].mean()) if len(with_gt) else 0.0,
        ap50_95=float(with_gt["ap50_95"].mean()) if len(with_gt) else 0.0,
        per_class=frame,
        tp=tp_img,
        fn=[~m for m in tp_gt],
        duplicates=duplicates,
        partials=partials,
    )


def _inside_fraction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M): the fraction of each box of ``a`` that lies inside each box of ``b``."""
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area = np.clip((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), 1e-9, None)
    return iw * ih / area[:, None]


# -- ground-truth loaders -------------------------------------------------------------------------
# Label files come from users: uploads in the app, paths on the command line. Paths and content have
# separate functions, so uploaded content can never be taken for a path on the server. Every problem
# is a one-line LabelError naming the file and the line (YOLO) or field (COCO), and sizes are capped:
# one upload must not cost minutes of CPU or gigabytes of memory.
class LabelError(ValueError):
    """A label file that cannot be used; the one-line message names the file and the line or field."""


def _env_limit(var: str, default: float, unit: int = 1) -> int:
    """``default * unit``, or ``$var * unit`` when it is a positive number: operators can move a cap without code."""
    raw = os.environ.get(var, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        warnings.warn(f"{var}={raw!r} is not a positive number; using {default:g}", stacklevel=2)
        value = default
    return int(value * unit)


MAX_LABEL_BYTES = _env_limit("PATCHWISE_MAX_LABEL_MB", 20, 1 << 20)  # per label file or upload
MAX_LABEL_ITEMS = _env_limit("PATCHWISE_MAX_LABEL_ITEMS", 200_000)  # YOLO lines; COCO images/annotations/categories
_JSON_CONTAINERS_PER_ITEM = 10  # annotation + bbox + segmentation lists, with room to spare
_MAX_CLASS_ID = 2**31 - 1  # class ids must fit 32 bits (exports, torch)
_MAX_COORD = float(np.finfo(np.float32).max)  # boxes are stored as float32
_MAX_SIDE = 2**30  # larger than any image; keeps clipped pixel coordinates inside OpenCV's int range
_FLUSH_TOKENS = 1 << 16  # YOLO tokens held as strings (~60 bytes each) before conversion to 8-byte floats

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 40
_SHORT.maxlist = _SHORT.maxdict = 5
_SHORT.maxlevel = 2


def _shown(name: str) -> str:
    """The file name as it goes into a one-line message: no control characters, long names shortened."""
    text = "".join(c if c.isprintable() else "?" for c in str(name)[:300])
    return text if len(text) <= 120 else f"{text[:57]}...{text[-60:]}"


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be the file name (a str), got {type(name).__name__}")
    return _shown(name)


def _too_big(size: int, name: str) -> None:
    """Refuse content over MAX_LABEL_BYTES before any parsing: parse cost grows with size."""
    if size > MAX_LABEL_BYTES:
        raise LabelError(f"{name}: {size:,} bytes is over the {MAX_LABEL_BYTES / (1 << 20):g} MB limit for label "
                         "files (PATCHWISE_MAX_LABEL_MB)")


def _too_many(count: int, what: str, name: str) -> None:
    if count > MAX_LABEL_ITEMS:
        raise LabelError(f"{name}: more than {MAX_LABEL_ITEMS:,} {what}, the limit for label files "
                         "(PATCHWISE_MAX_LABEL_ITEMS)")


def _read_label_file(path: str | os.PathLike, parser: str) -> tuple[bytes, str]:
    """(content, shown name) of a label file, read no further than the size cap (a pipe or /dev/zero included)."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected a path, got {type(path).__name__} content: pass content to {parser}(data, name)")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a path (str or os.PathLike), got {type(path).__name__}")
    name = _shown(os.fsdecode(path))
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(MAX_LABEL_BYTES + 1) if size <= MAX_LABEL_BYTES else b""
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        hint = f"; content goes to {parser}(data, name)" if isinstance(path, str) and (
            "\n" in path or path.lstrip()[:1] in ("{", "[")) else ""
        raise LabelError(f"{name}: cannot read the file ({getattr(exc, 'strerror', None) or exc}){hint}") from exc
    _too_big(max(size, len(data)), name)
    return data, name


def _text(data: bytes | str, name: str, loader: str) -> str:
    """Content as text, size-checked first; bytes must be UTF-8 (a BOM is allowed)."""
    if isinstance(data, str):
        _too_big(len(data), name)
        return data.removeprefix("\ufeff")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        hint = f"; for a path use {loader}(path)" if isinstance(data, os.PathLike) else ""
        raise TypeError(f"expected label content (bytes or str), got {type(data).__name__}{hint}")
    raw = bytes(data)
    _too_big(len(raw), name)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise LabelError(f"{name} line {line}: not UTF-8 text (byte {exc.start:,})") from None


def _number(v: float) -> str:
    """A parsed value as the user probably wrote it (-1, 1.5, inf, 1e+308)."""
    return str(int(v)) if math.isfinite(v) and v == int(v) and abs(v) < 1e16 else repr(float(v))


# YOLO txt
def _yolo_fields_ok(n_fields: int) -> bool:
    """class + 4 box values, + an optional confidence, or class + an even number >= 6 of polygon values."""
    return n_fields in (5, 6) or (n_fields >= 7 and n_fields % 2 == 1)


def _yolo_flush(pending: dict, done: dict, problems: list) -> None:
    """Convert held rows to floats, one numpy call per field count (row by row only around a bad row)."""
    for k, (lines, rows) in pending.items():
        try:
            values = np.array(rows, np.float64)
        except ValueError:
            numeric = [_parses(r) for r in rows]
            bad = numeric.index(False)
            problems.append((lines[bad], f"not numbers: {' '.join(rows[bad][:8])[:60]!r}"))
            lines = [n for n, ok in zip(lines, numeric) if ok]
            values = np.array([r for r, ok in zip(rows, numeric) if ok], np.float64).reshape(-1, k)
        done.setdefault(k, []).append((np.array(lines, np.int64), values))
    pending.clear()


def _parses(row: list[str]) -> bool:
    try:
        np.array(row, np.float64)
    except ValueError:
        return False
    return True


def _lines(text: str, name: str) -> list[str]:
    """The lines (any newline convention), refused above MAX_LABEL_ITEMS before the split allocates them."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    _too_many(text.count("\n") + (not text.endswith("\n")), "lines", name)
    return text.split("\n")


def _yolo_tables(text: str, name: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[int, str]]]:
    """(line numbers, float rows) per field count, and the problems found reading them.

    Rows are converted every _FLUSH_TOKENS tokens, so memory stays near 8 bytes per value.
    """
    pending: dict[int, tuple[list[int], list[list[str]]]] = {}
    done: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    problems: list[tuple[int, str]] = []
    held, miscounted = 0, False
    for n, line in enumerate(_lines(text, name), 1):
        parts = line.split()
        if not parts:
            continue
        if not _yolo_fields_ok(len(parts)):
            if not miscounted:  # the first is enough: problems are reported by their line
                values = f"{len(parts) - 1} value{'s' * (len(parts) != 2)}"
                problems.append((n, f"{values} after the class; expected 4 (cx cy w h), 5 (with a confidence) or "
                                    "an even number >= 6 (a polygon)"))
            miscounted = True
            continue
        lines, rows = pending.setdefault(len(parts), ([], []))
        lines.append(n)
        rows.append(parts)
        held += len(parts)
        if held >= _FLUSH_TOKENS:
            _yolo_flush(pending, done, problems)
            held = 0
    _yolo_flush(pending, done, problems)
    return [(np.concatenate([t[0] for t in v]), np.concatenate([t[1] for t in v])) for v in done.values()], problems


def _first_bad(bad: np.ndarray, lines: np.ndarray, problems: list, message) -> None:
    """Record the first row flagged in ``bad`` as (line, message(row index))."""
    if bad.any():
        k = int(np.argmax(bad))
        problems.append((int(lines[k]), message(k)))


def _yolo_check(lines: np.ndarray, values: np.ndarray, problems: list) -> None:
    """Classes must be integers in [0, 2**31); values finite (float32); box sizes not negative."""
    cls, coords = values[:, 0], values[:, 1:]
    _first_bad(~((cls >= 0) & (cls <= _MAX_CLASS_ID) & (cls == np.floor(cls))), lines, problems,
               lambda k: f"class {_number(cls[k])} is not an integer from 0 to {_MAX_CLASS_ID}")
    finite = np.abs(coords) <= _MAX_COORD  # False for NaN too
    _first_bad(~finite.all(axis=1), lines, problems,
               lambda k: f"value {_number(coords[k][~finite[k]][0])} is not a finite number")
    if coords.shape[1] in (4, 5):
        _first_bad((coords[:, 2] < 0) | (coords[:, 3] < 0), lines, problems,
                   lambda k: f"negative box size {_number(coords[k, 2])} x {_number(coords[k, 3])}")


def _yolo_xyxy(values: np.ndarray) -> np.ndarray:
    """Normalized xyxy of box rows (cx cy w h) or polygon rows (the polygon's bounding box)."""
    coords = values[:, 1:]
    if coords.shape[1] in (4, 5):
        cx, cy, bw, bh = coords[:, :4].T
        return np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    pts = coords.reshape(len(coords), -1, 2)
    return np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1)


def _clip_boxes(xyxy: np.ndarray, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes clipped to [0, width] x [0, height], and which still have an area (the others are dropped)."""
    w, h = min(width, _MAX_SIDE), min(height, _MAX_SIDE)
    out = np.clip(xyxy, 0.0, np.array([w, h, w, h]))
    return out, (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])


def _image_size(image_shape: Sequence[int]) -> tuple[int, int]:
    h, w = int(image_shape[0]), int(image_shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"image_shape must be positive (height, width, ...), got {tuple(image_shape)}")
    return h, w


def parse_yolo_labels(data: bytes | str, image_shape: Sequence[int], name: str = "labels.txt", *,
                      names: dict[int, str] | None = None) -> Detections:
    """YOLO txt content (``cls cx cy w h [conf]`` or ``cls x y x y ...`` polygons, normalized) -> pixel boxes.

    ``data`` is content, never a path: uploads must not reach the file system. ``name`` is only used in
    messages. Boxes are clipped to the image (in normalized units, before scaling) and boxes left with
    no area are dropped: a zero-area label can never be matched. Anything malformed is a LabelError.
    """
    name = _check_name(name)
    h, w = _image_size(image_shape)
    tables, problems = _yolo_tables(_text(data, name, "load_yolo_labels"), name)
    for lines, values in tables:
        _yolo_check(lines, values, problems)
    if problems:
        line, message = min(problems, key=lambda p: p[0])  # the first line; on it, the first check failed
        raise LabelError(f"{name} line {line}: {message}")
    if not tables:
        return Detections.empty(names)
    lines = np.concatenate([t[0] for t in tables])
    order = np.argsort(lines, kind="stable")  # back to file order
    xyxy, keep = _clip_boxes(np.concatenate([_yolo_xyxy(t[1]) for t in tables])[order], 1.0, 1.0)
    classes = np.concatenate([t[1][:, 0] for t in tables])[order]
    return Detections(xyxy=(xyxy[keep] * [w, h, w, h]).astype(np.float32), class_id=classes[keep].astype(np.int64),
                      names=dict(names or {}))


def load_yolo_labels(path: str | os.PathLike, image_shape: Sequence[int],
                     names: dict[int, str] | None = None) -> Detections:
    """A YOLO txt file -> pixel boxes (see parse_yolo_labels). A str is always a path; content is refused."""
    data, name = _read_label_file(path, "parse_yolo_labels")
    return parse_yolo_labels(data, image_shape, name, names=names)


# COCO JSON
def _json_type(value: object) -> str:
    kinds = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _json_document(text: str, name: str) -> dict:
    """The top-level object; objects and arrays are counted before parsing, since each costs ~60-100 bytes."""
    containers, limit = text.count("{") + text.count("["), _JSON_CONTAINERS_PER_ITEM * MAX_LABEL_ITEMS
    if containers > limit:
        raise LabelError(f"{name}: {containers:,} JSON objects and arrays is over the limit of {limit:,} "
                         f"({_JSON_CONTAINERS_PER_ITEM} per item at PATCHWISE_MAX_LABEL_ITEMS={MAX_LABEL_ITEMS:,})")
    try:
        doc = json.loads(text)
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
