"""Patchwise with 8-bit models against full precision and the peers: same run, same images, same tiles.

From the repository root:

    pip install -r bench/requirements.txt
    python -m bench.int8                  # bundled samples + ../shared/real-visdrone, 640 and 320 px tiles, 3 repeats
    python -m bench.int8 --quick          # one sample, one real photo, 1 repeat (proves the script runs)

Part 1, the bundled detector on the bundled samples (their YOLO labels): ``predict_tiled`` with the
shipped 8-bit copy (``precision="int8"``) and in full precision (OpenVINO fp32), against
patched_yolo_infer, SAHI and supervision run as ``bench.peers`` runs them (the same .pt through
Ultralytics on torch, same tile size, overlap 0.25, conf 0.25, model IoU 0.7, IoS NMS 0.5,
class-aware, batch 8). Seconds per image are the median of ``--repeats`` from the file path to merged
boxes (model load excluded), methods alternating inside each repeat; AP50 is ``tiling.evaluate``'s.
"floor" is the 8-bit network's own forward passes on Patchwise's tiles (best median of batch 1/4/8/16,
all cores, ``bench.peers.floor_method``); "x floor" is ``predict_tiled``'s time per tile over it.

Part 2, when ``--data`` (default ``../shared/real-visdrone``) is present: the real photos and COCO
ground truth, each COCO INT8 detector there (Ultralytics' own INT8 exports, fixed 640x640 input) run by
Patchwise and by the peers on the same IR folder, as ``bench.real`` runs them (overlap 0.2, conf 0.05,
pycocotools AP50 over six classes). When ``yolo11n.pt`` is pre-fetched (``PATCHWISE_WEIGHTS_DIR``),
Patchwise also runs it in full precision and as its own 8-bit copy calibrated on these photos.

The issue's targets, printed per image and tile size: 8-bit ``predict_tiled`` at least 3x faster per
image than the fastest peer; AP50 within 0.01 of Patchwise fp32 and no lower than the best peer's
minus 0.01; per tile within 1.15x of the 8-bit network's floor. The CPU's AVX2/AVX-512/VNNI/AMX flags
are printed first: 8-bit speed depends on them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("YOLO_OFFLINE", "1")
import numpy as np  # noqa: E402

import tiling  # noqa: E402
from bench.peers import best_floor, floor_method  # noqa: E402
from bench.real import DEFAULT_DATA, cpu_line  # noqa: E402
from tiling.imageio import image_size  # noqa: E402
from tiling.models.bundled import BundledAssets  # noqa: E402
from tiling.models.runtimes import Precision  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = BundledAssets(ROOT / "models", ROOT / "samples")  # the shipped 8-bit copies, and the samples
PEERS = ("patched_yolo_infer", "patched_yolo_infer batch", "sahi", "supervision")
SPEEDUP, AP_SLACK, FLOOR_RATIO = 3.0, 0.01, 1.15


def sample_methods(weights: Path, tile: int, int8: tiling.UltralyticsModel, fp32: tiling.UltralyticsModel,
                   batch: int) -> dict:
    """name -> fn(path) returning (detections, tiles run): Patchwise 8-bit and fp32, the peers, the floor."""
    from bench.peers import build_methods

    p = SimpleNamespace(tile=tile, overlap=0.25, conf=0.25, iou=0.7, batch=batch)
    with contextlib.redirect_stdout(io.StringIO()):  # its notes about missing peers are repeated below
        built = build_methods(weights, p)

    def patchwise(model):
        def run(path):
            pred = tiling.predict_tiled(tiling.read_image(path), model, tile_size=tile, overlap=p.overlap, conf=p.conf,
                                        iou=p.iou, method="nms", metric="ios", threshold=0.5, batch_size=batch)
            return pred.detections, len(pred.tiles)

        return run

    methods = {"patchwise 8-bit": patchwise(int8), "patchwise fp32": patchwise(fp32)}
    for name in PEERS:
        if name in built:
            methods[name] = (lambda fn: lambda path: tuple(fn(path)))(built[name])
    methods["_floor"] = floor_method(int8, p)
    return methods


def run_samples(p) -> None:
    weights = p.model
    int8 = tiling.load_model(weights, precision="int8", bundled=BUNDLED)
    fp32 = tiling.load_model(weights)
    print(f"\n## {weights.name} on the bundled samples: {int8.runtime_label} (agreement with full precision "
          f"{int8.agreement}) vs {fp32.runtime_label}; seconds per image: median of {p.repeats}\n")
    if int8.precision is not Precision.INT8:
        print(f"- the 8-bit copy is not in use: {int8.runtime_note}")
    samples = BUNDLED.samples_for(fp32.task)  # oriented-box samples for an OBB model only
    if p.quick:
        samples = [s for s in samples if s.name.startswith("depot")] or samples[:1]
    for tile in p.tiles:
        methods = sample_methods(weights, tile, int8, fp32, p.batch)
        missing = [n for n in PEERS if n not in methods]
        if missing:
            print(f"- not installed here (pip install -r bench/requirements.txt): {', '.join(missing)}")
        for path in samples:
            w, h = image_size(path)
            gt = tiling.load_yolo_labels(path.with_suffix(".txt"), (h, w))
            results, times = timed(methods, path, p.repeats)
            floor_s, floor_bs = best_floor(times.pop("_floor"))
            rows, ap, sec = [], {}, {}
            for name, (dets, n_tiles) in results.items():
                ap[name] = tiling.evaluate(dets, gt).ap50
                sec[name] = float(np.median(times[name]))
                rows.append((name, sec[name], n_tiles, ap[name]))
            print(f"### {path.name}, {tile} px tiles: {len(gt)} objects; 8-bit floor {floor_s:.2f} s "
                  f"(batch {floor_bs}) for {results['patchwise 8-bit'][1]} tiles\n")
            print_table(rows, sec["patchwise 8-bit"])
            ours = results["patchwise 8-bit"][1]
            verdicts(sec, ap, {k: v for k, v in sec.items() if k in PEERS}, "patchwise 8-bit", "patchwise fp32",
                     per_tile=(sec["patchwise 8-bit"] / ours, floor_s / ours))


def timed(methods: dict, path, repeats: int):
    """Each method once to warm up, then ``repeats`` rounds, the methods alternating inside each."""
    results = {name: fn(path) for name, fn in methods.items()}
    times: dict[str, list] = {name: [] for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            if name == "_floor":
                times[name].append(fn(path))
                continue
            t = time.perf_counter()
            results[name] = fn(path)
            times[name].append(time.perf_counter() - t)
    results.pop("_floor", None)
    return results, times


def print_table(rows, ours: float) -> None:
    print("| method | s/image | 8-bit speed-up | tiles | ms/tile | AP50 |")
    print("|---|---|---|---|---|---|")
    for name, sec, tiles, ap in rows:
        print(f"| {name} | {sec:.2f} | {sec / ours:.2f}x | {tiles} | {1000 * sec / max(tiles, 1):.0f} | {ap:.3f} |")
    print()


def verdicts(sec: dict, ap: dict, peers: dict, ours: str, full: str | None, per_tile=None) -> None:
    """The issue's three targets for ``ours``, each with its figures and met / NOT met."""
    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    if peers:
        fastest = min(peers, key=peers.get)
        best = max(peers, key=lambda k: ap[k])
        ratio = sec[fastest] / sec[ours]
        print(f"- speed: the fastest peer ({fastest}) takes {ratio:.2f}x Patchwise's time ({sec[fastest]:.2f} s vs "
              f"{sec[ours]:.2f} s); target {SPEEDUP:.0f}x: {mark(ratio >= SPEEDUP)}")
        print(f"- AP50 vs best peer: {ap[ours]:.3f} vs {ap[best]:.3f} ({best}): "
              f"{mark(ap[ours] >= ap[best] - AP_SLACK)}")
    if full is not None and full in ap:
        print(f"- AP50 vs Patchwise fp32: {ap[ours]:.3f} vs {ap[full]:.3f}: "
              f"{mark(abs(ap[ours] - ap[full]) <= AP_SLACK)}")
    if per_tile is not None:
        mine, floor = per_tile
        print(f"- per tile: {1000 * mine:.1f} ms vs the 8-bit network's own {1000 * floor:.1f} ms = "
              f"{mine / floor:.2f}x; target {FLOOR_RATIO}x: {mark(mine / floor <= FLOOR_RATIO)}")
    print()


