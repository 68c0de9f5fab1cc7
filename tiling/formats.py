"""Write detections as CSV, JSON, COCO results JSON, YOLO txt (boxes, polygons, YOLO-OBB, pose), DOTA
txt and PNG."""
from __future__ import annotations

import io
import json
from typing import Iterable, Sequence

import cv2
import numpy as np

from .detections import Detections
from .draw import draw_detections
from .names import stem_of

KEYPOINT_VISIBLE = 0.5  # a keypoint confidence from which COCO's visibility is 2 ("labelled and visible")


def mask_polygons(mask: np.ndarray, box: Sequence[int], min_points: int = 3) -> list[np.ndarray]:
    """Outer contours of a box-cropped mask as (K, 2) float arrays in image pixels, largest first."""
    if mask.size == 0 or not mask.any():
        return []
    padded = np.pad(mask.astype(np.uint8), 1)
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for c in sorted(contours, key=cv2.contourArea, reverse=True):
        pts = c.reshape(-1, 2).astype(np.float32) - 1 + np.array([box[0], box[1]], np.float32)
        if len(pts) >= min_points:
            polys.append(pts)
        elif len(pts) > 0:  # a 1-2 pixel blob: its pixel square
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0) + 1
            polys.append(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32))
    return polys


def _records(det: Detections, image: str | None) -> list[dict]:
    rows = []
    corners = det.corners() if det.obb is not None else None
    for k in range(len(det)):
        x0, y0, x1, y1 = (round(float(v), 2) for v in det.xyxy[k])
        row = {
            "class_id": int(det.class_id[k]),
            "class": det.names.get(int(det.class_id[k]), str(int(det.class_id[k]))),
            "confidence": round(float(det.confidence[k]), 5),
            "box": [x0, y0, x1, y1],
        }
        if image is not None:
            row = {"image": image, **row}
        for key, value in det.data.items():
            if value.ndim == 1:
                v = value[k]
                row[key] = v.item() if hasattr(v, "item") else v
        if det.masks is not None:
            row["polygons"] = [np.round(p, 1).reshape(-1).tolist() for p in mask_polygons(det.masks[k], det.mask_boxes[k])]  # type: ignore[index]
        if det.obb is not None:
            cx, cy, bw, bh, angle = (float(v) for v in det.obb[k])
            row["obb"] = {"cx": round(cx, 2), "cy": round(cy, 2), "w": round(bw, 2), "h": round(bh, 2),
                          "angle": round(angle, 5), "angle_deg": round(float(np.degrees(angle)), 3)}
            row["corners"] = np.round(corners[k].astype(np.float64), 2).reshape(-1).tolist()  # type: ignore[index]
        if det.keypoints is not None:
            row["keypoints"] = [[round(float(x), 2), round(float(y), 2), round(float(c), 4)] for x, y, c in det.keypoints[k]]
        rows.append(row)
    return rows


def to_json(results: Detections | dict[str, Detections], indent: int | None = 2) -> str:
    """A JSON list of detections; pass ``{image_name: detections}`` to cover several images."""
    items = results.items() if isinstance(results, dict) else [(None, results)]
    return json.dumps([r for name, det in items for r in _records(det, name)], indent=indent)


def to_csv(results: Detections | dict[str, Detections]) -> str:
    """CSV with one row per detection (and an ``image`` column for several images)."""
    import pandas as pd

    items = results.items() if isinstance(results, dict) else [(None, results)]
    frames = []
    for name, det in items:
        frame = det.to_dataframe()
        if name is not None:
            frame.insert(0, "image", name)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()


