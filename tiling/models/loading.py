"""``load_model``: a checkpoint from a path, bytes or an official name, opened safely, then moved to
the fastest runtime available here; ``as_model`` for anything the pipeline is given."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..optional import MissingExtra
from ..util import Progress, sha256_of
from . import quantize
from .archive import unpack_export_zip
from .base import CallableModel, Model, ModelError
from .bundled import BundledAssets
from .calibration import Calibration, calibration_from
from .exported import load_export
from .guard import sealed
from .runtimes import Precision, Runtime, requested, resolve
from .official import OFFICIAL_NAMES, is_official, prefetched
from .source import ModelSource, SourceKind
from .ultralytics_model import PROBE_SPEC, UltralyticsModel
from .vetting import SUPPORTED_TASKS, check_size, enforce_safe_loading, read_bounded, vet_checkpoint

PRECISIONS = tuple(Precision)  # the names --precision takes


def load_model(source, runtime: Runtime | str = Runtime.AUTO, name: str | None = None,
               precision: Precision | str = Precision.FP32, *,
               calibration=None, progress: Progress | None = None,
               bundled: BundledAssets | None = None) -> UltralyticsModel:
    """Load an Ultralytics model safely: a ``.pt`` checkpoint (path, bytes or an official name such as
    ``yolo11n.pt``), or an export as deployed: an ``.onnx`` file or an OpenVINO folder (its path, the path
    of its ``.xml``, or its bytes zipped). An export runs on its own runtime (``model.runtime``); a fixed
    input (e.g. 1x3x640x640) is met by padding each tile (or shrinking a larger one) to it.

    The checkpoint is vetted before anything in it runs (:mod:`.vetting`): its pickle may call no
    constructor, its tensors must fit the limits here, and it must be a detection, segmentation,
    oriented-box or pose model that runs a test tile; anything else is a :class:`ModelError`, never another exception.
    Only then is it exported for ``runtime``: ``"auto"`` takes the fastest one installed (OpenVINO,
    then ONNX Runtime, then torch on a CPU; torch on a GPU); ``model.runtime`` says which one runs,
    and ``model.runtime_note`` why another was not used. ``precision="bf16"`` lets OpenVINO use the
    CPU's bfloat16 units: faster, with boxes no longer identical to torch's to the pixel.

    ``precision="int8"`` runs an 8-bit copy of the OpenVINO model (:mod:`.quantize`): for a model of
    ``bundled`` (:class:`.bundled.BundledAssets`, the application's own models) its shipped copy, else
    one made once (~30 s, cached) by NNCF from tiles of ``calibration`` (a folder, an image file, or a
    list of files or arrays: ideally the images to be processed; a bundled model's samples by default),
    with ``progress(done, total)`` called meanwhile. The copy is used only if, on held-out tiles, it
    agrees with full precision to :data:`.agreement.AGREEMENT_BAR` (0.97, box F1 at IoU 0.5 and mask IoU);
    ``model.agreement`` holds the figure, and ``model.precision`` is ``Precision.INT8`` when it runs,
    else ``model.runtime_note`` says why not. ``runtime`` and ``precision`` are :class:`.Runtime` and
    :class:`.Precision` members or their names.
    """
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    label = name or ("the uploaded model" if is_bytes else Path(str(source)).name)
    try:
        return _load(source, runtime, label, precision, calibration, progress, bundled)
    except ModelError:
        raise
    except MissingExtra as exc:  # an optional package this model needs: the line says which extra installs it
        raise ModelError(f"{label}: {exc}") from None
    except Exception as exc:  # whatever a hostile or broken file provokes, the caller is promised a ModelError
        raise ModelError(f"{label} could not be loaded: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    """``Type: first line`` of an exception: enough to report, never a traceback's worth."""
    text = str(exc).splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def check_precision(precision, runtime: Runtime | str = Runtime.AUTO) -> tuple[Runtime, Precision]:
    """(runtime, precision) as types, or a ``ValueError`` naming the problem with a ``precision`` (or its
    pairing with ``runtime``): the registry says which runtime runs which precision."""
    return requested(runtime, precision)


def _load(source, runtime, label: str, precision, calibration=None, progress=None,
          bundled: BundledAssets | None = None) -> UltralyticsModel:
    try:
        runtime, precision = check_precision(precision, runtime)
        candidates = resolve(runtime)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    if isinstance(source, (str, os.PathLike)) and str(source) == Path(source).name:
        baked = prefetched(str(source))
        if baked is not None:  # an official name, pre-fetched on this host: before any file or download
            return _load(baked, runtime, label, precision, calibration, progress, bundled)
    given = ModelSource.of(source, label)
    if given.kind.is_export:
        return _as_exported(_load_export(given, precision.exported), precision)
    if given.kind is SourceKind.OFFICIAL:
        return _load_official(given.value, runtime, precision, calibration, progress, bundled)
    if given.kind is SourceKind.CALLABLE:
        raise ModelError(f"{label}: expected a model file, its bytes or an official name, got {type(source).__name__}")
    if given.data is None and given.path.suffix.lower() != ".pt":
        raise ModelError(f"{label}: expected an Ultralytics .pt checkpoint, an .onnx file or an OpenVINO folder")
    data = given.data if given.data is not None else read_bounded(given.path, label)
    check_size(len(data), label)
    digest = sha256_of(data)  # the bytes read are the bytes built: ModelSource.digest of this content
    if precision is Precision.INT8:  # before the slow part, a missing calibration is reported (and resolved once)
        calibration = _check_calibration(digest, calibration, label, bundled)
    enforce_safe_loading()
    tmpdir = tempfile.mkdtemp(prefix="patchwise-")
    try:  # a private copy: the file vetted is the file built, and never the uploaded file's own name
        path = Path(tmpdir) / "weights.pt"
        path.write_bytes(data)
        with sealed(label):
            vetted = vet_checkpoint(path, label)
            model = UltralyticsModel(_build(path, label, vetted.rtdetr), source=label, digest=digest)
            _probe(model, label)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    model.use_runtime(candidates, data, precision.exported)
    if precision is Precision.INT8:
        quantize.use_int8(model, data, calibration, progress, bundled)
    return model


def _as_exported(model: UltralyticsModel, precision: Precision) -> UltralyticsModel:
    """An export runs as it was exported: 8-bit copies are made from .pt checkpoints (an 8-bit export, such
    as Ultralytics' ``int8=True``, is 8-bit already)."""
    if precision is Precision.INT8:
        model.runtime_note = "8-bit copies are made from .pt checkpoints; this export runs as it was exported"
    return model


def _check_calibration(digest: str, calibration, label: str, bundled: BundledAssets | None) -> Calibration | None:
    """The calibration data, resolved once (read and hashed) for ``quantize.use_int8``: the caller's, or
    None for a checkpoint of ``bundled`` (its shipped copy, or the samples of its kind, chosen once its
    task is known). Needed for any other checkpoint; their problems are found now."""
    if calibration is not None:
        return calibration_from(calibration)
    if bundled is not None and (bundled.copy_for(digest) is not None or bundled.has_weights(digest)):
        return None
    raise ModelError(f"{label}: precision 'int8' needs calibration images for this model: pass "
                     "calibration=<a folder or a list of images>, ideally the images to be processed")


def _load_export(given: ModelSource, precision: Precision) -> UltralyticsModel:
    """An ONNX file or an OpenVINO export, given by path (its folder or its ``.xml``) or as bytes (ONNX, or
    the folder zipped), each file's size checked before it is read."""
    if given.data is not None:
        return _load_export_bytes(given, precision)
    if not given.path.exists():
        raise ModelError(f"{given.label}: no such file or folder")
    files = [given.path] if given.folder is None else sorted(given.folder.iterdir())
    for p in files:
        if p.is_file() and p.suffix.lower() in (".xml", ".bin", ".onnx"):
            check_size(p.stat().st_size, given.label)
    with sealed(given.label):
        return load_export(given.path, given.label, given.digest, precision)


def _load_export_bytes(given: ModelSource, precision: Precision) -> UltralyticsModel:
    """An uploaded ONNX file, or an OpenVINO folder as a zip, through a private folder removed afterwards."""
    check_size(len(given.data), given.label)
    tmpdir = Path(tempfile.mkdtemp(prefix="patchwise-"))
    try:
        if given.kind is SourceKind.EXPORT_FOLDER:
            unpack_export_zip(given.data, tmpdir, given.label)
            found = [p for p in tmpdir.iterdir() if p.suffix.lower() == ".onnx"]
            target = found[0] if found and not any(tmpdir.glob("*.xml")) else tmpdir
        else:
            target = tmpdir / "model.onnx"
            target.write_bytes(given.data)
        with sealed(given.label):
            return load_export(target, given.label, given.digest, precision)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _build(path: Path, label: str, rtdetr: bool):
    from ultralytics import RTDETR, YOLO

    try:
        yolo = (RTDETR if rtdetr else YOLO)(str(path))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{label} could not be loaded as an Ultralytics model: {exc}") from None
    if yolo.task not in SUPPORTED_TASKS:
        raise ModelError(f"{label} is a '{yolo.task}' model; Patchwise runs detection, segmentation, "
                         "oriented-box (obb) and pose models only")
    return yolo


def _probe(model: UltralyticsModel, label: str) -> None:
    """One blank 64 px tile through the path predictions will take: a model that cannot run it is refused."""
    try:
        out = model.predict([np.zeros((64, 64, 3), np.uint8)], PROBE_SPEC)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{label} could not run on a test tile: {_describe(exc)}") from None
    if len(out) != 1:
        raise ModelError(f"{label} returned {len(out)} results for one test tile")


def _load_official(name: str, runtime: Runtime = Runtime.AUTO, precision: Precision = Precision.FP32, calibration=None,
                   progress=None, bundled: BundledAssets | None = None) -> UltralyticsModel:
    """Official checkpoints are fetched by Ultralytics when the host is online; a clear error when not."""
    from ultralytics.utils import is_online

    if Path(name).name != name or not is_official(name):
        raise ModelError(f"{name}: no such file (official names: {', '.join(OFFICIAL_NAMES)})")
    if not is_online():
        raise ModelError(
            f"{name} is not on this machine and cannot be downloaded here (no internet access, or "
            "YOLO_OFFLINE is set). Put it in the folder PATCHWISE_WEIGHTS_DIR names, use a bundled demo model, "
            "or upload a .pt file."
        )
    try:
        from ultralytics.utils.downloads import attempt_download_asset

        path = Path(attempt_download_asset(name))
    except Exception as exc:
        raise ModelError(f"{name} could not be downloaded: {exc}") from None
    return load_model(path, name=name, runtime=runtime, precision=precision, calibration=calibration,
                      progress=progress, bundled=bundled)


def as_model(model) -> Model:
    """Accept a ``Model``, a loaded Ultralytics ``YOLO`` object, a path, or a callable."""
    if isinstance(model, Model):
        return model
    if isinstance(model, (str, Path, bytes)):
        return load_model(model)
    if hasattr(model, "predict") and hasattr(model, "task") and hasattr(model, "names"):
        return UltralyticsModel(model, source=type(model).__name__)
    if callable(model):
        return CallableModel(model)
    raise TypeError(f"expected a tiling.Model, an Ultralytics model, a path or a callable, got {type(model).__name__}")
