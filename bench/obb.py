"""Oriented boxes: Patchwise against SAHI and supervision on the same OBB model, tiles and merge settings.

From the repository root:

    python -m bench.obb                  # the apron sample + two generated 4000x3000 scenes, 3 repeats
    python -m bench.obb --quick          # one generated 1600x1200 scene, 1 repeat
    python -m bench.obb --model runs/train/obb/weights/best.pt   # another OBB checkpoint

Ground truth is exact: the scene generator's oriented boxes (``scripts.scenes``), or the apron
sample's YOLO-OBB labels. Every method reads the same image file and runs the same checkpoint at the
same tile size, overlap, confidence and model IoU, then merges with class-aware NMS at IoS 0.5, as
``bench.peers`` does for upright boxes. How each merges oriented boxes:

* Patchwise: exact IoS of the rotated rectangles, cut pieces ranked after whole boxes.
* SAHI (0.12): Ultralytics OBB results become polygons, but its postprocess is forced to NMS and
  measures the *upright* boxes around them, so neighbours at an angle can suppress each other.
* supervision (0.31): exact rotated overlap (``oriented_box_iou_batch``) pair by pair.

Scores, all at rotated IoU (``tiling.evaluate`` with oriented boxes on both sides): AP50, recall,
duplicates (false positives over an already-found object of their class at IoU >= 0.5) and cut boxes
(other false positives lying >= 70% inside one labelled object: pieces of an object cut by a tile
edge). Time: wall seconds per image from the file to merged boxes, median of the repeats (model
load excluded); methods alternate inside each repeat. "patchwise" runs its default runtime
(OpenVINO here), "patchwise (torch)" the same PyTorch forward pass as the peers.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("YOLO_OFFLINE", "1")
import numpy as np  # noqa: E402

import tiling  # noqa: E402
from bench.peers import add_method_args, sahi_sliced  # noqa: E402
from tiling.rotated import quads_to_obb  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
Method = Callable[[Path], tiling.Detections]


def oriented(quads, scores, classes, names) -> tiling.Detections:
    """Peers' corner lists (N, 4, 2) as oriented Detections."""
    quads = np.asarray(quads, np.float64).reshape(-1, 4, 2)
    return tiling.Detections.from_obb(quads_to_obb(quads), np.asarray(scores, np.float32).reshape(-1),
                                      np.asarray(classes).reshape(-1), names)


def build_methods(p: argparse.Namespace) -> dict[str, Method]:
    import cv2

    ours = tiling.load_model(p.model)
    ours_torch = tiling.load_model(p.model, runtime="torch")
    if ours.task != "obb":
        raise SystemExit(f"{p.model} is a '{ours.task}' model; this benchmark needs an oriented-box (obb) model")
    names = ours.names
    merge = dict(method="nms", metric="ios", threshold=0.5, class_agnostic=False)
    methods: dict[str, Method] = {}

    def full_image(path):
        return tiling.predict_full(tiling.read_image(path), ours, imgsz=640, conf=p.conf, iou=p.iou)

    def patchwise(path, model=ours):
        return tiling.predict_tiled(tiling.read_image(path), model, tile_size=p.tile, overlap=p.overlap, conf=p.conf,
                                    iou=p.iou, batch_size=p.batch, **merge).detections

    methods["full image (640)"] = full_image
    methods["patchwise"] = patchwise
    methods["patchwise (torch)"] = lambda path: patchwise(path, ours_torch)

    try:
        from sahi import AutoDetectionModel

        sahi_model = AutoDetectionModel.from_pretrained(model_type="ultralytics", model_path=str(p.model),
                                                        confidence_threshold=p.conf, device="cpu", image_size=p.tile)

        def sahi(path):
            res = sahi_sliced(sahi_model, path, p.tile, p.overlap, p.batch)
            preds = res.object_prediction_list
            quads = [np.asarray(o.mask.segmentation[0], np.float64)[:8] for o in preds]
            return oriented(quads, [o.score.value for o in preds], [o.category.id for o in preds], names)

        methods["sahi"] = sahi
    except ImportError as exc:
        print(f"sahi not installed ({exc}); pip install -r bench/requirements.txt")

    try:
        import supervision as sv
        from supervision.config import ORIENTED_BOX_COORDINATES
        from ultralytics import YOLO

        yolo_sv = YOLO(str(p.model), task="obb")

        def callback(tiles):
            results = yolo_sv.predict(list(tiles), imgsz=p.tile, conf=p.conf, iou=p.iou, verbose=False)
            return [sv.Detections.from_ultralytics(r) for r in results]

        slicer = sv.InferenceSlicer(callback=callback, slice_wh=p.tile, overlap_wh=int(round(p.tile * p.overlap)),
                                    overlap_filter=sv.OverlapFilter.NON_MAX_SUPPRESSION, iou_threshold=0.5,
                                    overlap_metric=sv.OverlapMetric.IOS, batch_size=p.batch)

        def supervision(path):
            d = slicer(cv2.imread(str(path)))
            quads = d.data.get(ORIENTED_BOX_COORDINATES, np.zeros((0, 4, 2)))
            return oriented(quads, d.confidence, d.class_id, names)

        methods["supervision"] = supervision
    except ImportError as exc:
        print(f"supervision not installed ({exc}); pip install -r bench/requirements.txt")
    return methods


