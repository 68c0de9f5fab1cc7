"""Make the 8-bit copies of the bundled models that ship in ``models/`` (run from the repository root):

    python -m scripts.make_int8                      # every bundled model
    python -m scripts.make_int8 models/synth-yolo11n-det.pt

Each copy is what ``tiling.load_model(path, precision="int8")`` would make on first use: NNCF
post-training quantization of the model's OpenVINO export, calibrated on tiles of the bundled samples of its kind,
the head kept in float (:mod:`tiling.models.quantize`). Beside it, ``int8.json`` records the weights'
SHA-256 (the loader uses the copy only for those weights), every file's SHA-256, and the agreement
with full precision measured on held-out tiles.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

from tiling.models import quantize  # noqa: E402
from tiling.models.bundled import RECORD, BundledAssets  # noqa: E402
from tiling.models.calibration import calibration_from  # noqa: E402
from tiling.models.runtimes import Runtime, backend  # noqa: E402
from tiling.util import sha256_of_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ASSETS = BundledAssets(ROOT / "models", ROOT / "samples")
BUNDLED = ("synth-yolo11n-det.pt", "synth-yolo11n-seg.pt", "synth-yolo11n-obb.pt")


def make(weights: Path) -> dict:
    import tiling

    model = tiling.load_model(weights, runtime="openvino")
    if model.runtime is not Runtime.OPENVINO:
        sys.exit(f"{weights.name}: the OpenVINO export failed ({model.runtime_note})")
    out = weights.parent / f"{weights.stem}_int8_openvino_model"
    shutil.rmtree(out, ignore_errors=True)
    fp32_xml = backend(Runtime.OPENVINO).export(weights.read_bytes(), model.digest)

    def say(done: int, total: int) -> None:
        print(f"\r{weights.name}: {done / max(total, 1):4.0%}", end="", file=sys.stderr, flush=True)

    samples = ASSETS.samples_for(model.task)  # the oriented-box sample for the OBB model
    record = quantize.make_copy(model, fp32_xml, calibration_from(samples), out, say)
    print(file=sys.stderr)
    record["weights"] = weights.name
    record["calibration"] = f"{record['calibration']} (the bundled samples)"
    record["files"] = {p.name: sha256_of_file(p) for p in sorted(out.iterdir()) if p.name != RECORD}
    (out / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", nargs="*", type=Path, default=[ASSETS.models_dir / n for n in BUNDLED])
    for weights in ap.parse_args().weights:
        record = make(weights)
        print(f"{weights.name}: agreement {record['agreement']:.4f} (box F1 {record['box_f1']:.4f}"
              + (f", mask IoU {record['mask_iou']:.4f}" if "mask_iou" in record else "")
              + f") on {record['held_out_tiles']} held-out tiles; {record['boxes_fp32']} boxes in full precision, "
              f"{record['boxes_int8']} in 8 bits")


if __name__ == "__main__":
    main()
