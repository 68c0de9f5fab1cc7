"""How time and memory grow: Patchwise vs a peer as the image and the object count grow, and
segmentation on a large image with thousands of instances.

    python -m bench.scaling [--peer patched_yolo_infer] [--sizes 1 4 16 48] [--seg]

Run from the repository root. Every measurement is a fresh process (python -m bench.worker) with
a 12 GB address-space limit.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from scripts.scenes import render_scene, write_scene

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
SHAPES = {1: (1200, 900), 4: (2400, 1700), 16: (4800, 3400), 48: (8000, 6000)}


def scene(w: int, h: int, n: int, seed: int) -> Path:
    path = DATA / f"scale-{w}x{h}-{n}.jpg"
    if not path.exists():
        image, objects = render_scene(w, h, seed=seed, n_objects=n, distractors=0.3)
        write_scene(path, image, objects, quality=90)
    return path


def measure(method: str, image: Path, model: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.worker", "--method", method, "--image", str(image),
                          "--model", str(model)], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        return {"method": method, "error": (out.stderr.strip().splitlines() or ["crashed"])[-1][:200]}
    return json.loads(lines[-1])


def row(label: str, r: dict) -> str:
    if "error" in r:
        return f"| {label} | {r['method']} | failed: {r['error']} | | |"
    return f"| {label} | {r['method']} | {r['seconds']:.1f} | {r['growth_mb']} | {r['objects']} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", default="patched_yolo_infer", help="the fastest peer in bench.peers")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 48])
    ap.add_argument("--objects", type=int, nargs="+", default=[250, 1000, 4000])
    ap.add_argument("--seg", action="store_true", help="only the segmentation memory run")
    args = ap.parse_args()
    det_model = ROOT / "models" / "synth-yolo11n-det.pt"
    seg_model = ROOT / "models" / "synth-yolo11n-seg.pt"
    print("| case | method | seconds | peak MB above the loaded model | objects found |")
    print("|---|---|---|---|---|")
    if not args.seg:
        for mp in args.sizes:
            w, h = SHAPES[mp]
            img = scene(w, h, max(20, w * h // 25_000), seed=mp)
            for m in ("patchwise", args.peer):
                print(row(f"{mp} MP ({w}x{h})", measure(m, img, det_model)), flush=True)
        for n in args.objects:
            img = scene(4800, 3400, n, seed=n)
            for m in ("patchwise", args.peer):
                print(row(f"16 MP, {n} objects", measure(m, img, det_model)), flush=True)
    img = scene(8000, 6000, 2400, seed=86)
    for m in ("patchwise", "supervision", "sahi", "patched_yolo_infer"):
        print(row("seg 8000x6000, 2400 objects", measure(m, img, seg_model)), flush=True)


if __name__ == "__main__":
    main()
