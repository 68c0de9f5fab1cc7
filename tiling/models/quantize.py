"""8-bit copies of a model's OpenVINO export: made with NNCF, used only when they agree with the float model.

Post-training quantization (``nncf.quantize``) turns the network's convolutions into 8-bit integer
ones, which OpenVINO runs on the CPU's integer dot-product units (AVX2, AVX-512 VNNI, AMX). The
detection head's own operations stay float, as in Ultralytics' INT8 export: box decoding, the DFL,
every Sigmoid and, for segmentation, the mask prototypes and coefficients. Quantizing those too was
measured here to drop AP50 from 0.90 to 0.14.

Calibration data are tiles as ``predict_tiled`` feeds them (640 and 320 px windows at their own
resolution) cut from images: the ones being processed, or a folder the caller names. A share of them
is held out; after quantizing, the float and the 8-bit network run on those and their outputs are
compared (:func:`agreement`). Below :data:`AGREEMENT_BAR` the 8-bit copy is not used.

Copies are cached like exports (:mod:`.export_cache`), keyed on the weights' SHA-256, the calibration
data's digest and the versions, with the agreement measured when they were made (``int8.json``). The
bundled models ship theirs in ``models/`` (``scripts/make_int8.py``), found by the weights' SHA-256.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import io
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..detections import Detections, paste_mask
from ..evaluate import detection_iou
from ..util import sha256_of_file
from .base import InferSpec, ModelError
from .export_cache import cached, entry_path, export

LOG = logging.getLogger(__name__)
AGREEMENT_BAR = 0.97  # box F1 (and mask IoU) of the 8-bit copy against the float model on held-out tiles
CALIBRATION_TILES = 64  # tiles NNCF calibrates on (at most): they quantize in ~25 s on 2 cores
HELD_OUT_TILES = 24
TILE_SIZES = (640, 320)
MAX_IMAGES = 12  # calibration images read, evenly spread over a longer list
MIN_TILES = 8
RASTER_WINDOW = 1280  # px: side of the windows a streamed raster gives to calibration
SETTINGS = "int8-headfloat-v1"  # changes when how copies are made changes: older cache entries go unused
GUARD_SPEC = InferSpec(conf=0.25, iou=0.7, max_det=300)
# OpenVINO 2026.4's CPU plugin crashed (SIGSEGV) on 8-bit YOLO graphs given inputs of 64x64, 32x96 or less;
# 64x96 and larger ran. Such graphs get every input padded to at least this size a side.
MIN_INT8_SIDE = 96
RECORD = "int8.json"
# The bundled models, their shipped 8-bit copies and the samples sit beside the package in the source
# checkout and are not installed with it: elsewhere none is found, and 8-bit needs calibration images.
ROOT = Path(__file__).resolve().parents[2]
_CHECKOUT = (ROOT / "pyproject.toml").is_file() and (ROOT / "tiling" / "models").is_dir()
MODELS_DIR: Path | None = ROOT / "models" if _CHECKOUT else None
SAMPLES_DIR: Path | None = ROOT / "samples" if _CHECKOUT else None
Progress = Callable[[float, str], None]  # (fraction done, what is happening)


class CalibrationError(ModelError):
    """Calibration data that cannot be used: the caller's to fix, so it is raised, never worked around."""


def file_sha256(path) -> str:
    """A file's SHA-256, computed once per process for each version of it (path, mtime, size): shipped
    copies and samples are checked on every load without being read again."""
    stat = os.stat(path)
    return _file_sha256(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=512)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    return sha256_of_file(path)


@dataclass(frozen=True)
class Calibration:
    """Where calibration tiles come from: image files or arrays, and a digest of their content; or the
    tiles themselves, cut once (:func:`cut_calibration`), with the digest of the sources they came from."""

    sources: tuple  # Path or np.ndarray (H x W x 3 uint8 BGR)
    digest: str
    described: str  # e.g. "4 images in samples"
    tiles: tuple | None = None  # (tiles to calibrate on, held-out tiles), when already cut


