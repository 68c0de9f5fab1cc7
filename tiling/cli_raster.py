"""The raster branch of ``patchwise predict``: a GeoTIFF, COG, JPEG 2000 or VRT too large (or too
georeferenced) to treat as a photo is streamed window by window with a tiles bar, and gets a GeoJSON
beside the usual outputs (``geojson/<stem>.geojson``) and a downscaled annotated preview."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from .bands import STRETCHES, BandSpec
from .checks import SettingError
from .cli_common import CliError
from .imageio import ImageError, check_pixels
from .names import display_name
from .outputs import PREVIEW_SIDE
from .raster import RasterSource, should_stream
from .streaming import predict_raster


def _bands(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected band numbers separated by commas, got {text!r}") from None


def add_raster_args(parser: argparse.ArgumentParser) -> None:
    spec = BandSpec()
    g = parser.add_argument_group("rasters (GeoTIFF, COG, JPEG 2000, VRT: read window by window)")
    g.add_argument("--bands", type=_bands, default=None,
                   help="band numbers from 1: one (grey) or three (red,green,blue), e.g. 4,3,2 "
                        "(default: 1 band grey, 3 or 4 bands 1,2,3)")
    g.add_argument("--stretch", choices=STRETCHES, default=spec.stretch,
                   help="16-bit and float bands to 8 bits: per-band 2-98 percentile stretch from a decimated read "
                        "(default), or none (clip to 0-255)")
    g.add_argument("--wgs84", action="store_true",
                   help="write the GeoJSON in EPSG:4326 longitude/latitude instead of the raster's own CRS")
    g.add_argument("--allow-vrt", action="store_true",
                   help="read VRT files and GDAL virtual paths (/vsicurl/, /vsizip/...); refused by default, as "
                        "they can name any file on this machine or a URL")


def band_spec(args) -> BandSpec:
    """The options' :class:`BandSpec`, or a one-line error naming the bad option."""
    try:
        return BandSpec(bands=getattr(args, "bands", None), stretch=getattr(args, "stretch", "percentile"))
    except SettingError as exc:
        raise CliError.of_setting(exc) from None


def check_single(path: Path, args) -> None:
    """A lone raster input is opened before the model loads, so a bad file or option costs nothing."""
    try:
        with RasterSource(path, band_spec(args), allow_vrt=args.allow_vrt) as src:
            if args.wgs84:
                src.georef.check_wgs84(src.label)
    except ImageError as exc:
        raise CliError(display_name(str(exc))) from None


def predict_raster_entry(entry, model, tiles, infer, merge, args, folder) -> int:
    """Stream one raster through the model and write its files; returns its number of detections.

    Raises :class:`~tiling.imageio.ImageError` (one line) for a raster that cannot be read; files of
    earlier images are untouched. The files are the Ray engine's (``folder.write_raster``, with the
    run's key), so a rerun with other settings does the raster again."""
    with RasterSource(entry.path, band_spec(args), allow_vrt=args.allow_vrt) as src:
        h, w = src.shape
        if args.max_pixels is not None:
            check_pixels(w, h, entry.shown, args.max_pixels)
        try:
            n_tiles = tiles.check_count((h, w))
        except ValueError as exc:
            raise ValueError(f"{exc} (or raise --max-tiles)") from None
        tqdm.write(f"{entry.shown}: {w}x{h} raster, {src.bands_note}; coordinates: {src.georef.crs_label}",
                   file=sys.stderr)
        if src.georef.note:
            tqdm.write(f"note: {display_name(src.georef.note)}", file=sys.stderr)
        if args.wgs84:  # before the model runs
            src.georef.check_wgs84(Path(entry.rel).stem)
        with tqdm(total=n_tiles, desc=entry.shown, unit="tile", file=sys.stderr, leave=False) as bar:
            pred = predict_raster(src, model, tiles, infer, merge,
                                  progress=lambda done, total: bar.update(done - bar.n))
        det = pred.detections
        run, t = pred.tiles - pred.tiles_skipped, pred.timings
        tqdm.write(f"{entry.shown}: {run} tiles in {t['total']:.1f} s, {1000 * t['total'] / max(run, 1):.0f} ms a tile "
                   f"(reading {1000 * t['read'] / max(run, 1):.1f}, model {1000 * t['infer'] / max(run, 1):.1f}, "
                   f"merging {1000 * t['merge'] / max(run, 1):.1f}); {len(det)} objects", file=sys.stderr)
        if pred.tiles_skipped or pred.boxes_in_nodata:
            tqdm.write(f"{entry.shown}: {pred.tiles_skipped} of {pred.tiles} tiles were all nodata and not run; "
                       f"{pred.boxes_in_nodata} boxes on nodata dropped", file=sys.stderr)
        # A downscaled picture: the raster itself may not fit in memory.
        preview = src.overview(PREVIEW_SIDE) if folder.with_images else None
        return folder.write_raster(entry, det, (h, w), src.georef, args.wgs84, preview)


def is_streamed(path: Path, args) -> bool:
    return should_stream(path, args.max_pixels)