def run_real(p) -> None:
    """The real photos: Patchwise and the peers on each COCO INT8 IR; Patchwise fp32 / own 8-bit when possible."""
    from pycocotools.coco import COCO

    from bench.real import build_methods, coco_score, resolve_models
    from tiling.models.official import prefetched

    data = p.data
    if not (data / "labels_coco.json").is_file():
        print(f"\n(no real-visdrone data at {data}: part 2 skipped)")
        return
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(data / "labels_coco.json"))
    images = [(img["id"], data / "images" / img["file_name"]) for img in coco_gt.dataset["images"]]
    images = images[:1] if p.quick else images
    folders = resolve_models(data, None)
    folders = folders[:1] if p.quick else folders
    import torch

    threads = torch.get_num_threads()

    def restore_threads():
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    official = prefetched("yolo11n.pt")
    for folder in folders:
        notes: list[str] = []
        built = build_methods(folder, p.tiles, restore_threads, notes)
        for tile in p.tiles:
            names = {f"Patchwise {tile}": "patchwise (INT8 IR)", f"SAHI {tile}": "sahi",
                     f"supervision {tile}": "supervision", f"patched_yolo_infer {tile}": "patched_yolo_infer"}
            methods = {short: built[k][1] for k, short in names.items() if k in built}
            if official is not None and folder.name.startswith("yolo11n"):
                methods.update(real_own_models(official, [path for _, path in images], tile))
            runs = {name: {} for name in methods}
            times: dict[str, list] = {name: [] for name in methods}
            for name, fn in methods.items():  # warm-up
                restore_threads()
                for i, path in images:
                    fn(path)
            for _ in range(p.repeats):
                for name, fn in methods.items():
                    restore_threads()
                    t = time.perf_counter()
                    out = {i: fn(path) for i, path in images}
                    times[name].append(time.perf_counter() - t)
                    runs[name] = out
            sec = {k: float(np.median(v)) / len(images) for k, v in times.items()}
            ap = {k: coco_score(coco_gt, {i: o.detections for i, o in out.items()}).ap50 for k, out in runs.items()}
            tiles = {k: sum(o.calls for o in out.values()) / len(images) for k, out in runs.items()}
            print(f"\n## {folder.name} on {len(images)} real photo(s), {tile} px tiles (overlap 0.2, conf 0.05)\n")
            print_table([(k, sec[k], round(tiles[k]), ap[k]) for k in methods], sec["patchwise (INT8 IR)"])
            peers = {k: v for k, v in sec.items() if k in ("sahi", "supervision", "patched_yolo_infer")}
            ours = "patchwise own 8-bit" if "patchwise own 8-bit" in sec else "patchwise (INT8 IR)"
            verdicts(sec, ap, peers, ours, "patchwise fp32" if "patchwise fp32" in sec else None)
            if "patchwise fp32" not in sec:
                print("- no fp32 COCO weights here (put yolo11n.pt in PATCHWISE_WEIGHTS_DIR): the 8-bit vs fp32 "
                      "comparison on real photos is not made\n")
        for n in notes:
            print(f"- {n}")