def calibration_from(source) -> Calibration:
    """A folder, an image file, or a list of files or H x W x 3 uint8 arrays, as calibration data;
    a ``CalibrationError`` that says what is wrong otherwise."""
    from ..imageio import IMAGE_SUFFIXES

    if isinstance(source, Calibration):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            items = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not items:
                raise CalibrationError(f"calibration: {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            described = f"{len(items)} image{'s' * (len(items) > 1)} in {path.name or path}"
        elif path.is_file():
            items, described = [path], path.name
        else:
            raise CalibrationError(f"calibration: {path}: no such file or folder")
    elif isinstance(source, np.ndarray):
        items, described = [source], "1 image"
    else:
        try:
            items = list(source)
        except TypeError:
            raise CalibrationError("calibration must be a folder, an image file, or a list of image files or arrays, "
                             f"got {type(source).__name__}") from None
        if not items:
            raise CalibrationError("calibration: the list of images is empty")
        described = f"{len(items)} image{'s' * (len(items) > 1)}"
    if len(items) > MAX_IMAGES:
        items = [items[i] for i in np.linspace(0, len(items) - 1, MAX_IMAGES).round().astype(int)]
    digest = hashlib.sha256(SETTINGS.encode())
    sources = []
    for item in items:
        if isinstance(item, np.ndarray):
            if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
                raise CalibrationError(f"calibration: arrays must be H x W x 3 uint8 (BGR), got {item.dtype} "
                                       f"{item.shape}")
            digest.update(repr(item.shape).encode())
            digest.update(np.ascontiguousarray(item).data)
            sources.append(item)
        elif isinstance(item, (str, Path)) and Path(item).is_file():
            digest.update(file_sha256(item).encode())
            sources.append(Path(item))
        else:
            shown = item if isinstance(item, (str, Path)) else type(item).__name__
            raise CalibrationError(f"calibration: {shown} is not an image file or an array")
    return Calibration(tuple(sources), digest.hexdigest(), described)


def calibration_tiles(calibration: Calibration) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(tiles to calibrate on, held-out tiles to check on): full-size 640 and 320 px windows of the
    images, drawn in a fixed pseudo-random order; each image is decoded once, on its own."""
    from ..grid import plan_tiles
    from ..imageio import ImageError, image_size, read_image

    if calibration.tiles is not None:
        return list(calibration.tiles[0]), list(calibration.tiles[1])

    def shape_of(src) -> tuple[int, int]:
        if isinstance(src, np.ndarray):
            return src.shape[:2]
        try:
            w, h = image_size(src)
        except ImageError as exc:
            raise CalibrationError(f"calibration: {exc}") from None
        return h, w

    windows = []  # (image index, y0, x0, height, width)
    for i, src in enumerate(calibration.sources):
        h, w = shape_of(src)
        found = [(i, t.y0, t.x0, size, size) for size in TILE_SIZES if min(h, w) >= size
                 for t in plan_tiles((h, w), tile_size=size, overlap=0.0)
                 if t.y1 - t.y0 == size and t.x1 - t.x0 == size]
        if not found and min(h, w) >= MIN_INT8_SIDE:  # a small image: all of it, cut to a multiple of 32
            found = [(i, 0, 0, h // 32 * 32, w // 32 * 32)]
        windows += found
    if len(windows) < MIN_TILES:
        raise CalibrationError(f"calibration: {calibration.described} give{'s' * (len(calibration.sources) == 1)} "
                         f"{len(windows)} tiles; at least {MIN_TILES} are needed (more or larger images)")
    order = np.random.default_rng(0).permutation(len(windows))[: CALIBRATION_TILES + HELD_OUT_TILES]
    n_held = max(2, round(len(order) * HELD_OUT_TILES / (CALIBRATION_TILES + HELD_OUT_TILES)))
    chosen = [windows[k] for k in order]
    tiles: list[np.ndarray | None] = [None] * len(chosen)
    for i, src in enumerate(calibration.sources):
        wanted = [j for j, win in enumerate(chosen) if win[0] == i]
        if not wanted:
            continue
        try:
            image = src if isinstance(src, np.ndarray) else read_image(src)
        except ImageError as exc:
            raise CalibrationError(f"calibration: {exc}") from None
        for j in wanted:
            _, y, x, th, tw = chosen[j]
            tiles[j] = np.ascontiguousarray(image[y : y + th, x : x + tw])
        del image
    return tiles[n_held:], tiles[:n_held]


def cut_calibration(source) -> Calibration:
    """``source`` (as :func:`calibration_from` takes it) with its tiles cut now, keeping its digest: what a
    cluster's workers are sent, so that each makes, or finds in its cache, the copy a local run with the
    same images makes, without the images being on its disk."""
    calibration = calibration_from(source)
    calib, held = calibration_tiles(calibration)
    return Calibration((), calibration.digest, calibration.described, (tuple(calib), tuple(held)))


def calibration_inputs(images: Sequence, streamed: Callable[[Path], bool] | None = None, bands=None,
                       window: int = RASTER_WINDOW) -> list:
    """Calibration data from a run's ``images``: up to :data:`MAX_IMAGES` of them, spread over the list,
    each as its path, except rasters read window by window (``streamed(path)``), which give a few
    ``window`` px windows read through :mod:`tiling.raster` (never decoded whole; :data:`MAX_IMAGES`
    windows at most in all). A raster that cannot be read is left out: its own run reports it."""
    paths = [Path(p) for p in images]
    if len(paths) > MAX_IMAGES:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, MAX_IMAGES).round().astype(int)]
    rasters = [p for p in paths if streamed is not None and streamed(p)]
    per_raster = max(1, (MAX_IMAGES - len(paths) + len(rasters)) // max(1, len(rasters)))
    out: list = []
    for path in paths:
        if path not in rasters:
            out.append(path)
            continue
        from ..imageio import ImageError
        from ..raster import RasterSource

        try:
            with RasterSource(path, bands) as src:
                out += src.sample_windows(per_raster, window)
        except ImageError as exc:
            LOG.warning("calibration: %s left out (%s)", path.name, exc)
    return out


def run_calibration(model, calibration, images: Sequence, streamed: Callable[[Path], bool] | None = None,
                    bands=None):
    """What a run at ``precision="int8"`` calibrates on: ``calibration`` when given; None for an export
    (it runs as it was exported) or for weights whose 8-bit copy ships; else :func:`calibration_inputs`
    of the run's ``images``. ``model``: a checkpoint's path or bytes, an export, or an official name."""
    if calibration is not None:
        return calibration
    if isinstance(model, (bytes, bytearray, memoryview)):
        from ..util import sha256_of
        from .loading import _kind_of_bytes

        if _kind_of_bytes(bytes(model), "model.pt") != "pt":
            return None
        digest = sha256_of(bytes(model))
    else:
        from .exported import EXPORT_SUFFIXES

        path = Path(model)
        if path.is_dir() or path.suffix.lower() in EXPORT_SUFFIXES:
            return None
        digest = sha256_of_file(path) if path.is_file() else ""
    if digest and bundled_copy(digest) is not None:
        return None
    return calibration_inputs(images, streamed, bands) or None


def network_input(tile: np.ndarray) -> np.ndarray:
    """A BGR uint8 tile as the network takes it: 1 x 3 x H x W RGB float in [0, 1] (as ``_prepare`` makes it)."""
    return (tile[:, :, ::-1].transpose(2, 0, 1)[None] * np.float32(1 / 255.0)).astype(np.float32)


def is_quantized(ov_model) -> bool:
    """Whether an OpenVINO graph runs 8-bit (NNCF and Ultralytics' INT8 export insert FakeQuantize nodes)."""
    return any(op.get_type_name() == "FakeQuantize" for op in ov_model.get_ops())


def float_scope(ov_model, task: str):
    """The head's operations NNCF must leave in float: box decoding, DFL and every Sigmoid, as Ultralytics'
    INT8 export does, plus the mask prototypes and coefficients of a segmentation head (the angle or
    keypoint branch, ``cv4``, of other heads)."""
    import nncf

    ops = ov_model.get_ordered_ops()
    sigmoids = [op.get_friendly_name() for op in ops if op.get_type_name() == "Sigmoid"]
    if not sigmoids:
        raise ModelError("this network has no Sigmoid, so it is not an Ultralytics detection head; "
                         "it cannot be quantized safely")
    head = sigmoids[-1].split("/", 1)[0]  # e.g. "__module.model.23"
    prefixes = (f"{head}/", f"{head}.dfl") + ((f"{head}.proto", f"{head}.cv4") if task != "detect" else ())
    names = [op.get_friendly_name() for op in ops
             if op.get_type_name() == "Sigmoid" or op.get_friendly_name().startswith(prefixes)]
    return nncf.IgnoredScope(names=names, validate=False)


def quantize_ir(fp32_xml: Path, task: str, tiles: Sequence[np.ndarray], out_dir: Path,
                progress: Progress | None = None, span: tuple[float, float] = (0.0, 1.0)) -> Path:
    """``nncf.quantize`` the IR at ``fp32_xml`` on ``tiles`` into ``out_dir/model.xml`` (with its metadata)."""
    import nncf
    import openvino as ov

    seen = [0]

    def transform(tile: np.ndarray) -> np.ndarray:
        seen[0] += 1
        if progress is not None:
            done = min(seen[0], len(tiles))
            progress(span[0] + (span[1] - span[0]) * done / len(tiles),
                     f"Measuring the network on calibration tile {done} of {len(tiles)}")
        return network_input(tile)

    model = ov.Core().read_model(str(fp32_xml))
    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF's own progress bars; ``progress`` reports instead
        quantized = nncf.quantize(model, nncf.Dataset(list(tiles), transform),
                                  preset=nncf.QuantizationPreset.MIXED, subset_size=len(tiles),
                                  ignored_scope=float_scope(model, task))
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_dir / "model.xml"), compress_to_fp16=False)
    shutil.copyfile(fp32_xml.parent / "metadata.yaml", out_dir / "metadata.yaml")
    return out_dir / "model.xml"


