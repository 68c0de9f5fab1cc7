"""A gigapixel GeoTIFF through the command line: peak memory and time per tile, streamed vs in memory.

    python -m bench.gigapixel            # 40,000 x 40,000 px (4.8 GB decoded); about an hour on 2 cores
    python -m bench.gigapixel --quick    # 4,000 x 4,000 px: checks that the script works, in a minute

Run from the repository root. Targets: peak RSS under 1.5 GB above the loaded model, time per tile
within 1.1x of the same tiles cut from an in-memory array.

1. Writes a tiled (512 px blocks), DEFLATE-compressed, georeferenced RGB GeoTIFF (BigTIFF) of
   generated aerial scenes (``scripts/scenes.py``: cars, trucks, planes among clutter) into a
   temporary folder, strip by strip: the whole raster is never in memory here either.
2. Runs ``python -m tiling predict raster.tif --model ... --out ...`` in a subprocess, and takes its
   peak RSS from the kernel (``wait4``) and its time per tile from the line the CLI prints after
   the tiles (the tile loop alone: reading, model, merging; not the model's loading).
3. The baseline subprocess loads the same model and runs one batch of tiles: the memory of the
   loaded model, which the CLI's peak is compared with.
4. The reference subprocess decodes the raster's top rows of tiles (all of it with --quick) into an
   in-memory array and runs ``tiling.predict_tiled`` on it with the same settings: time per tile
   on the same tiles, cut from memory.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
BLOCK = 512  # px: the GeoTIFF's internal tiles
SCENE = 2048  # px: side of each generated scene; the raster repeats a few of them, shifted
TILE_LINE = re.compile(r"(\d+) tiles in ([\d.]+) s, (\d+) ms a tile")


def write_raster(path: Path, size: int, scenes: int, seed: int = 0) -> float:
    """A size x size RGB GeoTIFF of generated scenes, written one strip of scenes at a time; seconds taken."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from scripts.scenes import render_scene

    t0 = time.perf_counter()
    pool = [render_scene(SCENE, SCENE, seed + k)[0][..., ::-1] for k in range(scenes)]  # BGR -> RGB
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", tiled=True, blockxsize=BLOCK,
                   blockysize=BLOCK, compress="deflate", predictor=2, BIGTIFF="YES", photometric="RGB",
                   crs="EPSG:32633", transform=from_origin(500_000.0, 4_500_000.0, 0.1, 0.1))
    with rasterio.Env(GDAL_CACHEMAX=256 * 2**20), rasterio.open(path, "w", **profile) as ds:
        for r, y0 in enumerate(range(0, size, SCENE)):
            h = min(SCENE, size - y0)
            strip = np.empty((3, h, size), np.uint8)
            for c, x0 in enumerate(range(0, size, SCENE)):
                w = min(SCENE, size - x0)
                scene = pool[(r * 7 + c * 3) % len(pool)]
                strip[:, :, x0 : x0 + w] = np.moveaxis(scene[:h, :w], 2, 0)
            ds.write(strip, window=Window(0, y0, size, h))
            print(f"  wrote rows {y0 + h:,} of {size:,}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    return time.perf_counter() - t0


def run_measured(cmd: list[str]) -> tuple[int, float, float, str, str]:
    """(return code, peak RSS in GB, wall seconds, stdout, stderr) of a subprocess."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return proc.returncode, usage.ru_maxrss / 2**20, wall, out.read(), err.read()


def baseline(model: str, tile: int, batch: int) -> None:
    """(Subprocess) load the model and run one batch of tiles: the loaded model's memory."""
    import numpy as np

    import tiling

    m = tiling.load_model(model)
    tiles = [np.full((tile, tile, 3), 90, np.uint8) for _ in range(batch)]
    m.predict(tiles, tiling.InferSpec(batch_size=batch))
    print(json.dumps({"ok": True}))


def reference(raster: str, model: str, tile: int, overlap: float, batch: int, rows: int) -> None:
    """(Subprocess) the raster's top ``rows`` rows of tiles decoded into memory, run by predict_tiled."""
    import rasterio
    from rasterio.windows import Window

    import tiling

    spec = tiling.TileSpec(tile_size=tile, overlap=overlap)
    with rasterio.open(raster) as ds:
        plan = spec.plan((ds.height, ds.width))
        bottom = max(t.y1 for t in plan if t.row < rows)
        image = ds.read(window=Window(0, 0, ds.width, bottom))[::-1].transpose(1, 2, 0).copy()  # RGB -> BGR
    m = tiling.load_model(model)
    infer = tiling.InferSpec(batch_size=batch)
    tiling.predict_tiled(image[:tile, : tile * batch], m, spec, infer)  # warm-up: compile, first allocations
    t0 = time.perf_counter()
    pred = tiling.predict_tiled(image, m, spec, infer)
    seconds = time.perf_counter() - t0
    print(json.dumps({"tiles": len(pred.tiles), "seconds": seconds, "objects": len(pred.detections),
                      "shape": list(image.shape[:2])}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a 4,000 px raster: proves the script runs, in a minute")
    ap.add_argument("--size", type=int, default=None, help="raster side in px (default 40,000; 4,000 with --quick)")
    ap.add_argument("--model", default=str(ROOT / "models" / "synth-yolo11n-det.pt"))
    ap.add_argument("--tile", type=int, default=640)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ref-rows", type=int, default=8, help="rows of tiles the in-memory reference runs (default 8)")
    ap.add_argument("--scenes", type=int, default=12, help="distinct generated scenes the raster is tiled with")
    ap.add_argument("--tmp-dir", default=None, help="where the temporary folder goes (the 40,000 px raster takes "
                                                    "a few GB; default: the system's temp folder)")
    ap.add_argument("--_baseline", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_reference", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._baseline:
        return baseline(args.model, args.tile, args.batch)
    if args._reference:
        return reference(args._reference, args.model, args.tile, args.overlap, args.batch, args.ref_rows)
    size = args.size or (4000 if args.quick else 40_000)
    ref_rows = 10**6 if args.quick else args.ref_rows  # --quick: the whole raster, exactly the same tiles

    with tempfile.TemporaryDirectory(prefix="patchwise-gigapixel-", dir=args.tmp_dir) as tmp:
        raster = Path(tmp) / f"ortho-{size}.tif"
        print(f"writing a {size:,} x {size:,} GeoTIFF to {raster} ...", file=sys.stderr)
        write_s = write_raster(raster, size, args.scenes)
        print(f"raster: {size:,} x {size:,} px ({3 * size * size / 1e9:.2f} GB decoded), "
              f"{raster.stat().st_size / 1e9:.2f} GB on disk, written in {write_s:.0f} s")
        me = [sys.executable, "-m", "bench.gigapixel", "--model", args.model, "--tile", str(args.tile),
              "--overlap", str(args.overlap), "--batch", str(args.batch)]
        run_measured(me + ["--_baseline"])  # the first load may export the model for this CPU: not counted
        code, base_gb, _, out, err = run_measured(me + ["--_baseline"])
        if code:
            sys.exit(f"baseline failed:\n{err}")
        print(f"loaded model (one batch run): peak RSS {base_gb:.2f} GB")

        cli = [sys.executable, "-m", "tiling", "predict", str(raster), "--model", args.model, "--out",
               str(Path(tmp) / "out"), "--tile-size", str(args.tile), "--overlap", str(args.overlap),
               "--batch-size", str(args.batch)]
        code, cli_gb, wall, out, err = run_measured(cli)
        found = TILE_LINE.findall(err)
        if code or not found:
            sys.exit(f"the CLI failed ({code}):\n{err[-3000:]}")
        tiles, tile_s = int(found[-1][0]), float(found[-1][1])
        per_stream = tile_s / tiles
        features = sum(1 for _ in open(Path(tmp) / "out" / "geojson" / f"{raster.stem}.geojson")) - 2
        print(f"CLI: {tiles:,} tiles in {tile_s:.0f} s ({1000 * per_stream:.1f} ms a tile), {wall:.0f} s in all; "
              f"{features:,} GeoJSON features; peak RSS {cli_gb:.2f} GB = {cli_gb - base_gb:+.2f} GB above the "
              "loaded model (target: under 1.5 GB)")

        code, _, _, out, err = run_measured(me + ["--ref-rows", str(ref_rows), "--_reference", str(raster)])
        if code:
            sys.exit(f"the in-memory reference failed:\n{err[-3000:]}")
        ref = json.loads(out.strip().splitlines()[-1])
        per_memory = ref["seconds"] / ref["tiles"]
        print(f"in memory: predict_tiled on the top {ref['shape'][0]:,} x {ref['shape'][1]:,} px, {ref['tiles']:,} "
              f"tiles in {ref['seconds']:.1f} s ({1000 * per_memory:.1f} ms a tile)")
        print(f"streamed / in memory, time per tile: {per_stream / per_memory:.3f}x (target: within 1.1x)")


if __name__ == "__main__":
    main()
