"""Merge speed and memory: 20,000 raw boxes (5,000 objects, each seen by about 4 tiles).

    python -m bench.merge_speed                # from the repository root

Prints time and peak traced memory of tiling.merge (NMS and NMM, IoU and IoS) and, as a baseline
in the same run, torchvision's batched_nms (IoU only), then how time and memory grow with N.
"""
from __future__ import annotations

import time
import tracemalloc

import numpy as np

import tiling


def raw_boxes(n_objects: int, views: int = 4, seed: int = 0) -> tiling.Detections:
    """Objects on a large canvas, each reported ``views`` times with jitter; a third of the copies cut."""
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(n_objects) * 60)
    xy = rng.uniform(0, side, (n_objects, 2))
    wh = rng.uniform(8, 40, (n_objects, 2))
    boxes = np.repeat(np.c_[xy, xy + wh], views, axis=0) + rng.normal(0, 1.0, (n_objects * views, 4))
    cut = rng.random(len(boxes)) < 0.33
    boxes[cut, 2] = boxes[cut, 0] + (boxes[cut, 2] - boxes[cut, 0]) * rng.uniform(0.3, 0.8, cut.sum())
    return tiling.Detections(xyxy=boxes.astype(np.float32), confidence=rng.uniform(0.3, 1.0, len(boxes)),
                             class_id=np.repeat(rng.integers(0, 3, n_objects), views),
                             data={"truncated": cut})


def measure(fn, repeats: int = 5) -> tuple[float, float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return float(np.median(times)), peak / 1e6


def main() -> None:
    import torch
    import torchvision

    det = raw_boxes(5000)
    print(f"{len(det)} raw boxes from 5000 objects\n")
    print(f"{'method':<34}{'median s':>10}{'peak MB':>10}{'kept':>8}")
    boxes, scores, cls = torch.from_numpy(det.xyxy), torch.from_numpy(det.confidence), torch.from_numpy(det.class_id)
    t, mem = measure(lambda: torchvision.ops.batched_nms(boxes, scores, cls, 0.5))
    kept = len(torchvision.ops.batched_nms(boxes, scores, cls, 0.5))
    print(f"{'torchvision batched_nms (IoU)':<34}{t:>10.3f}{mem:>10.1f}{kept:>8}")
    for method in ("nms", "nmm"):
        for metric in ("iou", "ios"):
            t, mem = measure(lambda: tiling.merge(det, method=method, metric=metric, threshold=0.5, conf=0))
            kept = len(tiling.merge(det, method=method, metric=metric, threshold=0.5, conf=0))
            print(f"{'tiling.merge ' + method + '/' + metric:<34}{t:>10.3f}{mem:>10.1f}{kept:>8}")
    print("\nscaling (tiling.merge nmm/ios):")
    print(f"{'raw boxes':>10}{'median s':>10}{'peak MB':>10}{'MB per 1k boxes':>17}")
    for n in (2500, 5000, 10000, 20000):
        d = raw_boxes(n)
        t, mem = measure(lambda: tiling.merge(d, method="nmm", metric="ios", threshold=0.5, conf=0), repeats=3)
        print(f"{len(d):>10}{t:>10.3f}{mem:>10.1f}{mem / len(d) * 1000:>17.2f}")


if __name__ == "__main__":
    main()