def _outputs(model, net, tiles: Sequence[np.ndarray]) -> list[Detections]:
    """``model``'s detections on each tile with ``net`` as its forward pass (tiles of a size run together),
    measured on a copy of ``model``: the model itself is never changed, and its lock is held meanwhile,
    since ``net`` may be the network it runs."""
    probe = copy.copy(model)
    probe._lock = threading.Lock()
    probe.net, probe.min_input = net, MIN_INT8_SIDE  # both networks see the same inputs
    out: list[Detections | None] = [None] * len(tiles)
    with model._lock:
        for shape in {t.shape for t in tiles}:
            idx = [i for i, t in enumerate(tiles) if t.shape == shape]
            for k in range(0, len(idx), 8):
                part = idx[k : k + 8]
                for i, det in zip(part, probe.predict([tiles[i] for i in part], GUARD_SPEC)):
                    out[i] = det
    return out


def box_f1(reference: Sequence[Detections], test: Sequence[Detections], iou: float = 0.5) -> float:
    """F1 of ``test``'s boxes against ``reference``'s, tile by tile: pairs of the same class overlapping at
    ``iou`` or more (rotated IoU for oriented boxes) are matched one to one, the best-overlapping first."""
    n_ref = sum(len(d) for d in reference)
    n_test = sum(len(d) for d in test)
    if n_ref + n_test == 0:
        return 1.0
    pairs = sum(_matched_pairs(a, b, iou) for a, b in zip(reference, test))
    return 2 * pairs / (n_ref + n_test)


