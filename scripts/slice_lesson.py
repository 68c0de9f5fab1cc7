"""The lesson of training on tiles, measured: the demo detector's recipe (scripts/train.py) trained twice
with the same CPU budget on the same large generated scenes, once on the whole images (Ultralytics
downscales each to --imgsz, as a plain training run does) and once on tiles cut by ``tiling.slice_dataset``
at --imgsz, so objects keep their native size. Both are then scored with tiled inference on scenes
neither saw. The SAHI paper's effect (slicing-aided fine-tuning adds most of the gain), at small scale.

    python -m scripts.slice_lesson --hours 0.5                       # the measurement (each arm 0.5 h)
    python -m scripts.slice_lesson --epochs 1 --train 4 --val 1 --test 1 --size 960   # a smoke check

Writes runs/slice_lesson/{whole,tiles}/ (datasets and training runs) and prints one line per arm.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")

import tiling  # noqa: E402
from scripts.scenes import CLASS_NAMES, render_scene, write_scene  # noqa: E402

TRAIN_SEED, VAL_SEED, TEST_SEED = 5_000_000, 6_000_000, 7_000_000  # separate ranges: no scene is in two sets


def write_whole(out: Path, n_train: int, n_val: int, size: int) -> Path:
    """Large scenes with their polygon labels as a YOLO dataset (the whole-image arm trains on it as is)."""
    for split, count, base in (("train", n_train, TRAIN_SEED), ("val", n_val, VAL_SEED)):
        for i in range(count):
            image, objects = render_scene(size, size, seed=base + i)
            path = out / "images" / split / f"scene{i:04d}.jpg"
            write_scene(path, image, objects, quality=92, labels="segment")
            (out / "labels" / split).mkdir(parents=True, exist_ok=True)
            path.with_suffix(".txt").replace(out / "labels" / split / f"scene{i:04d}.txt")
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASS_NAMES))
    yaml = out / "data.yaml"
    yaml.write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return yaml


def train(data: Path, project: Path, name: str, args) -> Path:
    """scripts/train.py's detector recipe; the budget is --hours of CPU time, or --epochs when given."""
    from ultralytics import YOLO

    budget = {"epochs": args.epochs} if args.epochs else {"epochs": 1000, "time": args.hours}
    YOLO("yolo11n.yaml", task="detect").train(
        data=str(data), imgsz=args.imgsz, batch=16, workers=2, device="cpu", pretrained=False, amp=False,
        plots=False, project=str(project.resolve()), name=name, exist_ok=True, seed=0, deterministic=False,
        patience=1000, degrees=180.0, flipud=0.5, fliplr=0.5, scale=0.25, mosaic=1.0, close_mosaic=3,
        verbose=False, **budget)
    return project / name / "weights" / "best.pt"


def score(weights: Path, n_test: int, size: int, tile_size: int) -> tiling.Evaluation:
    """AP of tiled inference (tiles of the training size, a quarter overlap) on scenes neither arm saw."""
    model = tiling.load_model(str(weights), runtime="torch")
    preds, truth = [], []
    for i in range(n_test):
        image, objects = render_scene(size, size, seed=TEST_SEED + i)
        preds.append(tiling.predict_tiled(image, model, tile_size=tile_size, overlap=0.25, conf=0.05).detections)
        boxes = np.array([o.box for o in objects], np.float32).reshape(-1, 4)
        truth.append(tiling.Detections(xyxy=boxes, class_id=np.array([o.class_id for o in objects]),
                                       names=dict(enumerate(CLASS_NAMES))))
    return tiling.evaluate(preds, truth)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/slice_lesson"))
    ap.add_argument("--train", type=int, default=60, help="large training scenes (default 60)")
    ap.add_argument("--val", type=int, default=8, help="large validation scenes for training (default 8)")
    ap.add_argument("--test", type=int, default=6, help="large scenes to score on, seen by neither (default 6)")
    ap.add_argument("--size", type=int, default=1600, help="side of every scene in pixels (default 1600)")
    ap.add_argument("--imgsz", type=int, default=320, help="network input and tile size (default 320)")
    ap.add_argument("--hours", type=float, default=0.5, help="CPU budget of each arm (default 0.5)")
    ap.add_argument("--epochs", type=int, default=0, help="train this many epochs instead of --hours (smoke checks)")
    args = ap.parse_args()
    whole = write_whole(args.out / "whole" / "data", args.train, args.val, args.size)
    tiles_dir = args.out / "tiles" / "data"
    report = tiling.slice_dataset(whole, tiles_dir, tile_size=args.imgsz, overlap=0.25, overwrite=True)
    print(report.summary())
    for arm, data in (("whole", whole), ("tiles", tiles_dir / "data.yaml")):
        start = time.time()
        best = train(data, args.out / arm, "train", args)
        minutes = (time.time() - start) / 60
        ev = score(best, args.test, args.size, args.imgsz)
        print(f"{arm}: trained {minutes:.1f} min; tiled inference on {args.test} unseen {args.size} px scenes: "
              f"AP50 {ev.ap50:.3f}, AP50-95 {ev.ap50_95:.3f}, recall {ev.recall:.3f}")


if __name__ == "__main__":
    main()
