"""Patchwise vs SAHI, supervision and patched_yolo_infer on real drone photos with real labels:
the benchmark the defaults are chosen on.

From the repository root (the data stay outside the repository, see ../shared/real-visdrone/README.md):

    pip install -r bench/requirements.txt
    python -m bench.real --models yolo11n --auto --few-peers --markdown   # the 70 val photos, 640 and 320 px
    python -m bench.real --data ../shared/real-visdrone                     # the first 4 photos

The 70 VisDrone2019-DET-val photos of ``../shared/real-visdrone/val`` (25 scene sequences; or another
folder, ``--data``), COCO ground truth (person, bicycle, car, motorcycle, bus, truck; the unmapped
VisDrone boxes are iscrowd ignore regions), COCO detectors exported by Ultralytics to OpenVINO INT8
with a fixed 1x3x640x640 input. Every method runs the same IR folder at confidence 0.05 and reads the
same image files; time is wall seconds from the file paths to merged boxes (model load and a warm-up
on one photo excluded), median of ``--repeats``, the methods alternating inside each repeat.

Scoring: pycocotools COCOeval (bbox) on the ground truth file as it is, the six classes only (model
class index -> COCO category id), up to 100,000 detections per image. AP50 is COCO's AP at IoU 0.5
(101-point, averaged over the classes); recall is pycocotools' own per-image matching at IoU 0.5,
as found objects / non-ignored objects of all six classes together; "boxes" counts boxes of the six
classes. A sequence (the file name before its first ``_``) is won by the method with the higher AP50
over its photos; each sequence counts once, whatever its number of photos.

Methods:
  * Patchwise ``tiling.predict_tiled`` at its defaults but the tile size, conf 0.05 and max_det 1000 (as
    the issue measures it); without its full-image pass; at the old defaults (NMS IoS 0.5, no full
    pass); with Soft-NMS; as a two-level pyramid (640 + 320, 320 + 640); ``--auto``: tile_size='auto'.
  * SAHI ``get_sliced_prediction`` (overlap 0.2, model IoU 0.7) with its full-image pass, at its
    postprocess default, which it swaps for NMS/IoU 0.5 when the confidence is below 0.1, and with
    GREEDYNMM/IoS 0.5 forced (``force_postprocess_type=True``); without ``--few-peers`` also without
    the full pass.
  * supervision ``InferenceSlicer`` (NMS, IoU 0.5, its default metric), an Ultralytics ``YOLO`` callback.
  * patched_yolo_infer ``MakeCropsDetectThem`` + ``CombineDetections`` (NMS, IoS 0.5, class-aware,
    as ``bench.peers`` runs it); it resizes the whole image so its tiles fill it exactly.

The peers run the IR through Ultralytics' OpenVINO backend (one image per call, LATENCY hint, the
CPU plugin's default precision), which letterboxes every tile to the model's 640 px input: a 320 px
tile is upscaled 2x; Patchwise enlarges tiles to a fixed input the same way. Ultralytics' predict
sets torch to one thread fewer than the cores; the thread count is restored before every timed call,
so every method runs with the same torch threads.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

os.environ.setdefault("YOLO_OFFLINE", "1")
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "real-visdrone"
MODEL_TO_COCO = {0: 1, 1: 2, 2: 3, 3: 4, 5: 6, 7: 8}  # person, bicycle, car, motorcycle, bus, truck
COCO_CATS = sorted(MODEL_TO_COCO.values())
OVERLAP, CONF, IOU = 0.2, 0.05, 0.7
MAX_DETS = 100_000
MAX_DET_TILE = 1000  # the model's boxes per tile, every method (SAHI and the peers keep Ultralytics' 300)


class Out(NamedTuple):
    """One method's answer on one image: merged boxes, and for Patchwise the raw ones before merging."""

    detections: object  # tiling.Detections
    raw: object | None = None
    calls: int = 1  # forward passes of the network (tiles, plus the full image where it runs)


class Score(NamedTuple):
    ap50: float
    recall: float
    boxes: int


