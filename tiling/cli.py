"""Command line: ``python -m tiling`` (or ``patchwise``) ``predict`` and ``evaluate`` over folders of images.

Images are processed one at a time and results are streamed to disk, so memory stays flat over
thousands of images.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from .grid import EDGES

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


class CliError(Exception):
    """A problem with the user's paths or options: one line, exit code 2."""


def _images(source: str) -> list[Path]:
    path = Path(source)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise CliError(f"{path} is not an image ({', '.join(sorted(IMAGE_SUFFIXES))} expected)")
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise CliError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return found
    raise CliError(f"{source}: no such file or folder")


def _tiling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, help="Ultralytics .pt checkpoint (loaded safely)")
    p.add_argument("--tile", type=int, default=640, help="tile size in pixels (default 640)")
    p.add_argument("--overlap", type=float, default=0.25, help="tile overlap fraction in [0, 0.9) (default 0.25)")
    p.add_argument("--edge", choices=EDGES, default="trim",
                   help="last row/column of tiles: trimmed to the image (default, less work) or full size, shifted back")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    p.add_argument("--iou", type=float, default=0.7, help="the model's own NMS IoU inside each tile (default 0.7)")
    p.add_argument("--merge", choices=("nms", "nmm"), default="nms", help="merge method across tiles (default nms)")
    p.add_argument("--metric", choices=("ios", "iou"), default="ios", help="match metric for merging (default ios)")
    p.add_argument("--merge-threshold", type=float, default=0.5, help="match threshold for merging (default 0.5)")
    p.add_argument("--class-agnostic", action="store_true", help="merge boxes of different classes too")
    p.add_argument("--batch", type=int, default=8, help="tiles per model call (default 8)")
    p.add_argument("--include-full", action="store_true", help="also merge a full-image pass (large objects)")
    p.add_argument("--imgsz", type=int, default=640, help="input size of the full-image pass (default 640)")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse images larger than this many pixels")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="patchwise", description="Patch-based (tiled) inference for detection and segmentation models.",
        epilog="Example: patchwise predict photos/ --model models/synth-yolo11n-det.pt --out results/",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("predict", help="run patch-based inference and write annotated images and labels",
                        description="Run patch-based inference on an image or a folder of images. Writes "
                                    "annotated images, COCO results JSON, YOLO txt labels and a CSV to --out.")
    pr.add_argument("source", help="an image file or a folder of images (searched recursively)")
    _tiling_args(pr)
    pr.add_argument("--out", "-o", default="patchwise-output", help="output folder (default patchwise-output)")
    pr.add_argument("--no-images", action="store_true", help="do not write annotated images")
    ev = sub.add_parser("evaluate", help="score full-image vs patch-based inference against labels",
                        description="Compare full-image and patch-based precision, recall, AP50 and AP50-95 "
                                    "against ground truth: a folder of YOLO .txt files named like the images, "
                                    "or one COCO JSON file.")
    ev.add_argument("source", help="an image file or a folder of images")
    ev.add_argument("--labels", "-l", required=True, help="folder of YOLO .txt labels, or a COCO .json file")
    _tiling_args(ev)
    return parser


def _check_numbers(args) -> None:
    for name, lo, hi in (("conf", 0, 1), ("iou", 0, 1), ("merge_threshold", 0, 1)):
        v = getattr(args, name)
        if not lo <= v <= hi:
            raise CliError(f"--{name.replace('_', '-')} must be in [{lo}, {hi}], got {v}")
    if args.batch < 1:
        raise CliError(f"--batch must be >= 1, got {args.batch}")
    if args.tile < 1:
        raise CliError(f"--tile must be >= 1, got {args.tile}")
    if not 0 <= args.overlap < 0.9:
        raise CliError(f"--overlap must be in [0, 0.9), got {args.overlap}")


def _load(args):
    import tiling

    if not Path(args.model).exists() and Path(args.model).name == args.model and not args.model.endswith(".pt"):
        raise CliError(f"{args.model}: no such model file")
    try:
        return tiling.load_model(args.model)
    except tiling.ModelError as exc:
        raise CliError(str(exc)) from None


def _predict_one(args, model, image, conf: float | None = None):
    import tiling

    return tiling.predict_tiled(image, model, tile_size=args.tile, overlap=args.overlap,
                                conf=args.conf if conf is None else conf,
                                iou=args.iou, merge=args.merge, metric=args.metric,
                                merge_threshold=args.merge_threshold, class_agnostic=args.class_agnostic,
                                batch_size=args.batch, include_full=args.include_full, full_imgsz=args.imgsz,
                                edge=args.edge)