def real_own_models(weights: Path, photos: list[Path], tile: int) -> dict:
    """yolo11n.pt in full precision and as Patchwise's own 8-bit copy, calibrated on the photos themselves."""
    from bench.real import CONF, IOU, OVERLAP, Out

    fp32 = tiling.load_model(weights)
    int8 = tiling.load_model(weights, precision="int8", calibration=photos)

    def run(model):
        def fn(path):
            pred = tiling.predict_tiled(tiling.read_image(path), model, tile_size=tile, overlap=OVERLAP, conf=CONF,
                                        iou=IOU)
            return Out(pred.detections, pred.raw, len(pred.tiles))

        return fn

    return {"patchwise fp32": run(fp32), "patchwise own 8-bit": run(int8)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "synth-yolo11n-det.pt")
    ap.add_argument("--tiles", nargs="+", type=int, default=[640, 320])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true", help="one sample, one real photo and model, 1 repeat")
    ap.add_argument("--no-real", action="store_true", help="the bundled samples only")
    p = ap.parse_args()
    if p.quick:
        p.repeats = 1
    import openvino

    print(cpu_line())
    print(f"openvino {openvino.__version__}; {'quick run' if p.quick else f'{p.repeats} repeats'}")
    run_samples(p)
    if not p.no_real:
        run_real(p)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