def _matched_pairs(a: Detections, b: Detections, iou: float) -> int:
    if len(a) == 0 or len(b) == 0:
        return 0
    overlap = detection_iou(a, b)  # of the rotated rectangles for oriented boxes
    overlap[a.class_id[:, None] != b.class_id[None, :]] = 0.0
    rows, cols = np.nonzero(overlap >= iou)
    used_a, used_b = np.zeros(len(a), bool), np.zeros(len(b), bool)
    count = 0
    for k in np.argsort(-overlap[rows, cols], kind="stable"):
        i, j = rows[k], cols[k]
        if not (used_a[i] or used_b[j]):
            used_a[i] = used_b[j] = True
            count += 1
    return count


def mask_iou(reference: Sequence[Detections], test: Sequence[Detections], shapes: Sequence[tuple]) -> float:
    """Pixel IoU of the two outputs' masks, each tile's instances pasted together, summed over tiles."""
    inter = union = 0
    for a, b, shape in zip(reference, test, shapes):
        canvases = []
        for det in (a, b):
            canvas = np.zeros(shape[:2], bool)
            for mask, box in zip(det.masks or [], det.mask_boxes if det.masks else []):
                paste_mask(canvas, mask, box)
            canvases.append(canvas)
        inter += int(np.count_nonzero(canvases[0] & canvases[1]))
        union += int(np.count_nonzero(canvases[0] | canvases[1]))
    return 1.0 if union == 0 else inter / union


