"""What ``patchwise predict`` and ``patchwise evaluate`` do, once their options are parsed and checked."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from .cli import CliError, display_name, find_images, load, settings


def _root(source: str) -> Path:
    return Path(source) if Path(source).is_dir() else Path(source).parent


def _prepare_out(out: Path, with_images: bool) -> None:
    try:
        (out / "labels").mkdir(parents=True, exist_ok=True)
        if with_images:
            (out / "annotated").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot write to {display_name(str(out))}: {exc.strerror}") from None


def predict_command(args) -> int:
    import cv2
    from tqdm import tqdm

    import tiling
    from tiling.export import coco_categories

    tiles, infer, merge = settings(args)
    images = find_images(args.source)
    out = Path(args.out)
    _prepare_out(out, not args.no_images)  # a bad --out is reported before the model loads
    model = load(args.model)
    root = _root(args.source)
    failures = n_objects = 0
    images_meta = []
    with open(out / "detections.csv", "w", newline="", encoding="utf-8") as csv_file, \
            open(out / "coco_results.json", "w", encoding="utf-8") as coco:
        writer = None
        coco.write("[")
        first = True
        for image_id, path in enumerate(tqdm(images, desc="images", unit="img", file=sys.stderr), 1):
            rel = path.relative_to(root).as_posix()
            shown = display_name(rel)
            try:
                image = tiling.read_image(path, max_pixels=args.max_pixels)
                pred = tiling.predict_tiled(image, model, tiles, infer, merge)
            except (tiling.ImageError, ValueError) as exc:
                tqdm.write(f"skipped {shown}: {display_name(str(exc))}", file=sys.stderr)
                failures += 1
                continue
            det = pred.detections
            n_objects += len(det)
            images_meta.append({"id": image_id, "file_name": shown, "height": image.shape[0],
                                "width": image.shape[1]})
            frame = det.to_dataframe()
            frame.insert(0, "image", shown)
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
    print(f"{len(images) - failures} images, {n_objects} objects -> {display_name(str(out))}"
          + (f" ({failures} skipped)" if failures else ""))
    return 1 if failures == len(images) else 0


def label_lookup(labels: str, root: Path) -> Callable[[Path, tuple], object]:
    """A function (image path, image shape) -> ground truth ``Detections`` or None; checked before any model loads."""
    import tiling

    path = Path(labels)
    if path.is_file() and path.suffix.lower() == ".json":
        try:
            by_name = tiling.load_coco_labels(path)
        except tiling.LabelError as exc:
            raise CliError(display_name(str(exc))) from None
        return lambda p, shape: by_name.get(p.relative_to(root).as_posix(), by_name.get(p.name))
    if path.is_dir():
        def yolo(p: Path, shape: tuple):
            for cand in (path / p.relative_to(root).with_suffix(".txt"), path / f"{p.stem}.txt"):
                if cand.exists():
                    return tiling.load_yolo_labels(cand, shape)
            return None
        return yolo
    raise CliError(f"{display_name(labels)}: expected a folder of YOLO .txt files or a COCO .json file")


def evaluate_command(args) -> int:
    from dataclasses import replace

    from tqdm import tqdm

    import tiling

    tiles, infer, merge = settings(args)
    images = find_images(args.source)
    root = _root(args.source)
    lookup = label_lookup(args.labels, root)
    model = load(args.model)
    # The model runs to conf 0.001, for the whole precision-recall curve (AP); precision and recall are at --conf.
    curve_infer, curve_merge = replace(infer, conf=0.001), replace(merge, conf=0.001)
    full_preds, tiled_preds, gts = [], [], []
    for path in tqdm(images, desc="images", unit="img", file=sys.stderr):
        shown = display_name(path.name)
        try:
            image = tiling.read_image(path, max_pixels=args.max_pixels)
            gt = lookup(path, image.shape)
        except (tiling.ImageError, tiling.LabelError) as exc:
            tqdm.write(f"skipped {shown}: {display_name(str(exc))}", file=sys.stderr)
            continue
        if gt is None:
            tqdm.write(f"skipped {shown}: no labels found for it", file=sys.stderr)
            continue
        full_preds.append(tiling.predict_full(image, model, curve_infer))
        tiled_preds.append(tiling.predict_tiled(image, model, tiles, curve_infer, curve_merge).detections)
        gts.append(gt)
    if not gts:
        raise CliError("no image had labels: check that label files are named like the images")
    print(f"{len(gts)} images, {sum(len(g) for g in gts)} labelled objects; precision/recall at conf {merge.conf}")
    print(score_table(full_preds, tiled_preds, gts, merge.conf).to_string(
        index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def score_table(full_preds: Sequence, tiled_preds: Sequence, gts: Sequence, conf: float):
    """Precision and recall at ``conf``, AP50 and AP50-95 over the whole curve, overall and per class."""
    import pandas as pd

    import tiling

    rows = []
    for mode, preds in (("full image", full_preds), ("patches", tiled_preds)):
        at_conf = tiling.evaluate([p.filter(conf=conf) for p in preds], gts)
        curve = tiling.evaluate(preds, gts)
        rows.append({"mode": mode, "class": "all", "precision": at_conf.precision, "recall": at_conf.recall,
                     "AP50": curve.ap50, "AP50-95": curve.ap50_95})
        per = at_conf.per_class.set_index("class_id")
        for _, r in curve.per_class.iterrows():
            if r["n_gt"]:
                rows.append({"mode": mode, "class": r["class"], "precision": per.loc[r["class_id"], "precision"],
                             "recall": per.loc[r["class_id"], "recall"], "AP50": r["ap50"], "AP50-95": r["ap50_95"]})
    return pd.DataFrame(rows)
