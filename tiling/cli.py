"""Command line: ``python -m tiling`` (or ``patchwise``) ``predict`` and ``evaluate`` over folders of images.

Images are processed one at a time and results are streamed to disk, so memory stays flat over
thousands of images. Every setting is a field of one of the pipeline's specs, under the same name
(``--tile-size`` is ``TileSpec.tile_size``); their defaults and choices are read from the specs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from .cli_raster import add_raster_args
from .grid import EDGES, TileSpec
from .merge import METHODS, METRICS, MergeSpec
from .models.base import InferSpec
from .models.loading import PRECISIONS
from .optional import MissingExtra
from .outputs import display_name, list_images


class CliError(Exception):
    """A problem with the user's paths or options: one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line and exit code 2, not the whole usage block."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def find_images(source: str) -> tuple[Path, list[Path]]:
    """(root, images) of a run, listed as the library lists them (:func:`tiling.outputs.list_images`)."""
    try:
        return list_images(source)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _class_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected class ids separated by commas, got {text!r}") from None


def _settings_args(p: argparse.ArgumentParser) -> None:
    tiles, infer, merge = TileSpec(), InferSpec(), MergeSpec()
    p.add_argument("--model", "-m", required=True, help="Ultralytics .pt checkpoint (loaded safely)")
    g = p.add_argument_group("tiles")
    g.add_argument("--tile-size", type=int, default=tiles.tile_size, help=f"tile size in pixels (default {tiles.tile_size})")
    g.add_argument("--overlap", type=float, default=tiles.overlap,
                   help=f"overlap of neighbouring tiles, a fraction in [0, 0.9) (default {tiles.overlap})")
    g.add_argument("--edge", choices=EDGES, default=tiles.edge,
                   help="last row/column of tiles: trimmed to the image (default, less work) or full size, shifted back")
    g.add_argument("--max-tiles", type=int, default=tiles.max_tiles,
                   help=f"refuse an image that would need more tiles than this (default {tiles.max_tiles})")
    g.add_argument("--offset-grid", action="store_true",
                   help="also run a second grid shifted by half a step: objects cut by the first grid's borders "
                        "are whole in it (1.2-1.8x the tiles)")
    g = p.add_argument_group("model")
    g.add_argument("--conf", type=float, default=infer.conf, help=f"confidence threshold (default {infer.conf})")
    g.add_argument("--iou", type=float, default=infer.iou, help=f"the model's own NMS IoU inside each tile (default {infer.iou})")
    g.add_argument("--classes", type=_class_list, default=None, help="keep only these class ids, e.g. 0,2 (default: all)")
    g.add_argument("--max-det", type=int, default=infer.max_det, help=f"at most this many boxes per tile (default {infer.max_det})")
    g.add_argument("--batch-size", type=int, default=infer.batch_size, help=f"tiles per model call (default {infer.batch_size})")
    g.add_argument("--imgsz", type=int, default=infer.imgsz,
                   help=f"input size of the full-image pass, 32-4096 (default {infer.imgsz})")
    g.add_argument("--include-full", action="store_true", help="also merge a full-image pass (large objects)")
    g.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32: full precision (default). int8: an 8-bit copy of the model, 1.3-3x faster per tile "
                        "depending on the CPU, used only if it agrees with full precision on held-out tiles (made once, ~30 s, "
                        "calibrated on the images given; the bundled models ship theirs). bf16: the CPU's bfloat16 "
                        "units where it has them (boxes may move 1-2 px)")
    g.add_argument("--calibration", default=None,
                   help="with --precision int8: a folder of images to calibrate on (default: the images given)")
    g = p.add_argument_group("merge")
    g.add_argument("--method", choices=METHODS, default=merge.method, help=f"merge method across tiles (default {merge.method})")
    g.add_argument("--metric", choices=METRICS, default=merge.metric, help=f"match metric for merging (default {merge.metric})")
    g.add_argument("--threshold", type=float, default=merge.threshold,
                   help=f"two boxes match when their metric is at least this (default {merge.threshold})")
    g.add_argument("--class-agnostic", action="store_true", help="merge boxes of different classes too")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse images larger than this many pixels")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="patchwise", description="Patch-based (tiled) inference for detection and segmentation models.",
        epilog="Example: patchwise predict samples/ --model models/synth-yolo11n-det.pt --out results/",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    pr = sub.add_parser("predict", help="run patch-based inference and write annotated images and labels",
                        description="Run patch-based inference on an image or a folder of images. Writes "
                                    "annotated images, COCO results JSON, YOLO txt labels and a CSV to --out.")
    pr.add_argument("source", help="an image file or a folder of images (searched recursively), or its URI "
                                   "(s3://, gs://, hdfs://, file://: read through pyarrow's filesystems)")
    _settings_args(pr)
    pr.add_argument("--out", "-o", default="patchwise-output", help="output folder (default patchwise-output)")
    pr.add_argument("--no-images", action="store_true", help="do not write annotated images")
    add_raster_args(pr)
    g = pr.add_argument_group("cluster")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: a Ray cluster, same outputs (pip install 'patchwise[ray]')")
    g.add_argument("--ray-address", default=None,
                   help="the cluster to join with --engine ray (default: RAY_ADDRESS if set, else a local cluster here)")
    g.add_argument("--actors", type=int, default=None,
                   help="model copies with --engine ray (default: the cluster's CPUs over --cpus-per-actor)")
    g.add_argument("--cpus-per-actor", type=float, default=None,
                   help="CPUs each model copy holds with --engine ray (default 1; its threads run on that many cores)")
    g.add_argument("--gpus-per-actor", type=float, default=None,
                   help="GPUs each model copy holds with --engine ray (default 0; e.g. 0.5 puts two copies on a GPU)")
    g.add_argument("--io-actors", type=int, default=None,
                   help="reader and writer processes each with --engine ray (default: one per two model copies; "
                        "raise it when the model outpaces reading, as on GPUs)")
    ev = sub.add_parser("evaluate", help="score full-image vs patch-based inference against labels",
                        description="Compare full-image and patch-based precision, recall, AP50 and AP50-95 "
                                    "against ground truth: a folder of YOLO .txt files named like the images, "
                                    "or one COCO JSON file.")
    ev.add_argument("source", help="an image file or a folder of images")
    ev.add_argument("--labels", "-l", required=True, help="folder of YOLO .txt labels, or a COCO .json file")
    _settings_args(ev)
    return parser


