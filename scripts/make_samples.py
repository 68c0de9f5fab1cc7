"""Write the bundled sample images and their YOLO polygon labels to ``samples/``.

    python -m scripts.make_samples             # from the repository root

Each sample is a generated aerial-looking scene (see ``scripts/scenes.py``) large enough that a
full-image pass at imgsz=640 shrinks its 8-40 px objects below what a detector can see.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from scripts.scenes import render_scene, write_scene

SAMPLES = (
    # name, width, height, seed, objects
    ("airfield-4000x3000.jpg", 4000, 3000, 101, 420),
    ("parking-3000x2000.jpg", 3000, 2000, 202, 300),
    ("farmland-4800x2700.jpg", 4800, 2700, 303, 360),
    ("depot-2400x1800.jpg", 2400, 1800, 404, 200),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("samples"))
    ap.add_argument("--quality", type=int, default=85)
    args = ap.parse_args()
    for name, w, h, seed, n in SAMPLES:
        image, objects = render_scene(w, h, seed=seed, n_objects=n, distractors=0.8)
        path = args.out / name
        write_scene(path, image, objects, quality=args.quality)
        print(f"{path}: {w}x{h}, {len(objects)} objects, {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
