"""``patchwise slice-dataset``: a labelled dataset (YOLO data.yaml or COCO json) cut into tiles for
fine-tuning, planned as at inference (tiling.dataset)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import get_args

from tqdm import tqdm

from .checks import SettingError
from .cli_common import CliError
from .dataset import MIN_VISIBILITY, NEGATIVES, DatasetError, SliceSpec, slice_dataset
from .dataset.objects import VAL_FRACTION, OutputFormat, SplitBy, TaskChoice
from .dataset.slice import slice_raster
from .grid import EDGES, TileSpec
from .raster import RASTER_SUFFIXES

FLAGS = {"tile_sizes": "--tile-size", "tiles": "--tile-size", "format": "--format", "split_by": "--split-by"}


def add_slice_parser(sub) -> argparse.ArgumentParser:
    """The subcommand's parser, under the CLI's ``sub`` (argparse subparsers)."""
    p = sub.add_parser(
        "slice-dataset", help="cut a labelled dataset into tiles for training, without leakage between splits",
        description="Cut a labelled dataset (a YOLO data.yaml, or a folder holding one, or a COCO .json) into "
                    "tiles planned as patch-based inference plans them, with labels clipped to each tile. Every "
                    "tile keeps its source image's split. Writes a YOLO dataset (or COCO), report.json and "
                    "contact_sheet.png to --out.",
        epilog="Example: patchwise slice-dataset data/synth/data.yaml --out data/tiles --tile-size 640")
    p.add_argument("source", help="a YOLO data.yaml (or its folder), a COCO .json, or a raster (with --objects)")
    p.add_argument("--out", "-o", required=True, help="output folder (must be empty, or use --overwrite)")
    tile = TileSpec()
    p.add_argument("--tile-size", type=int, nargs="+", default=[tile.tile_size],
                   help=f"tile size in pixels; several sizes make one set of tiles each (default {tile.tile_size})")
    p.add_argument("--overlap", type=float, default=tile.overlap,
                   help=f"overlap of neighbouring tiles, a fraction in [0, 0.9) (default {tile.overlap})")
    p.add_argument("--edge", choices=EDGES, default=tile.edge, help=f"last row/column of tiles (default {tile.edge})")
    p.add_argument("--min-visibility", type=float, default=MIN_VISIBILITY,
                   help="keep an object cut by a tile edge when at least this share of its area is inside "
                        f"(default {MIN_VISIBILITY}: half an object is what inference sees of one a tile cuts)")
    p.add_argument("--negatives", type=float, default=NEGATIVES,
                   help=f"share of the empty tiles kept, chosen with --seed (default {NEGATIVES})")
    p.add_argument("--split-by", choices=get_args(SplitBy), default="image",
                   help="where the source names no split: draw val by image, or by group (the file name before "
                        "its first '_', e.g. a scene sequence) so near-identical frames stay together (default image)")
    p.add_argument("--val-fraction", type=float, default=VAL_FRACTION,
                   help=f"share of images (or groups) drawn for val where the source names no split (default {VAL_FRACTION})")
    p.add_argument("--format", choices=get_args(OutputFormat), default="yolo", help="output format (default yolo)")
    p.add_argument("--task", choices=get_args(TaskChoice), default="auto",
                   help="label kind: auto (from the rows and kpt_shape), or detect (polygons written as boxes), "
                        "segment, obb, pose")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of the empty tiles kept (default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run's files in --out")
    g = p.add_argument_group("rasters (GeoTIFF, COG...: read window by window)")
    g.add_argument("--objects", default=None,
                   help="with a raster SOURCE: its objects, a GeoJSON of (Multi)Polygons or a COCO json of the raster")
    g.add_argument("--class-property", default="class",
                   help="the GeoJSON property naming each object's class (default class)")
    g.add_argument("--split", choices=("train", "val", "test"), default="train",
                   help="the split of a raster's tiles: a raster is one source image (default train)")
    return p


def _run(args: argparse.Namespace, spec: SliceSpec, progress):
    """slice_raster for a raster SOURCE (with --objects), slice_dataset for a dataset."""
    tiles = {"tile_sizes": args.tile_size, "overlap": args.overlap, "edge": args.edge}
    if Path(args.source).suffix.lower() in RASTER_SUFFIXES:
        if not args.objects:
            raise CliError(f"{args.source}: a raster needs --objects (a GeoJSON or COCO json of its objects)")
        return slice_raster(args.source, args.objects, args.out, spec, split=args.split,
                            class_property=args.class_property, overwrite=args.overwrite, progress=progress, **tiles)
    if args.objects:
        raise CliError("--objects is for a raster SOURCE; a dataset's labels come with it")
    return slice_dataset(args.source, args.out, spec, overwrite=args.overwrite, progress=progress, **tiles)


def slice_command(args: argparse.Namespace) -> int:
    """Run the subcommand; a bad source or setting is one line (CliError)."""
    bars: list[tqdm] = []  # made at the first image, so an error before it prints no empty bar

    def progress(done: int, total: int) -> None:
        if not bars:
            unit = "tile" if Path(args.source).suffix.lower() in RASTER_SUFFIXES else "image"
            bars.append(tqdm(total=total, unit=unit, desc="slicing", file=sys.stderr, leave=False))
        bars[0].update(done - bars[0].n)

    try:
        spec = SliceSpec(min_visibility=args.min_visibility, negatives=args.negatives, split_by=args.split_by,
                         val_fraction=args.val_fraction, format=args.format, task=args.task, seed=args.seed)
        report = _run(args, spec, progress)
    except SettingError as exc:
        raise CliError.of_setting(exc, FLAGS) from None
    except DatasetError as exc:
        raise CliError(str(exc)) from None
    finally:
        for bar in bars:
            bar.close()
    print(report.summary())
    print(f"wrote {args.out} (report.json, contact_sheet.png)")
    return 0