def cpu_line() -> str:
    """The CPU's model name, cores and the SIMD/matrix extensions the runtimes can use, from lscpu."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"CPU: lscpu not available; {os.cpu_count()} logical CPUs"
    info = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}
    flags = set(info.get("Flags", "").split())

    def have(label: str, names: list[str]) -> str:
        found = [n for n in names if n in flags]
        return f"{label} {'yes (' + ', '.join(found) + ')' if found else 'no'}"

    return (f"CPU: {info.get('Model name', '?')}, {os.cpu_count()} logical CPUs; "
            + "; ".join([have("AVX2", ["avx2"]), have("AVX-512", ["avx512f", "avx512bw", "avx512_bf16", "avx512_fp16"]),
                         have("VNNI", ["avx512_vnni", "avx_vnni"]), have("AMX", ["amx_tile", "amx_int8", "amx_bf16"])]))


def coco_score(coco_gt, dets: dict[int, object]) -> Score:
    """AP50 and recall at IoU 0.5 over the six classes by pycocotools; ``dets``: image id -> Detections."""
    from pycocotools.cocoeval import COCOeval

    results = []
    for image_id, d in dets.items():
        for (x0, y0, x1, y1), score, cls in zip(d.xyxy.tolist(), d.confidence.tolist(), d.class_id.tolist()):
            cat = MODEL_TO_COCO.get(int(cls))
            if cat is not None:
                results.append({"image_id": image_id, "category_id": cat, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "score": float(score)})
    if not results:
        return Score(0.0, 0.0, 0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ev = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        ev.params.imgIds = sorted(dets)
        ev.params.catIds = COCO_CATS
        ev.params.iouThrs = np.array([0.5])
        ev.params.maxDets = [MAX_DETS]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][0, :, :, 0, -1]  # recall thresholds x classes, area "all", the one maxDets
    ap50 = float(np.mean(precision[precision > -1])) if (precision > -1).any() else 0.0
    found = total = 0
    for e in ev.evalImgs:  # per image and class; area ranges in order, "all" first
        if e is None or list(e["aRng"]) != list(ev.params.areaRng[0]):
            continue
        keep = ~np.asarray(e["gtIgnore"], bool)
        found += int(((np.asarray(e["gtMatches"])[0] > 0) & keep).sum())
        total += int(keep.sum())
    gt_total = sum(1 for a in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=sorted(dets), catIds=COCO_CATS, iscrowd=False)))
    return Score(ap50, found / max(gt_total, total, 1), len(results))


def tile_only(raw):
    """The raw detections that came from tiles (not from the full-image pass)."""
    return raw[np.asarray(raw.data["tile_index"]) >= 0]


def build_methods(folder: Path, tiles: list[int], restore_threads: Callable[[], None], notes: list[str],
                  auto: bool = False, few_peers: bool = False):
    """name -> (tile size or None, fn(path) -> Out), in the order they run; peers that fail to load are noted."""
    import cv2

    import tiling
    from bench.peers import to_dets
    from tiling.settings import split_settings

    model = tiling.load_model(folder)
    names = dict(model.names)
    notes.append(f"Patchwise model: {model.runtime} runtime")
    methods: dict[str, tuple[int | None, Callable[[Path], Out]]] = {}

    def full(path):
        return Out(tiling.predict_full(tiling.read_image(path), model, imgsz=640, conf=CONF, iou=IOU))

    methods["full image 640 (Patchwise predict_full)"] = (None, full)

    def patchwise(t, **fields):
        """Patchwise at its defaults but the tile size, conf and max_det (as the issue measures), or ``fields``."""
        tiles_, infer_, merge_ = split_settings(tile_size=t, conf=CONF, max_det=MAX_DET_TILE, **fields)

        def run(path):
            pred = tiling.predict_tiled(tiling.read_image(path), model, tiles=tiles_, infer=infer_, merge=merge_)
            return Out(pred.detections, pred.raw, len(pred.tiles) + pred.infer.include_full)

        return run

    for t in tiles:
        methods[f"Patchwise {t} (defaults)"] = (t, patchwise(t))
        methods[f"Patchwise {t}, no full pass"] = (t, patchwise(t, include_full=False))
        methods[f"Patchwise {t}, NMS IoS 0.5, no full pass (old defaults)"] = (
            t, patchwise(t, include_full=False, method="nms", metric="ios", threshold=0.5))
        methods[f"Patchwise {t}, Soft-NMS"] = (t, patchwise(t, method="soft"))
        if t >= 640:  # the 320 + 640 pyramid is this one: the same two grids
            methods[f"Patchwise {t} + {t // 2} (pyramid)"] = (t, patchwise(t, levels=(t // 2,)))
    if auto:
        methods["Patchwise auto tile size"] = ("auto", patchwise("auto"))

    from ultralytics import YOLO  # noqa: E402  (after Patchwise's own load; it sets no threads at import)

    try:
        from sahi import AutoDetectionModel
        from sahi.predict import LOW_MODEL_CONFIDENCE, get_sliced_prediction
        from sahi.slicing import get_slice_bboxes

        logging.getLogger("sahi").setLevel(logging.ERROR)  # its "switching postprocess" warning, once per call
        sahi_model = AutoDetectionModel.from_pretrained(model_type="ultralytics", model_path=str(folder),
                                                        confidence_threshold=CONF, device="cpu")
        if CONF < LOW_MODEL_CONFIDENCE:
            notes.append(f"SAHI: at confidence {CONF} (< {LOW_MODEL_CONFIDENCE}) get_sliced_prediction replaces its "
                         "default GREEDYNMM/IoS 0.5 with NMS/IoU 0.5; the 'GREEDYNMM forced' rows pass "
                         "force_postprocess_type=True")

        def sahi(t, standard, force):
            def run(path):
                res = get_sliced_prediction(str(path), sahi_model, slice_height=t, slice_width=t,
                                            overlap_height_ratio=OVERLAP, overlap_width_ratio=OVERLAP,
                                            perform_standard_pred=standard, force_postprocess_type=force, verbose=0)
                preds = res.object_prediction_list
                n = len(get_slice_bboxes(res.image_height, res.image_width, t, t, overlap_height_ratio=OVERLAP,
                                         overlap_width_ratio=OVERLAP))
                return Out(to_dets([o.bbox.to_xyxy() for o in preds], [o.score.value for o in preds],
                                   [o.category.id for o in preds], names), None, n + (standard and n > 1))

            return run

        for t in tiles:
            methods[f"SAHI {t} + full (default)"] = (t, sahi(t, True, False))
            methods[f"SAHI {t} + full, GREEDYNMM forced"] = (t, sahi(t, True, True))
            if not few_peers:
                methods[f"SAHI {t}"] = (t, sahi(t, False, False))
                methods[f"SAHI {t}, GREEDYNMM forced"] = (t, sahi(t, False, True))
    except Exception as exc:  # noqa: BLE001  a peer that cannot run is reported, not fatal
        notes.append(f"SAHI could not run: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")

    try:
        import supervision as sv

        yolo_sv = YOLO(str(folder), task="detect")
        sv_calls = [0]

        def callback(tile):
            sv_calls[0] += 1
            return sv.Detections.from_ultralytics(yolo_sv.predict(tile, conf=CONF, iou=IOU, verbose=False)[0])

        def supervision(t):
            slicer = sv.InferenceSlicer(callback=callback, slice_wh=(t, t),
                                        overlap_wh=(round(t * OVERLAP), round(t * OVERLAP)),
                                        overlap_filter=sv.OverlapFilter.NON_MAX_SUPPRESSION, iou_threshold=0.5)

            def run(path):
                sv_calls[0] = 0
                d = slicer(cv2.imread(str(path)))
                return Out(to_dets(d.xyxy, d.confidence, d.class_id, names), None, sv_calls[0])

            return run

        for t in tiles:
            methods[f"supervision {t}"] = (t, supervision(t))
    except Exception as exc:  # noqa: BLE001
        notes.append(f"supervision could not run: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")

    try:
        from patched_yolo_infer import CombineDetections, MakeCropsDetectThem

        yolo_pyi = YOLO(str(folder), task="detect")

        def patched(t):
            def run(path):
                crops = MakeCropsDetectThem(image=cv2.imread(str(path)), model=yolo_pyi, imgsz=640, conf=CONF, iou=IOU,
                                            shape_x=t, shape_y=t, overlap_x=round(OVERLAP * 100),
                                            overlap_y=round(OVERLAP * 100))
                r = CombineDetections(crops, nms_threshold=0.5, match_metric="IOS", class_agnostic_nms=False)
                return Out(to_dets(r.filtered_boxes, r.filtered_confidences, r.filtered_classes_id, names), None,
                           len(crops.crops))

            return run

        for t in tiles:
            methods[f"patched_yolo_infer {t}"] = (t, patched(t))
    except Exception as exc:  # noqa: BLE001
        notes.append(f"patched_yolo_infer could not run: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    restore_threads()
    return methods


def resolve_models(data: Path, wanted: list[str] | None) -> list[Path]:
    where = data / "models" if (data / "models").is_dir() else data.parent / "models"
    folders = sorted(p for p in where.glob("*_openvino_model") if p.is_dir())
    if not wanted:
        return folders
    out = []
    for w in wanted:
        hits = [f for f in folders if f.name == w or f.name.startswith(w + "_")]
        if not hits:
            sys.exit(f"bench.real: no model '{w}' in {data / 'models'} (have: {', '.join(f.name for f in folders)})")
        out.extend(hits)
    return out


def fmt_table(rows: list[list[str]], header: list[str], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def sequence_of(path: Path) -> str:
    """A VisDrone scene sequence: the file name before its first ``_`` (frames of one sequence are alike)."""
    return path.name.split("_")[0]


def per_sequence(coco_gt, dets: dict[int, object], seqs: dict[int, str]) -> dict[str, float]:
    return {s: coco_score(coco_gt, {i: d for i, d in dets.items() if seqs[i] == s}).ap50 for s in sorted(set(seqs.values()))}


def run_model(folder: Path, images: list[tuple[int, Path]], coco_gt, p) -> None:
    import torch

    threads = torch.get_num_threads()

    def restore_threads():
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    notes: list[str] = []
    methods = build_methods(folder, p.tiles, restore_threads, notes, auto=p.auto, few_peers=p.few_peers)
    failed: dict[str, str] = {}
    for name, (_, fn) in list(methods.items()):  # warm-up on one photo: compiles and predictor set-up
        try:
            restore_threads()
            fn(images[0][1])
        except Exception as exc:  # noqa: BLE001
            failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            del methods[name]
    outputs: dict[str, dict[int, Out]] = {}
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(p.repeats):
        for name, (_, fn) in methods.items():
            restore_threads()
            t0 = time.perf_counter()
            out = {i: fn(path) for i, path in images}
            times[name].append(time.perf_counter() - t0)
            outputs[name] = out
    restore_threads()
    seqs = {i: sequence_of(path) for i, path in images}
    scores = {name: coco_score(coco_gt, {i: o.detections for i, o in out.items()}) for name, out in outputs.items()}
    by_seq = {name: per_sequence(coco_gt, {i: o.detections for i, o in out.items()}, seqs) for name, out in outputs.items()}
    sec = {name: float(np.median(t)) for name, t in times.items()}
    header = ["method", "tile", "network calls", "AP50", "recall@0.5", "boxes", f"s ({len(images)} photos)"]
    rows = [[name, str(t or "-"), str(sum(o.calls for o in outputs[name].values())), f"{scores[name].ap50:.3f}",
             f"{scores[name].recall:.3f}", str(scores[name].boxes), f"{sec[name]:.1f}"] for name, (t, _) in methods.items()]
    n_gt = len(coco_gt.getAnnIds(imgIds=[i for i, _ in images], catIds=COCO_CATS, iscrowd=False))
    n_seq = len(set(seqs.values()))
    print(f"\n### {folder.name}: {len(images)} photos, {n_seq} sequences, {n_gt} objects of the six classes; conf {CONF}; "
          f"peers at overlap {OVERLAP}, model IoU {IOU}; Patchwise at its defaults but tile size, conf and max_det "
          f"{MAX_DET_TILE}; seconds: median of {p.repeats}\n")
    print(fmt_table(rows, header, p.markdown))
    print(f"\n#### Against each peer, at the same tile size: AP50 difference, sequences won / lost (of {n_seq})\n")
    ours = [k for k in methods if k.startswith("Patchwise")]
    peers = [k for k in methods if not k.startswith("Patchwise") and methods[k][0] is not None]
    head2 = ["Patchwise", *peers]
    rows2 = []
    for k in ours:
        row = [k]
        for q in peers:
            if methods[q][0] != methods[k][0] and methods[k][0] != "auto":
                row.append("")
                continue
            won = sum(by_seq[k][s] > by_seq[q][s] for s in by_seq[k])
            lost = sum(by_seq[k][s] < by_seq[q][s] for s in by_seq[k])
            row.append(f"{scores[k].ap50 - scores[q].ap50:+.3f}, {won}/{lost}")
        rows2.append(row)
    print(fmt_table(rows2, head2, p.markdown))
    print()
    for t in p.tiles:  # the targets, per tile size
        ours_t = f"Patchwise {t} (defaults)"
        sahi = {k: v for k, v in scores.items() if methods[k][0] == t and k.startswith("SAHI") and "+ full" in k}
        if ours_t not in scores or not sahi:
            print(f"- {t} px: Patchwise defaults or SAHI with its full pass did not run")
            continue
        best = max(sahi, key=lambda k: sahi[k].ap50)
        gain = scores[ours_t].ap50 - sahi[best].ap50
        won = sum(by_seq[ours_t][s] > by_seq[best][s] for s in by_seq[best])
        print(f"- {t} px: defaults AP50 {scores[ours_t].ap50:.3f} vs SAHI's better postprocess {sahi[best].ap50:.3f} "
              f"({best}): {gain:+.3f} ({'met' if gain >= 0.04 else 'NOT met'}: +0.04); sequences won {won} of {n_seq} "
              f"({'met' if won >= 0.75 * n_seq else 'NOT met'}: 75%); {sec[ours_t]:.1f} s vs {sec[best]:.1f} s "
              f"({'faster' if sec[ours_t] < sec[best] else 'NOT faster'})")
    if "Patchwise auto tile size" in scores:
        fixed = {k: v for k, v in scores.items() if k.endswith("(defaults)")}
        best = max(fixed, key=lambda k: fixed[k].ap50)
        a = scores["Patchwise auto tile size"].ap50
        print(f"- auto tile size: AP50 {a:.3f} vs the best fixed size {fixed[best].ap50:.3f} ({best}): {a - fixed[best].ap50:+.3f} "
              f"({'met' if a >= fixed[best].ap50 - 0.01 else 'NOT met'}: within 0.01); {sec['Patchwise auto tile size']:.1f} s")
    for n in notes:
        print(f"- {n}")
    for name, why in failed.items():
        print(f"- {name} could not run: {why}")
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", help="model folders under DATA/models, or their prefixes "
                    "(yolo11n, yolov8n); default: every *_openvino_model folder")
    ap.add_argument("--tiles", nargs="+", type=int, default=[640, 320])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA / "val" if (DEFAULT_DATA / "val").is_dir() else DEFAULT_DATA,
                    help="a folder with images/ and labels_coco.json (default: the 70 val photos; the 4 photos: "
                         "../shared/real-visdrone); the models come from its models/ or its parent's")
    ap.add_argument("--auto", action="store_true", help="also Patchwise with tile_size='auto'")
    ap.add_argument("--few-peers", action="store_true", help="SAHI only with its full pass (the issue's baseline)")
    ap.add_argument("--markdown", action="store_true")
    p = ap.parse_args()
    data = p.data if p.data.is_absolute() else (Path.cwd() / p.data)
    labels = data / "labels_coco.json"
    if not labels.is_file() or not (data / "images").is_dir():
        sys.exit(f"bench.real: no real-visdrone data at {data} (need labels_coco.json, images/ and models/); "
                 "pass --data DIR")
    folders = resolve_models(data, p.models)
    if not folders:
        sys.exit(f"bench.real: no *_openvino_model folder in {data / 'models'} or {data.parent / 'models'}")
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(labels))
    images = [(img["id"], data / "images" / img["file_name"]) for img in coco_gt.dataset["images"]]
    missing = [str(path) for _, path in images if not path.is_file()]
    if missing:
        sys.exit(f"bench.real: images listed in labels_coco.json are missing: {', '.join(missing)}")
    print(cpu_line())
    import openvino
    import torch

    versions = {}
    for mod in ("sahi", "supervision", "patched_yolo_infer", "ultralytics"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod.replace("_", "-"))
        except Exception:  # noqa: BLE001
            versions[mod] = "not installed"
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), openvino {openvino.__version__}, "
          + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"{len(images)} photos" + (": " + ", ".join(path.name for _, path in images) if len(images) <= 8 else ""))
    for folder in folders:
        run_model(folder, images, coco_gt, p)


if __name__ == "__main__":
    main()