def agreement(model, fp32_net, int8_net, tiles: Sequence[np.ndarray]) -> dict:
    """How closely the 8-bit network reproduces the float one on ``tiles``: box F1 at IoU 0.5 (and for
    segmentation the masks' pixel IoU); ``agreement`` is the lower of the two."""
    reference = _outputs(model, fp32_net, tiles)
    test = _outputs(model, int8_net, tiles)
    record = {"box_f1": round(box_f1(reference, test), 4), "held_out_tiles": len(tiles),
              "boxes_fp32": sum(len(d) for d in reference), "boxes_int8": sum(len(d) for d in test)}
    if model.task == "segment":
        record["mask_iou"] = round(mask_iou(reference, test, [t.shape for t in tiles]), 4)
    record["agreement"] = min(record["box_f1"], record.get("mask_iou", 1.0))
    return record


def versions() -> dict[str, str]:
    import nncf
    import openvino
    import ultralytics

    return {"ultralytics": ultralytics.__version__, "openvino": openvino.__version__, "nncf": nncf.__version__}


def make_copy(model, fp32_xml: Path, calibration: Calibration, out_dir: Path,
              progress: Progress | None = None) -> dict:
    """Quantize ``model``'s float IR into ``out_dir`` and measure it on held-out tiles; returns the record
    written beside it as ``int8.json`` (``model.net`` must be the float network)."""
    from .runtimes import OpenVINONet

    say = progress or (lambda fraction, message: None)
    say(0.0, f"Cutting calibration tiles from {calibration.described}")
    calib, held = calibration_tiles(calibration)
    xml = quantize_ir(fp32_xml, model.task, calib, out_dir, progress, span=(0.05, 0.85))
    say(0.85, f"Checking the 8-bit copy against full precision on {len(held)} held-out tiles")
    record = {"weights_sha256": model.digest, "calibration": calibration.described,
              "calibration_sha256": calibration.digest, "calibration_tiles": len(calib),
              **agreement(model, model.net, OpenVINONet(xml), held), "settings": SETTINGS, "versions": versions()}
    (out_dir / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    say(1.0, "8-bit copy ready")
    return record


def cached_copy(model, weights: bytes, calibration: Calibration, progress: Progress | None = None) -> Path:
    """The 8-bit IR for ``model`` calibrated on ``calibration``, made once per cache (see :mod:`.export_cache`)."""
    import nncf
    import ultralytics

    fp32_xml = export(weights, model.digest, "openvino")  # made when the float runtime was set up: found again
    name = (f"{model.digest[:32]}-openvino-int8-{calibration.digest[:16]}-{ultralytics.__version__}-"
            f"nncf{nncf.__version__}-{SETTINGS}")
    return cached(entry_path(name), "*.xml", lambda entry: make_copy(model, fp32_xml, calibration, entry, progress))


def read_record(folder: Path) -> dict:
    try:
        record = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder.name}: its {RECORD} cannot be read ({type(exc).__name__})") from None
    if not isinstance(record, dict) or not isinstance(record.get("agreement"), (int, float)):
        raise ModelError(f"{folder.name}: its {RECORD} has no agreement figure")
    return record


def bundled_copy(digest: str, models_dir: Path | None = None) -> Path | None:
    """The shipped 8-bit folder (in ``models_dir``, default ``models/``) made from the weights with SHA-256
    ``digest``, when every file in it still has the SHA-256 recorded beside it; None otherwise (always
    outside the source checkout, where no copies ship)."""
    models_dir = models_dir or MODELS_DIR
    if models_dir is None:
        return None
    for record_path in sorted(models_dir.glob(f"*_int8_openvino_model/{RECORD}")):
        folder = record_path.parent
        try:
            record = read_record(folder)
        except ModelError:
            continue
        if record.get("weights_sha256") != digest:
            continue
        files = record.get("files") or {}
        if files and all((folder / name).is_file() and file_sha256(folder / name) == sha
                         for name, sha in files.items()):
            return folder
        LOG.warning("%s does not match the checksums recorded in its %s; not used", folder, RECORD)
    return None