def to_coco(results: Detections | Iterable[tuple[int, Detections]], image_id: int = 1,
            category_offset: int = 1) -> list[dict]:
    """COCO *results* records: ``image_id``, ``category_id`` (class + offset), ``bbox`` [x, y, w, h],
    ``score`` and, for masks, polygon ``segmentation``. Loads with pycocotools ``COCO.loadRes``.

    An oriented box is its four corners as the ``segmentation`` polygon, its enclosing box as ``bbox``
    and ``obb`` [cx, cy, w, h, angle in radians]; keypoints are COCO's ``keypoints`` [x, y, score, ...]
    (results carry a score where annotations carry a visibility) with ``num_keypoints``."""
    items = [(image_id, results)] if isinstance(results, Detections) else list(results)
    out = []
    for img_id, det in items:
        corners = det.corners() if det.obb is not None else None
        for k in range(len(det)):
            x0, y0, x1, y1 = (float(v) for v in det.xyxy[k])
            rec = {
                "image_id": int(img_id),
                "category_id": int(det.class_id[k]) + category_offset,
                "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                "score": round(float(det.confidence[k]), 5),
            }
            if det.masks is not None:
                polys = mask_polygons(det.masks[k], det.mask_boxes[k])  # type: ignore[index]
                rec["segmentation"] = [np.round(p, 1).reshape(-1).tolist() for p in polys]
            if corners is not None:
                rec["segmentation"] = [np.round(corners[k].astype(np.float64), 2).reshape(-1).tolist()]
                rec["obb"] = [round(float(v), 5 if i == 4 else 2) for i, v in enumerate(det.obb[k])]  # type: ignore[index]
            if det.keypoints is not None:
                rec["keypoints"] = [round(float(v), 4 if i % 3 == 2 else 2) for i, v in enumerate(det.keypoints[k].reshape(-1))]
                rec["num_keypoints"] = int((det.keypoints[k, :, 2] >= KEYPOINT_VISIBLE).sum())
            out.append(rec)
    return out


def coco_categories(names: dict[int, str], category_offset: int = 1, keypoints: int = 0) -> list[dict]:
    """COCO categories; with ``keypoints`` points, each names them (``kp0``, ``kp1``...) as COCO's pose format asks."""
    extra = {"keypoints": [f"kp{i}" for i in range(keypoints)], "skeleton": []} if keypoints else {}
    return [{"id": int(k) + category_offset, "name": v, **extra} for k, v in sorted(names.items())]


def to_coco_json(results, image_id: int = 1, category_offset: int = 1, indent: int | None = None) -> str:
    return json.dumps(to_coco(results, image_id, category_offset), indent=indent)


def to_yolo_txt(det: Detections, image_shape: Sequence[int], with_conf: bool = False) -> str:
    """YOLO label text, normalized: ``cls cx cy w h`` for boxes, ``cls x y x y ...`` polygons for masks,
    ``cls x1 y1 x2 y2 x3 y3 x4 y4`` for oriented boxes (YOLO-OBB), and for keypoints the box followed by
    ``x y conf`` per point (as Ultralytics writes predictions)."""
    h, w = int(image_shape[0]), int(image_shape[1])
    lines = []
    corners = det.corners() / np.array([w, h], np.float32) if det.obb is not None else None
    for k in range(len(det)):
        cls = int(det.class_id[k])
        polys = mask_polygons(det.masks[k], det.mask_boxes[k]) if det.masks is not None else []  # type: ignore[index]
        if corners is not None:
            body = " ".join(f"{v:.6f}" for v in np.clip(corners[k], 0, 1).reshape(-1))
        elif polys:
            pts = np.clip(polys[0] / np.array([w, h], np.float32), 0, 1)
            body = " ".join(f"{v:.6f}" for v in pts.reshape(-1))
        else:
            x0, y0, x1, y1 = (float(v) for v in det.xyxy[k])
            body = f"{(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"
        if det.keypoints is not None:
            kp = det.keypoints[k] / np.array([w, h, 1], np.float32)
            body += " " + " ".join(f"{x:.6f} {y:.6f} {c:.4f}" for x, y, c in kp)
        line = f"{cls} {body}"
        if with_conf:
            line += f" {float(det.confidence[k]):.5f}"
        lines.append(line)
    return "\n".join(lines) + ("\n" if lines else "")


