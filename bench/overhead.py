"""Time outside the network's forward passes in predict_tiled (target: under 15% of the total).

    python -m bench.overhead [--image samples/airfield-4000x3000.jpg] [--tile 640] [--batch 8]

Run from the repository root.

Same run, same tiles, same batches, same threads: (1) tiling.predict_tiled end to end, from the
decoded image to merged detections; (2) the model's forward passes alone on pre-built tensors.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
import numpy as np  # noqa: E402

import tiling  # noqa: E402
from tiling.models.base import torch_threads  # noqa: E402
from tiling.tile_run import tile_batches  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default=str(ROOT / "samples" / "airfield-4000x3000.jpg"))
    ap.add_argument("--model", default=str(ROOT / "models" / "synth-yolo11n-det.pt"))
    ap.add_argument("--tile", type=int, default=640)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    image = tiling.read_image(args.image)
    model = tiling.load_model(args.model)
    tiles = tiling.plan_tiles(image.shape, tile_size=args.tile, overlap=args.overlap)
    batches = []
    for batch in tile_batches(tiles, args.batch):  # one tile size per batch, as predict_tiled runs them
        crops = np.stack([image[t.y0 : t.y1, t.x0 : t.x1] for t in batch])
        batches.append(torch.from_numpy(crops).permute(0, 3, 1, 2).flip(1).float().div(255).contiguous())

    def forward_only() -> float:
        with torch_threads(), torch.inference_mode():
            t = time.perf_counter()
            for x in batches:
                model.net(x)
            return time.perf_counter() - t

    def end_to_end() -> tuple[float, tiling.TiledPrediction]:
        t = time.perf_counter()
        pred = tiling.predict_tiled(image, model, tile_size=args.tile, overlap=args.overlap, batch_size=args.batch)
        return time.perf_counter() - t, pred

    end_to_end(), forward_only()  # warm-up
    fwd, e2e = [], []
    for _ in range(args.repeats):  # alternate so drift hits both alike
        fwd.append(forward_only())
        t, pred = end_to_end()
        e2e.append(t)
    f, e = float(np.median(fwd)), float(np.median(e2e))
    h, w = image.shape[:2]
    print(f"{w}x{h} image, {len(tiles)} tiles of {args.tile} px, batch {args.batch}, "
          f"{torch.get_num_threads()} torch threads outside the call\n")
    print(f"forward passes alone        {f:7.3f} s")
    print(f"predict_tiled end to end    {e:7.3f} s   ({len(pred.detections)} objects)")
    print(f"outside the forward passes  {e - f:7.3f} s = {(e - f) / e:.1%} of the total (target < 15%)")
    print("stage timings of the last run:", {k: round(v, 3) for k, v in pred.timings.items()})


if __name__ == "__main__":
    main()