def settings(args) -> tuple[TileSpec, InferSpec, MergeSpec]:
    """The three specs from the options, or a one-line error naming the bad one."""
    from .pipeline import split_settings

    try:
        return split_settings(
            tile_size=args.tile_size, overlap=args.overlap, edge=args.edge, max_tiles=args.max_tiles,
            offset_grid=args.offset_grid,
            conf=args.conf, iou=args.iou, classes=args.classes, max_det=args.max_det, batch_size=args.batch_size,
            imgsz=args.imgsz, include_full=args.include_full, method=args.method, metric=args.metric,
            threshold=args.threshold, class_agnostic=args.class_agnostic)
    except ValueError as exc:
        raise CliError(f"--{str(exc).replace('_', '-').replace('merge threshold', 'threshold')}") from None


def load(model_path: str, precision: str = "fp32", calibration: str | None = None, images: Sequence = (),
         streamed=None, bands=None):
    """The model, loaded as the options say. With ``precision="int8"`` its 8-bit copy is calibrated on the
    ``--calibration`` folder, else on ``images`` (the ones to process; of a raster that ``streamed(path)``
    says is read window by window, a few windows only), unless it is a bundled model with its copy shipped."""
    import tiling
    from tiling.models.calibration import run_calibration

    if precision == "int8" and calibration is not None and not Path(calibration).is_dir():
        raise CliError(f"--calibration {display_name(calibration)}: no such folder")
    if precision == "int8":
        calibration = run_calibration(model_path, calibration, images, streamed, bands)

    if not Path(model_path).exists() and Path(model_path).name == model_path and not model_path.endswith(".pt"):
        raise CliError(f"{model_path}: no such model file")
    if Path(model_path).exists():  # a bad name gets its one-line error alone
        print(f"loading {display_name(model_path)} (optimized for this CPU the first time it is used here, once)",
              file=sys.stderr)

    def report(fraction: float, message: str) -> None:  # while an 8-bit copy is made
        print(f"\r8-bit copy: {fraction:4.0%} {message[:60]:<60}", end="", file=sys.stderr, flush=True)

    try:
        model = tiling.load_model(model_path, precision=precision, calibration=calibration, progress=report)
    except tiling.ModelError as exc:
        raise CliError(str(exc)) from None
    if precision == "int8":
        print("\r" + (f"8-bit copy in use: it agrees with full precision at {model.agreement:.1%} on held-out tiles"
                      if model.runtime.endswith("int8") else f"full precision: {model.runtime_note}").ljust(80),
              file=sys.stderr)
    return model


def main(argv: Sequence[str] | None = None) -> int:
    import os

    os.environ.setdefault("YOLO_OFFLINE", "1")
    from .cli_commands import evaluate_command, predict_command

    args = build_parser().parse_args(argv)
    try:
        return predict_command(args) if args.command == "predict" else evaluate_command(args)
    except (CliError, MissingExtra) as exc:  # MissingExtra: an optional package, named with its pip extra
        print(f"patchwise {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