def cmd_predict(args) -> int:
    import cv2
    from tqdm import tqdm

    import tiling
    from tiling.export import coco_categories

    _check_numbers(args)
    images = _images(args.source)
    model = _load(args)
    out = Path(args.out)
    try:
        (out / "labels").mkdir(parents=True, exist_ok=True)
        if not args.no_images:
            (out / "annotated").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot write to {out}: {exc.strerror}") from None
    root = Path(args.source) if Path(args.source).is_dir() else Path(args.source).parent
    failures = 0
    n_objects = 0
    with open(out / "detections.csv", "w", newline="") as csv_file, open(out / "coco_results.json", "w") as coco:
        writer = None
        coco.write("[")
        first = True
        images_meta = []
        for image_id, path in enumerate(tqdm(images, desc="images", unit="img", file=sys.stderr), 1):
            rel = path.relative_to(root).as_posix()
            try:
                image = tiling.read_image(path, max_pixels=args.max_pixels)
                pred = _predict_one(args, model, image)
            except (tiling.ImageError, ValueError) as exc:
                tqdm.write(f"skipped {rel}: {exc}", file=sys.stderr)
                failures += 1
                continue
            det = pred.detections
            n_objects += len(det)
            images_meta.append({"id": image_id, "file_name": rel, "height": image.shape[0], "width": image.shape[1]})
            frame = det.to_dataframe()
            frame.insert(0, "image", rel)
            if writer is None:
                writer = csv.writer(csv_file)
                writer.writerow(frame.columns)
            writer.writerows(frame.itertuples(index=False))
            for rec in tiling.to_coco(det, image_id=image_id):
                coco.write(("" if first else ",") + "\n" + json.dumps(rec))
                first = False
            stem = Path(rel).with_suffix("")
            label_path = out / "labels" / f"{stem}.txt"
            label_path.parent.mkdir(parents=True, exist_ok=True)
            label_path.write_text(tiling.to_yolo_txt(det, image.shape))
            if not args.no_images:
                img_path = out / "annotated" / f"{stem}.jpg"
                img_path.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(img_path), tiling.draw_detections(image, det), [cv2.IMWRITE_JPEG_QUALITY, 90])
        coco.write("\n]\n")
    (out / "coco_images.json").write_text(json.dumps({"images": images_meta,
                                                      "categories": coco_categories(model.names)}, indent=1))
    print(f"{len(images) - failures} images, {n_objects} objects -> {out}"
          + (f" ({failures} skipped)" if failures else ""))
    return 1 if failures == len(images) else 0


def _labels_for(labels: str, images: Sequence[Path], root: Path, shapes: dict):
    import tiling

    path = Path(labels)
    if path.is_file() and path.suffix.lower() == ".json":
        try:
            by_name = tiling.load_coco_labels(path)
        except (ValueError, KeyError, TypeError) as exc:
            raise CliError(f"{path}: not a COCO annotations file ({exc})") from None
        return lambda p: by_name.get(p.relative_to(root).as_posix(), by_name.get(p.name))
    if path.is_dir():
        def yolo(p: Path):
            for cand in (path / p.relative_to(root).with_suffix(".txt"), path / f"{p.stem}.txt"):
                if cand.exists():
                    return tiling.load_yolo_labels(cand, shapes[p])
            return None
        return yolo
    raise CliError(f"{labels}: expected a folder of YOLO .txt files or a COCO .json file")


def cmd_evaluate(args) -> int:
    import pandas as pd
    from tqdm import tqdm

    import tiling

    _check_numbers(args)
    images = _images(args.source)
    model = _load(args)
    root = Path(args.source) if Path(args.source).is_dir() else Path(args.source).parent
    shapes: dict = {}
    lookup = _labels_for(args.labels, images, root, shapes)
    full_preds, tiled_preds, gts = [], [], []
    for path in tqdm(images, desc="images", unit="img", file=sys.stderr):
        try:
            image = tiling.read_image(path, max_pixels=args.max_pixels)
        except tiling.ImageError as exc:
            tqdm.write(f"skipped {path.name}: {exc}", file=sys.stderr)
            continue
        shapes[path] = image.shape
        gt = lookup(path)
        if gt is None:
            tqdm.write(f"skipped {path.name}: no labels found for it", file=sys.stderr)
            continue
        full = tiling.predict_full(image, model, imgsz=args.imgsz, conf=0.001, iou=args.iou)
        tiled = _predict_one(args, model, image, conf=0.001).detections  # the whole curve, for AP
        full_preds.append(full)
        tiled_preds.append(tiled)
        gts.append(gt)
    if not gts:
        raise CliError("no image had labels: check that label files are named like the images")
    rows = []
    for mode, preds in (("full image", full_preds), ("patches", tiled_preds)):
        at_conf = tiling.evaluate([p.filter(conf=args.conf) for p in preds], gts)
        curve = tiling.evaluate(preds, gts)
        rows.append({"mode": mode, "class": "all", "precision": at_conf.precision, "recall": at_conf.recall,
                     "AP50": curve.ap50, "AP50-95": curve.ap50_95})
        per = at_conf.per_class.set_index("class_id")
        for _, r in curve.per_class.iterrows():
            if r["n_gt"]:
                rows.append({"mode": mode, "class": r["class"], "precision": per.loc[r["class_id"], "precision"],
                             "recall": per.loc[r["class_id"], "recall"], "AP50": r["ap50"], "AP50-95": r["ap50_95"]})
    table = pd.DataFrame(rows)
    print(f"{len(gts)} images, {sum(len(g) for g in gts)} labelled objects; precision/recall at conf {args.conf}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return cmd_predict(args) if args.command == "predict" else cmd_evaluate(args)
    except CliError as exc:
        print(f"patchwise {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
