"""Train a demo model from scratch on the CPU, offline (no pretrained download).

From the repository root:

    python -m scripts.make_dataset --out data/synth
    python -m scripts.train --task detect  --data data/synth/data.yaml --epochs 40
    python -m scripts.train --task segment --data data/synth/data.yaml --epochs 40
    python -m scripts.make_dataset --task obb --out data/synth-obb
    python -m scripts.train --task obb --data data/synth-obb/data.yaml --hours 0.9

Training stops early once validation mAP50-95 has not improved for ``--patience`` epochs, or at
``--hours`` (Ultralytics then fits the epoch count and learning-rate schedule to the time). The best
checkpoint (optimizer stripped by Ultralytics) is copied to ``models/``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

CONFIGS = {"detect": "yolo11n.yaml", "segment": "yolo11n-seg.yaml", "obb": "yolo11n-obb.yaml",
           "pose": "yolo11n-pose.yaml"}
OUTPUTS = {"detect": "models/synth-yolo11n-det.pt", "segment": "models/synth-yolo11n-seg.pt",
           "obb": "models/synth-yolo11n-obb.pt", "pose": "models/synth-yolo11n-pose.pt"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=sorted(CONFIGS), required=True)
    ap.add_argument("--data", type=Path, default=Path("data/synth/data.yaml"))
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--hours", type=float, default=0.0, help="train for this long instead of --epochs (0: off)")
    ap.add_argument("--project", type=Path, default=Path("runs/train"))
    args = ap.parse_args()

    from ultralytics import YOLO

    model = YOLO(CONFIGS[args.task], task=args.task)
    start = time.time()
    model.train(
        data=str(args.data), epochs=args.epochs, patience=args.patience, imgsz=args.imgsz,
        batch=args.batch, workers=2, device="cpu", pretrained=False, amp=False, plots=False,
        project=str(args.project.resolve()), name=args.task, exist_ok=True, seed=0, deterministic=False,
        degrees=180.0, flipud=0.5, fliplr=0.5, scale=0.25, mosaic=1.0, close_mosaic=3,
        **({"time": args.hours} if args.hours > 0 else {}),
    )
    minutes = (time.time() - start) / 60
    best = args.project / args.task / "weights" / "best.pt"
    out = Path(OUTPUTS[args.task])
    out.parent.mkdir(exist_ok=True)
    shutil.copyfile(best, out)
    print(f"trained {args.task} in {minutes:.1f} min -> {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
