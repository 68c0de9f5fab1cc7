"""Slicing a labelled dataset for training: tiles written per second and peak memory.

    python -m bench.slicing            # the 70 real photos (../shared/real-visdrone/val, their COCO json) and a
                                       # 20,000 px GeoTIFF
    python -m bench.slicing --quick    # a 4,000 px GeoTIFF only: checks that the script works

Run from the repository root. Each measurement is ``patchwise slice-dataset`` in its own process, so its
peak RSS comes from the kernel (``wait4``); the baseline is the same CLI refusing a missing source (the
interpreter, numpy, OpenCV and this package loaded). The GeoTIFF is the generated aerial raster of
``bench.gigapixel`` with 20,000 generated boxes (COCO json, one image): slicing cost depends on the tiles
written and the objects per tile, not on what the boxes hold.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.gigapixel import ROOT, run_measured, write_raster

VISDRONE = ROOT.parent / "shared" / "real-visdrone" / "val"


def slice_cli(*args) -> tuple[int, float, float, str, str]:
    return run_measured([sys.executable, "-m", "tiling", "slice-dataset", *map(str, args)])


def boxes_coco(path: Path, size: int, n: int, seed: int = 0) -> None:
    """A COCO json of ``n`` boxes (8-80 px) spread over one ``size`` px image."""
    rng = np.random.default_rng(seed)
    wh = rng.uniform(8, 80, (n, 2))
    xy = rng.uniform(0, size - 80, (n, 2))
    anns = [{"id": i + 1, "image_id": 1, "category_id": int(rng.integers(1, 4)), "iscrowd": 0,
             "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h)}
            for i, ((x, y), (w, h)) in enumerate(zip(xy, wh))]
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "raster.tif", "width": size, "height": size}],
                                "annotations": anns,
                                "categories": [{"id": k, "name": n} for k, n in enumerate(("car", "truck", "plane"), 1)]}))


def report_line(what: str, out: Path, rc: int, peak: float, wall: float, err: str, base: float) -> None:
    if rc != 0:
        print(f"{what}: failed: {err.strip().splitlines()[-1] if err.strip() else rc}")
        return
    report = json.loads((out / "report.json").read_text())
    tiles = sum(sum(c.values()) - c.get("skipped", 0) for c in report["tiles"].values())
    print(f"| {what} | {tiles:,} | {wall:.1f} | {tiles / wall:.0f} | {peak * 1024:.0f} | {(peak - base) * 1024:+.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--size", type=int, default=20_000)
    ap.add_argument("--tile", type=int, default=640)
    args = ap.parse_args()
    size = 4_000 if args.quick else args.size
    with tempfile.TemporaryDirectory(prefix="bench-slicing-") as tmp:
        tmp = Path(tmp)
        rc, base, _, _, _ = slice_cli(tmp / "missing", "--out", tmp / "never")
        print(f"baseline (the CLI refusing a missing source): {base * 1024:.0f} MB\n")
        print("| source | tiles written | s | tiles/s | peak MB | over the baseline MB |")
        print("|---|---|---|---|---|---|")
        if not args.quick and (VISDRONE / "labels_coco.json").exists():
            out = tmp / "visdrone"
            rc, peak, wall, _, err = slice_cli(VISDRONE / "labels_coco.json", "--out", out, "--tile-size", args.tile)
            report_line(f"70 VisDrone photos, {args.tile} px", out, rc, peak, wall, err, base)
        elif not args.quick:
            print(f"| (70 VisDrone photos skipped: {VISDRONE} not found) | | | | | |")
        raster = tmp / "raster.tif"
        write_raster(raster, size, scenes=4)
        boxes_coco(tmp / "objects.json", size, 20_000 if size >= 20_000 else 2_000)
        out = tmp / "raster"
        rc, peak, wall, _, err = slice_cli(raster, "--objects", tmp / "objects.json", "--out", out,
                                           "--tile-size", args.tile)
        report_line(f"{size:,} px GeoTIFF, {args.tile} px", out, rc, peak, wall, err, base)


if __name__ == "__main__":
    main()