def scenes(p: argparse.Namespace) -> list[tuple[Path, tiling.Detections]]:
    """(image path, exact oriented ground truth) for each image of the run."""
    from scripts.scenes import render_scene, write_scene

    specs = [("obb-scene-1600x1200.jpg", 1600, 1200, 7101, 80)] if p.quick else [
        ("obb-scene-4000x3000-a.jpg", 4000, 3000, 7201, 450), ("obb-scene-4000x3000-b.jpg", 4000, 3000, 7202, 450)]
    out = []
    for name, w, h, seed, n in specs:
        path = DATA / name
        if not path.exists() or not path.with_suffix(".txt").exists():
            image, objects = render_scene(w, h, seed=seed, n_objects=n, distractors=0.8)
            write_scene(path, image, objects, labels="obb")
        out.append((path, tiling.load_yolo_labels(path.with_suffix(".txt"), (h, w), obb=True)))
    sample = ROOT / "samples" / "apron-3200x2400.jpg"
    if not p.quick and sample.exists():
        out.append((sample, tiling.load_yolo_labels(sample.with_suffix(".txt"), (2400, 3200), obb=True)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_method_args(ap, model=ROOT / "models" / "synth-yolo11n-obb.pt")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    p = ap.parse_args()
    if not p.model.is_file():
        ap.error(f"no model at {p.model}; pass an oriented-box checkpoint with --model")
    if p.quick:
        p.repeats = 1
    methods = build_methods(p)
    images = scenes(p)
    print(f"model {p.model.name}; tile {p.tile}, overlap {p.overlap}, conf {p.conf}, iou {p.iou}, class-aware NMS "
          f"at IoS 0.5; {len(images)} images x {p.repeats} repeats\n")
    for path, gt in images:
        for fn in methods.values():  # warm-up: first-call costs (compiles, thread pools) are not timed
            fn(path)
        times: dict[str, list[float]] = {name: [] for name in methods}
        results: dict[str, tiling.Detections] = {}
        for _ in range(p.repeats):
            for name, fn in methods.items():
                t0 = time.perf_counter()
                results[name] = fn(path)
                times[name].append(time.perf_counter() - t0)
        print(f"{path.name}: {len(gt)} labelled objects")
        print(f"  {'method':<20} {'AP50':>6} {'recall':>7} {'found':>6} {'dupl.':>6} {'cut':>5} {'s/image':>8}")
        for name, det in results.items():
            ev = tiling.evaluate(det, gt)
            print(f"  {name:<20} {ev.ap50:6.3f} {ev.recall:7.3f} {len(det):6d} {ev.duplicates:6d} {ev.partials:5d} "
                  f"{np.median(times[name]):8.2f}")
        print()


if __name__ == "__main__":
    main()
