"""Command line: ``python -m tiling`` (or ``patchwise``) ``predict`` and ``evaluate`` over folders of images.

Images are processed one at a time and results are streamed to disk, so memory stays flat over
thousands of images. Every setting is a field of one of the pipeline's specs, under the same name
(``--tile-size`` is ``TileSpec.tile_size``); their defaults and choices are read from the specs.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn, Sequence

from .cli_commands import evaluate_command, predict_command
from .cli_common import CliError
from .cli_raster import add_raster_args
from .cli_slice import add_slice_parser, slice_command
from .cli_specs import add_spec_args
from .cli_video import add_video_args
from .models import InferSpec
from .models.runtimes import Precision, Runtime
from .optional import MissingExtra

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line and exit code 2, not the whole usage block."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _settings_args(p: argparse.ArgumentParser) -> None:
    """The model, the three specs' options (one per field) and the options of how the model is loaded."""
    p.add_argument("--model", "-m", required=True,
                   help="an Ultralytics checkpoint (.pt, vetted before anything in it runs), an export (.onnx file, "
                        "OpenVINO folder, its .xml, or the folder zipped), or an official name such as yolo11n.pt; "
                        "detection, segmentation, oriented-box or pose")
    g = add_spec_args(p)[InferSpec]
    g.add_argument("--runtime", choices=[r.value for r in Runtime], default=Runtime.AUTO.value,
                   help="where the model runs: auto (default) takes the fastest installed here (OpenVINO, then ONNX "
                        "Runtime, then PyTorch; PyTorch on a GPU); another falls back to PyTorch if its export fails")
    g.add_argument("--precision", choices=[p.value for p in Precision], default=Precision.FP32.value,
                   help="fp32: full precision (default). int8: an 8-bit copy of the model, 1.7-2.2x faster "
                        "per image than fp32 on the bundled detector at 640 px tiles (bench/README.md), used only if it agrees with full precision on held-out tiles (made once, ~30 s, "
                        "calibrated on the images given; the bundled models ship theirs). bf16: the CPU's bfloat16 "
                        "units where it has them (boxes may move 1-2 px)")
    g.add_argument("--calibration", default=None,
                   help="with --precision int8: a folder of images to calibrate on (default: the images given)")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse images larger than this many pixels")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="patchwise", description="Patch-based (tiled) inference for detection, segmentation, oriented-box and pose "
                    "models.",
        epilog="Example: patchwise predict samples/ --model models/synth-yolo11n-det.pt --out results/",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    pr = sub.add_parser("predict", help="run patch-based inference and write annotated images and labels",
                        description="Run patch-based inference on an image or a folder of images. Writes "
                                    "annotated images, COCO results JSON, YOLO txt labels and a CSV to --out.")
    pr.add_argument("source", help="an image file or a folder of images (searched recursively), or its URI "
                                   "(s3://, gs://, hdfs://, file://: read through pyarrow's filesystems); or a video "
                                   "clip or a folder of clips: tracked, written to --out/<clip>/")
    _settings_args(pr)
    add_video_args(pr)
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
    ev.add_argument("source", help="an image file or a folder of images, or one video clip")
    ev.add_argument("--labels", "-l", required=True, help="folder of YOLO .txt labels, or a COCO .json file; for a "
                                                          "clip, its MOT Challenge ground truth (frame,id,x,y,w,h,...)")
    _settings_args(ev)
    add_video_args(ev)
    add_slice_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "slice-dataset":
            return slice_command(args)
        return predict_command(args) if args.command == "predict" else evaluate_command(args)
    except (CliError, MissingExtra) as exc:  # MissingExtra: an optional package, named with its pip extra
        print(f"patchwise {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
