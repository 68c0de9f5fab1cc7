"""Full-image vs patch-based precision, recall and AP50 on the bundled samples and their labels.

    python -m bench.accuracy [--tile 640] [--overlap 0.25] [--conf 0.25] [--markdown]

Run from the repository root.

Precision and recall are at ``--conf``; AP50 is computed from every detection above 0.01.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
import tiling  # noqa: E402
from tiling.models.bundled import BundledAssets  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

MODELS = {"detect": ROOT / "models" / "synth-yolo11n-det.pt", "segment": ROOT / "models" / "synth-yolo11n-seg.pt"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tile", type=int, default=640)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    rows = []
    for task, path in MODELS.items():
        if not path.exists():
            print(f"skipping {task}: {path} missing")
            continue
        model = tiling.load_model(path)
        for sample in BundledAssets(samples_dir=ROOT / "samples").samples_for(task):  # the apron sample is for the OBB model
            image = tiling.read_image(sample)
            gt = tiling.load_yolo_labels(sample.with_suffix(".txt"), image.shape)
            t = time.perf_counter()
            full = tiling.predict_full(image, model, imgsz=args.imgsz, conf=0.01)
            t_full = time.perf_counter() - t
            t = time.perf_counter()
            pred = tiling.predict_tiled(image, model, tile_size=args.tile, overlap=args.overlap, conf=0.01)
            t_tiled = time.perf_counter() - t
            for mode, det, secs in (("full image", full, t_full), ("patches", pred.detections, t_tiled)):
                at_conf = tiling.evaluate(det.filter(conf=args.conf), gt)
                ap50 = tiling.evaluate(det, gt).ap50
                rows.append((task, sample.name, len(gt), mode, at_conf.precision, at_conf.recall, ap50, secs))
    header = ("model", "sample", "objects", "mode", "precision", "recall", "AP50", "seconds")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.3f} | {r[5]:.3f} | {r[6]:.3f} | {r[7]:.1f} |")
    else:
        print(f"{'model':<8}{'sample':<28}{'objects':>8} {'mode':<11}{'prec':>7}{'recall':>8}{'AP50':>7}{'s':>7}")
        for r in rows:
            print(f"{r[0]:<8}{r[1]:<28}{r[2]:>8} {r[3]:<11}{r[4]:>7.3f}{r[5]:>8.3f}{r[6]:>7.3f}{r[7]:>7.1f}")


if __name__ == "__main__":
    main()
