"""Build the training set of the demo models: 320 px tiles of generated scenes, YOLO polygon labels.

Objects keep their native size (8-40 px): the models learn the scale at which patch-based
inference shows them, which is the point of the demo.

    python -m scripts.make_dataset --out data/synth --train 800 --val 160      # from the repository root
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from scripts.scenes import CLASS_NAMES, render_scene, write_scene


def build(out: Path, n_train: int, n_val: int, size: int = 320, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, count, base in (("train", n_train, 1_000_000), ("val", n_val, 2_000_000)):
        for i in range(count):
            # A spread of densities, including some empty tiles, so the model sees clutter alone.
            n = 0 if rng.random() < 0.06 else int(rng.integers(2, 22))
            clutter = int(rng.integers(2, 25))
            image, objects = render_scene(size, size, seed=base + seed * 10_000 + i, n_objects=n,
                                          n_distractors=clutter)
            stem = f"{split}_{i:05d}"
            write_scene(out / "images" / split / f"{stem}.jpg", image, objects, quality=92)
            label = out / "images" / split / f"{stem}.txt"
            dest = out / "labels" / split / f"{stem}.txt"
            dest.parent.mkdir(parents=True, exist_ok=True)
            label.replace(dest)
    yaml = out / "data.yaml"
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES))
    yaml.write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data/synth"))
    ap.add_argument("--train", type=int, default=800)
    ap.add_argument("--val", type=int, default=160)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(build(args.out, args.train, args.val, args.size, args.seed))


if __name__ == "__main__":
    main()
