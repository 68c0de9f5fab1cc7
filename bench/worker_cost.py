"""What running a visitor's model in its worker process costs, against the same model in this process.

    python -m bench.worker_cost [--model models/synth-yolo11n-det.pt] [--image samples/airfield-4000x3000.jpg]
                                [--first-tile 512] [--tile 640] [--runtime auto]     # from the repository root

One run, in this order: the model loaded in this process (``tiling.load_model``) and in a worker
(``tiling.worker.WorkerPool.load``: the worker's start, vetting, export and test tile), each from an empty
export cache, so both pay the same export; then on each, the first result (``predict_tiled`` at
``--first-tile``) and a re-run after a tile-size change to ``--tile`` (the page's slider: the worker keeps the
model, nothing reloads). Then the worker's memory idle (after loading) and busy (peak RSS/PSS while a run
goes, sampled every 20 ms), and last the first load again in a new pool whose spare worker was started ahead
(``WorkerPool.warm``, as the page does when a visitor chooses to upload). Targets (issue #36): the re-run
within 1.2x of in-process at 640 px, the first load within +2 s. Prints a Markdown table for bench/README.md.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class PeakMemory:
    """The highest RSS and PSS of a worker while a block runs, sampled in a thread."""

    def __init__(self, model, every: float = 0.02):
        self.model, self.every, self.peak = model, every, {"rss": 0, "pss": 0}
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            for key, value in self.model.worker_memory().items():
                self.peak[key] = max(self.peak[key], value)

    def __enter__(self):
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def measure(load, image, first_tile: int, tile: int) -> dict:
    """Load, first result, and the re-run after the tile-size change, in seconds."""
    import tiling

    model, load_s = timed(load)
    first, first_s = timed(lambda: tiling.predict_tiled(image, model, tile_size=first_tile, conf=0.05))
    again, again_s = timed(lambda: tiling.predict_tiled(image, model, tile_size=tile, conf=0.05))
    return {"model": model, "load": load_s, "first": first_s, "rerun": again_s, "found": len(again.detections)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "synth-yolo11n-det.pt")
    parser.add_argument("--image", type=Path, default=ROOT / "samples" / "airfield-4000x3000.jpg")
    parser.add_argument("--first-tile", type=int, default=512)
    parser.add_argument("--tile", type=int, default=640)
    parser.add_argument("--runtime", default="auto")
    args = parser.parse_args(argv)
    os.environ["PATCHWISE_CACHE"] = tempfile.mkdtemp(prefix="patchwise-bench-cache-")  # in-process: exports anew too
    import tiling
    from tiling.worker import WorkerLimits, WorkerPool

    data, image = args.model.read_bytes(), tiling.read_image(args.image)
    label = args.model.name
    local = measure(lambda: tiling.load_model(data, name=label, runtime=args.runtime), image, args.first_tile,
                    args.tile)
    pool = WorkerPool(WorkerLimits.from_env())
    try:
        remote = measure(lambda: pool.load(data, label, args.runtime), image, args.first_tile, args.tile)
        idle = remote["model"].worker_memory()
        with PeakMemory(remote["model"]) as busy:
            tiling.predict_tiled(image, remote["model"], tile_size=args.tile, conf=0.05)
    finally:
        pool.close()
    pool = WorkerPool(WorkerLimits.from_env())  # as on the page: a spare worker started while the file is picked
    try:
        pool.warm(wait=True)
        _, warm_load = timed(lambda: pool.load(data, label, args.runtime))
    finally:
        pool.close()
    assert remote["found"] == local["found"], "the worker and this process found different objects"
    mb = 1 / 2**20
    print(f"{label} on {args.image.name}, runtime {local['model'].runtime_label}, {remote['found']} objects\n")
    print("| | in-process | worker | worker / in-process |\n|---|---|---|---|")
    for key, what in (("load", "first load (s)"), ("first", f"first result at {args.first_tile} px (s)"),
                      ("rerun", f"re-run at {args.tile} px (s)")):
        print(f"| {what} | {local[key]:.2f} | {remote[key]:.2f} | {remote[key] / local[key]:.2f}x |")
    print(f"| first load, spare worker started ahead (as the page does) (s) | {local['load']:.2f} | {warm_load:.2f} | "
          f"{warm_load / local['load']:.2f}x |")
    print(f"\nworker memory: idle RSS {idle.get('rss', 0) * mb:.0f} MB, PSS {idle.get('pss', 0) * mb:.0f} MB; "
          f"busy (peak) RSS {busy.peak['rss'] * mb:.0f} MB, PSS {busy.peak['pss'] * mb:.0f} MB")


if __name__ == "__main__":
    main()
