"""Build the training set of the demo models: 320 px tiles of generated scenes with YOLO labels.

Objects keep their native size (8-40 px): the models learn the scale at which patch-based
inference shows them, which is the point of the demo. ``--task`` picks the labels: polygons
(``segment``, which the detector also trains on), oriented boxes (``obb``) or plane keypoints
(``pose``: one class, plane, with nose, tail and wing tips). The images are the same for every task.

    python -m scripts.make_dataset --out data/synth --train 800 --val 160      # from the repository root
    python -m scripts.make_dataset --task obb --out data/synth-obb --train 800 --val 160
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from scripts.scenes import CLASS_NAMES, KEYPOINT_NAMES, render_scene, write_scene

TASKS = ("segment", "obb", "pose")


def build(out: Path, n_train: int, n_val: int, size: int = 320, seed: int = 0, task: str = "segment") -> Path:
    """Write the images, labels and ``data.yaml`` of one dataset; returns the yaml's path."""
    rng = np.random.default_rng(seed)
    for split, count, base in (("train", n_train, 1_000_000), ("val", n_val, 2_000_000)):
        for i in range(count):
            # A spread of densities, including some empty tiles, so the model sees clutter alone.
            n = 0 if rng.random() < 0.06 else int(rng.integers(2, 22))
            clutter = int(rng.integers(2, 25))
            image, objects = render_scene(size, size, seed=base + seed * 10_000 + i, n_objects=n,
                                          n_distractors=clutter)
            stem = f"{split}_{i:05d}"
            write_scene(out / "images" / split / f"{stem}.jpg", image, objects, quality=92, labels=task)
            label = out / "images" / split / f"{stem}.txt"
            dest = out / "labels" / split / f"{stem}.txt"
            dest.parent.mkdir(parents=True, exist_ok=True)
            label.replace(dest)
    yaml = out / "data.yaml"
    if task == "pose":  # planes only; a left-right flip swaps the wing tips
        extra = f"kpt_shape: [{len(KEYPOINT_NAMES)}, 3]\nflip_idx: [0, 1, 3, 2]\n"
        names = "  0: plane"
    else:
        extra = ""
        names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES))
    yaml.write_text(f"path: {out.resolve()}\ntrain: images/train\nval: images/val\n{extra}names:\n{names}\n")
    return yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data/synth"))
    ap.add_argument("--train", type=int, default=800)
    ap.add_argument("--val", type=int, default=160)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--task", choices=TASKS, default="segment", help="label format (default: polygons)")
    args = ap.parse_args()
    print(build(args.out, args.train, args.val, args.size, args.seed, args.task))


if __name__ == "__main__":
    main()
