"""Full-image vs patch-based recall of an oriented-box model on a sample with YOLO-OBB labels.

    python -m scripts.check_obb_sample                      # the bundled OBB model and sample
    python -m scripts.check_obb_sample --image samples/apron-3200x2400.jpg --model models/synth-yolo11n-obb.pt

Independent of ``tiling/``: it runs Ultralytics' own OBB predictions, on the whole image shrunk to
``--imgsz`` and on a plain grid of overlapping tiles (class-aware NMS over Ultralytics' probabilistic
IoU), and matches predictions to labels greedily by confidence at an exact rotated IoU (convex
polygon intersection) of at least 0.5. It checks that the bundled sample does what it is for: the
whole-image pass misses most objects, the patches find them.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")


def read_obb_labels(path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Classes (N,) and corners (N, 4, 2) in pixels from a YOLO-OBB label file."""
    rows = np.array([[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()])
    if rows.size == 0:
        return np.zeros(0, int), np.zeros((0, 4, 2))
    if rows.shape[1] != 9:
        raise SystemExit(f"{path}: expected 9 fields per line (cls and 4 corners), found {rows.shape[1]}")
    return rows[:, 0].astype(int), rows[:, 1:].reshape(-1, 4, 2) * [width, height]


def rotated_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Exact IoU of two convex quadrilaterals (4, 2)."""
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    inter, _ = cv2.intersectConvexConvex(a32, b32)
    union = cv2.contourArea(a32) + cv2.contourArea(b32) - inter
    return float(inter / union) if union > 0 else 0.0


def match(gt_cls, gt_corners, cls, conf, corners, iou: float = 0.5) -> tuple[int, int]:
    """Greedy class-aware matching by confidence; returns (true positives, predictions)."""
    taken = np.zeros(len(gt_cls), bool)
    gt_lo, gt_hi = gt_corners.min(axis=1), gt_corners.max(axis=1)
    tp = 0
    for i in np.argsort(-conf):
        lo, hi = corners[i].min(axis=0), corners[i].max(axis=0)
        near = np.flatnonzero(~taken & (gt_cls == cls[i]) & (gt_lo < hi).all(axis=1) & (gt_hi > lo).all(axis=1))
        if not len(near):
            continue
        ious = [rotated_iou(corners[i], gt_corners[j]) for j in near]
        best = int(np.argmax(ious))
        if ious[best] >= iou:
            taken[near[best]] = True
            tp += 1
    return tp, len(conf)


def _unpack(result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    obb = result.obb
    return obb.cls.numpy().astype(int), obb.conf.numpy(), obb.xywhr.numpy()


def _starts(size: int, tile: int, step: int) -> list[int]:
    starts = list(range(0, max(size - tile, 0) + 1, step))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def predict_tiles(model, image: np.ndarray, tile: int, overlap: float, conf: float, batch: int = 8):
    """Classes, confidences and xywhr of a tiled pass, shifted to the image and merged by rotated NMS."""
    import torch
    from ultralytics.utils.metrics import batch_probiou
    from ultralytics.utils.nms import TorchNMS

    h, w = image.shape[:2]
    step = max(1, int(round(tile * (1 - overlap))))
    origins = [(x, y) for y in _starts(h, tile, step) for x in _starts(w, tile, step)]
    parts = []
    for k in range(0, len(origins), batch):
        chunk = origins[k : k + batch]
        crops = [image[y : y + tile, x : x + tile] for x, y in chunk]
        for (x, y), r in zip(chunk, model.predict(crops, imgsz=tile, conf=conf, verbose=False)):
            c, s, b = _unpack(r)
            b[:, :2] += (x, y)
            parts.append((c, s, b))
    cls = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    boxes = np.concatenate([p[2] for p in parts])
    shifted = torch.from_numpy(boxes.copy())
    shifted[:, :2] += torch.from_numpy(cls[:, None] * 10_000.0).float()  # class-aware
    keep = TorchNMS.fast_nms(shifted, torch.from_numpy(scores), 0.5, iou_func=batch_probiou).numpy()
    return cls[keep], scores[keep], boxes[keep], len(origins)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=Path("samples/apron-3200x2400.jpg"))
    ap.add_argument("--labels", type=Path, help="YOLO-OBB label file (default: the image's .txt)")
    ap.add_argument("--model", type=Path, default=Path("models/synth-yolo11n-obb.pt"))
    ap.add_argument("--imgsz", type=int, default=640, help="the whole-image pass's input size")
    ap.add_argument("--tile", type=int, default=640)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--conf", type=float, default=0.25)
    args = ap.parse_args()
    for path in (args.image, args.model, args.labels or args.image.with_suffix(".txt")):
        if not path.is_file():
            raise SystemExit(f"no such file: {path}")

    from ultralytics import YOLO
    from ultralytics.utils.ops import xywhr2xyxyxyxy

    image = cv2.imread(str(args.image))
    h, w = image.shape[:2]
    gt_cls, gt_corners = read_obb_labels(args.labels or args.image.with_suffix(".txt"), w, h)
    model = YOLO(str(args.model), task="obb")
    full = model.predict(image, imgsz=args.imgsz, conf=args.conf, verbose=False)[0]
    cls, conf, xywhr = _unpack(full)
    runs = {"full image": (cls, conf, xywhr)}
    t_cls, t_conf, t_xywhr, n_tiles = predict_tiles(model, image, args.tile, args.overlap, args.conf)
    runs[f"patches ({n_tiles} x {args.tile} px)"] = (t_cls, t_conf, t_xywhr)
    print(f"{args.image.name}: {w}x{h}, {len(gt_cls)} labelled objects, rotated IoU >= 0.5, conf {args.conf}")
    for name, (c, s, b) in runs.items():
        corners = xywhr2xyxyxyxy(b) if len(b) else np.zeros((0, 4, 2))
        tp, n = match(gt_cls, gt_corners, c, s, np.asarray(corners))
        print(f"  {name:28s} recall {tp / max(len(gt_cls), 1):.3f}  precision {tp / max(n, 1):.3f}  ({n} boxes)")


if __name__ == "__main__":
    main()
