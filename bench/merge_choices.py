"""Which merge metric, threshold and grid: every choice scored on the real photos and on the generated samples.

From the repository root:

    python -m bench.merge_choices --markdown            # real photos (if ../shared/real-visdrone exists) + samples
    python -m bench.merge_choices --quick               # one model, one tile size, two samples

Each tile plan runs the model once; every merge choice is then applied to the same raw tile detections,
so the rows differ only by the merge (and by the grid, for the offset-grid rows). Columns:

* real photos (``bench.real``'s data, by default the 70 val photos, and scoring: pycocotools AP50 over six COCO classes, recall at IoU 0.5
  over all of them): AP50, recall, and **kept** = recall after the merge / recall of the raw tile
  detections, the share of the objects the tiles found that the merge keeps.
* generated samples (exact labels, bundled models): AP50 from every box above 0.01; at confidence 0.25
  the precision, the **duplicates** (false positives on an object already found) and the **partials**
  (false positives lying mostly inside a labelled object: pieces cut at a tile edge).
* tiles and seconds: the model's work per choice of grid (seconds of this run, all photos or samples).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

import numpy as np  # noqa: E402

import tiling  # noqa: E402
from tiling.models.bundled import BundledAssets  # noqa: E402
from bench.real import CONF, DEFAULT_DATA, IOU, OVERLAP, coco_score, cpu_line, fmt_table  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = {"detect": ROOT / "models" / "synth-yolo11n-det.pt", "segment": ROOT / "models" / "synth-yolo11n-seg.pt"}
MERGES = {  # name -> MergeSpec fields (conf is the run's)
    "WBF IoU 0.45 (default)": {},
    "NMS IoU 0.45": {"method": "nms"},
    "NMS IoU 0.5": {"method": "nms", "threshold": 0.5},
    "Soft-NMS IoU 0.45": {"method": "soft"},
    "NMS IoS 0.5 (old default)": {"method": "nms", "metric": "ios", "threshold": 0.5},
    "NMM IoS 0.5": {"method": "nmm", "metric": "ios", "threshold": 0.5},
}
SAMPLE_OVERLAP, SAMPLE_CONF = 0.25, 0.25


def run_plans(model, images: dict, tile: int, overlap: float, conf: float, iou: float):
    """grid name -> (image id -> raw detections, tiles, seconds): each grid's model run, once."""
    out = {}
    for grid, offset in (("one grid", False), ("+ offset grid", True)):
        spec_t = tiling.TileSpec(tile_size=tile, overlap=overlap, offset_grid=offset)
        spec_i = tiling.InferSpec(conf=conf, iou=iou, max_det=1000)  # the full-image pass as by default
        raws, n_tiles, t0 = {}, 0, time.perf_counter()
        for key, image in images.items():
            pred = tiling.predict_tiled(image, model, spec_t, spec_i, tiling.MergeSpec(conf=conf))
            raws[key], n_tiles = pred.raw, n_tiles + len(pred.tiles)
        out[grid] = (raws, n_tiles, time.perf_counter() - t0)
    return out


def real_rows(data: Path, tiles: list[int], quick: bool) -> list[list[str]]:
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(data / "labels_coco.json"))
    images = {img["id"]: tiling.read_image(data / "images" / img["file_name"]) for img in gt.dataset["images"]}
    where = data / "models" if (data / "models").is_dir() else data.parent / "models"
    folders = sorted(where.glob("*_openvino_model"))[: 1 if quick else None]
    rows = []
    for folder in folders:
        model = tiling.load_model(folder)
        for tile in tiles:
            for grid, (raws, n_tiles, secs) in run_plans(model, images, tile, OVERLAP, CONF, IOU).items():
                raw = coco_score(gt, raws)
                rows.append([folder.name.split("_")[0], str(tile), grid, "raw tile detections", f"{raw.ap50:.3f}",
                             f"{raw.recall:.3f}", "-", str(raw.boxes), str(n_tiles), f"{secs:.1f}"])
                for name, fields in MERGES.items():
                    s = coco_score(gt, {i: tiling.merge(r, conf=CONF, **fields) for i, r in raws.items()})
                    kept = f"{s.recall / raw.recall:.1%}" if raw.recall else "-"
                    rows.append(["", "", "", name, f"{s.ap50:.3f}", f"{s.recall:.3f}", kept, str(s.boxes), "", ""])
    return rows


def sample_rows(tiles: list[int], quick: bool) -> list[list[str]]:
    samples = BundledAssets(samples_dir=ROOT / "samples").samples_for("detect")[: 2 if quick else None]  # the upright samples
    images = {s.name: tiling.read_image(s) for s in samples}
    truth = {s.name: tiling.load_yolo_labels(s.with_suffix(".txt"), images[s.name].shape) for s in samples}
    rows = []
    for task, weights in list(BUNDLED.items())[: 1 if quick else None]:
        model = tiling.load_model(weights)
        for tile in tiles:
            for grid, (raws, n_tiles, secs) in run_plans(model, images, tile, SAMPLE_OVERLAP, 0.01, 0.7).items():
                first = True
                for name, fields in MERGES.items():
                    merged = {k: tiling.merge(r, conf=0.01, **fields) for k, r in raws.items()}
                    ap50 = tiling.evaluate(list(merged.values()), [truth[k] for k in merged]).ap50
                    shown = [m.filter(conf=SAMPLE_CONF) for m in merged.values()]
                    at = tiling.evaluate(shown, [truth[k] for k in merged])
                    cut = sum(int(np.asarray(m.data["truncated"])[~tp].sum()) for m, tp in zip(shown, at.tp))
                    worst = max(tiling.evaluate([m], [truth[k]]).duplicates for m, k in zip(shown, merged))
                    rows.append([task if first else "", str(tile) if first else "", grid if first else "", name,
                                 f"{ap50:.3f}", f"{at.precision:.3f}", f"{at.recall:.3f}", f"{at.duplicates} ({worst})",
                                 str(cut), str(at.partials), str(n_tiles) if first else "", f"{secs:.1f}" if first else ""])
                    first = False
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", nargs="+", type=int, default=[640, 320])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA / "val" if (DEFAULT_DATA / "val").is_dir() else DEFAULT_DATA)
    ap.add_argument("--quick", action="store_true", help="one model, one tile size, two samples: checks the script")
    ap.add_argument("--markdown", action="store_true")
    p = ap.parse_args()
    tiles = p.tiles[:1] if p.quick else p.tiles
    print(cpu_line())
    if (p.data / "labels_coco.json").exists():
        print(f"\n### Real photos ({p.data.name}): overlap {OVERLAP}, conf {CONF}, model IoU {IOU}\n")
        print(fmt_table(real_rows(p.data, tiles, p.quick),
                        ["model", "tile", "grid", "merge", "AP50", "recall", "kept", "boxes", "tiles", "s"], p.markdown))
    else:
        print(f"\n(no real photos at {p.data}: skipped)")
    print(f"\n### Generated samples: overlap {SAMPLE_OVERLAP}; precision, recall, duplicates and partials at "
          f"conf {SAMPLE_CONF}\n")
    print(fmt_table(sample_rows(tiles, p.quick),
                    ["model", "tile", "grid", "merge", "AP50", "precision", "recall", "duplicates (most in one scene)",
                     "cut boxes", "partials", "tiles", "s"], p.markdown))


if __name__ == "__main__":
    main()