def to_dota_txt(det: Detections, with_conf: bool = False) -> str:
    """DOTA annotation text, one oriented box a line in pixels: ``x1 y1 x2 y2 x3 y3 x4 y4 class 0``
    (0: not 'difficult'); ``with_conf`` adds the confidence at the end. Upright boxes are written
    as their four corners."""
    lines = []
    for pts, cls, conf in zip(det.corners(), det.class_names, det.confidence):
        name = "-".join(cls.split()) or "object"  # DOTA's fields are split on whitespace
        line = " ".join(f"{v:.1f}" for v in pts.reshape(-1)) + f" {name} 0"
        lines.append(line + (f" {float(conf):.5f}" if with_conf else ""))
    return "\n".join(lines) + ("\n" if lines else "")


def encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("could not encode the image as PNG")
    return buf.tobytes()


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the image as JPEG")
    return buf.tobytes()


def to_coco_dataset(results: dict[str, tuple[Sequence[int], Detections]], names: dict[int, str],
                    category_offset: int = 1) -> dict:
    """A whole COCO file (``images``, ``categories``, ``annotations`` with ``score``), which
    ``pycocotools.coco.COCO`` loads; ``results``: file name -> (image shape, detections). Image ids
    are 1, 2, ... in the order given."""
    images, annotations = [], []
    n_keypoints = 0
    for image_id, (name, (shape, det)) in enumerate(results.items(), 1):
        images.append({"id": image_id, "file_name": name, "height": int(shape[0]), "width": int(shape[1])})
        for k, rec in enumerate(to_coco(det, image_id=image_id, category_offset=category_offset)):
            x, y, w, h = rec["bbox"]
            area = float(det.obb[k, 2] * det.obb[k, 3]) if det.obb is not None else w * h
            if det.keypoints is not None:  # annotations hold COCO visibilities: 2 seen, 0 not
                n_keypoints = det.keypoints.shape[1]
                vis = np.where(det.keypoints[k, :, 2] >= KEYPOINT_VISIBLE, 2, 0)
                kp = np.concatenate([np.round(det.keypoints[k, :, :2].astype(np.float64), 2) * (vis[:, None] > 0),
                                     vis[:, None]], axis=1)
                rec["keypoints"] = [float(v) if i % 3 != 2 else int(v) for i, v in enumerate(kp.reshape(-1))]
            annotations.append({"id": len(annotations) + 1, **rec, "area": round(area, 2), "iscrowd": 0})
    return {"images": images, "categories": coco_categories(names, category_offset, n_keypoints),
            "annotations": annotations}


def results_zip(results: dict[str, tuple[np.ndarray, Detections, Detections]], png: bool = False,
                progress=None) -> bytes:
    """One zip for several images: CSV, JSON, a full COCO file and COCO results (with ``images.json`` mapping
    their image ids to file names), YOLO txt, DOTA txt for oriented boxes, and annotated pictures (JPEG; PNG
    with ``png``).
    ``results``: file name -> (BGR image, full-image detections, patch-based detections). The tables
    hold the patch-based result; pictures show both."""
    import zipfile

    buf = io.BytesIO()
    tiled = {name: t for name, (_, _, t) in results.items()}
    names: dict[int, str] = {}
    for det in tiled.values():
        names.update(det.names)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("detections.csv", to_csv(tiled))
        zf.writestr("detections.json", to_json(tiled))
        dataset = to_coco_dataset({n: (im.shape, t) for n, (im, _, t) in results.items()}, names)
        zf.writestr("coco.json", json.dumps(dataset))
        zf.writestr("coco_results.json", to_coco_json([(i, t) for i, t in enumerate(tiled.values(), 1)]))
        zf.writestr("images.json", json.dumps(dataset["images"], indent=1))
        encode, suffix = (encode_png, "png") if png else (encode_jpeg, "jpg")
        for k, (name, (image, full, det)) in enumerate(results.items(), 1):
            stem = stem_of(name)
            zf.writestr(f"labels/{stem}.txt", to_yolo_txt(det, image.shape))
            if det.obb is not None:
                zf.writestr(f"dota/{stem}.txt", to_dota_txt(det, with_conf=True))
            zf.writestr(f"annotated/{stem}_patches.{suffix}", encode(draw_detections(image, det)))
            zf.writestr(f"annotated/{stem}_full.{suffix}", encode(draw_detections(image, full)))
            if progress is not None:
                progress(k, len(results))
    return buf.getvalue()