def bundled_weights(digest: str) -> bool:
    """True for the weights of a bundled model (in ``models/``, or those a shipped 8-bit copy was made
    from): they calibrate on the bundled samples (:func:`default_calibration`)."""
    if MODELS_DIR is None or SAMPLES_DIR is None or not SAMPLES_DIR.is_dir():
        return False
    for record_path in sorted(MODELS_DIR.glob(f"*_int8_openvino_model/{RECORD}")):
        try:
            if read_record(record_path.parent).get("weights_sha256") == digest:
                return True
        except ModelError:
            continue
    return any(file_sha256(p) == digest for p in sorted(MODELS_DIR.glob("*.pt")))


def default_calibration(digest: str, task: str) -> Calibration | None:
    """For a bundled model (:func:`bundled_weights`), the bundled samples of its kind
    (``tiling.labels.images_for_task``: the oriented-box sample for an OBB model, the upright ones for the
    others), as its shipped copy was calibrated; None for any other weights, or outside the source checkout."""
    from ..labels import images_for_task

    if not bundled_weights(digest):
        return None
    return calibration_from(images_for_task(SAMPLES_DIR, task))


def _vetted_net(folder: Path, model, label: str):
    """The network of an 8-bit folder, vetted as any export is and checked to be ``model``'s copy."""
    from .exported import load_export
    from .guard import sealed

    with sealed(label):
        copy = load_export(folder, label, model.digest)
    if copy.task != model.task or copy.names != model.names:
        raise ModelError(f"{label} is not a copy of this model (its task or class names differ)")
    return copy.net


def use_int8(model, weights: bytes, calibration=None, progress: Progress | None = None) -> None:
    """Run ``model`` (on the float OpenVINO runtime) on its 8-bit copy when that agrees with it to at least
    :data:`AGREEMENT_BAR`; otherwise it stays in float and ``model.runtime_note`` says why. Either way
    ``model.agreement`` holds the measured figure. ``calibration``: as :func:`calibration_from` takes;
    None for the bundled models' shipped copies (or their samples)."""
    if model.runtime != "openvino":
        why = model.runtime_note or f"runtime {model.runtime} was chosen"
        model.runtime_note = f"8-bit runs on OpenVINO only, so the model runs in full precision ({why})"
        return
    shipped = bundled_copy(model.digest) if calibration is None else None
    chosen = None
    if shipped is None:
        chosen = (calibration_from(calibration) if calibration is not None
                  else default_calibration(model.digest, model.task))
        if chosen is None:
            raise CalibrationError(f"{model.source}: 8-bit needs calibration images (calibration=a folder or a list "
                                   "of images, ideally the ones to be processed)")
    try:
        folder = shipped or cached_copy(model, weights, chosen, progress).parent
        record = read_record(folder)
        model.agreement = float(record["agreement"])
        if model.agreement < AGREEMENT_BAR:
            model.runtime_note = (f"the 8-bit copy was not used: on {record.get('held_out_tiles', '?')} held-out tiles "
                                  f"it agreed with full precision at {model.agreement:.1%} (the bar is "
                                  f"{AGREEMENT_BAR:.0%}), so the model runs in full precision")
            LOG.warning("%s: %s", model.source, model.runtime_note)
            return
        int8_net = _vetted_net(folder, model, f"the 8-bit copy of {model.source}")
    except CalibrationError:
        raise
    except Exception as exc:  # a copy that cannot be made or opened leaves the float model running
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        model.runtime_note = f"the 8-bit copy could not be used ({type(exc).__name__}: {text}); full precision runs"
        LOG.warning("%s: %s", model.source, model.runtime_note)
        return
    with model._lock:
        model.net, model.min_input = int8_net, MIN_INT8_SIDE
    model.runtime = "openvino-int8"
