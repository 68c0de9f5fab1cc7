"""``load_model``: a checkpoint from a path, bytes or an official name, opened safely, then moved to
the fastest runtime available here; ``as_model`` for anything the pipeline is given."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..optional import MissingExtra
from ..util import sha256_of
from . import quantize, runtimes
from .archive import MAX_ENTRIES, unpack_export_zip
from .base import CallableModel, Model, ModelError
from .calibration import Calibration, calibration_from
from .exported import EXPORT_SUFFIXES, load_export
from .guard import sealed
from .official import OFFICIAL_NAMES, is_official, prefetched
from .ultralytics_model import PROBE_SPEC, UltralyticsModel
from .vetting import SUPPORTED_TASKS, check_size, enforce_safe_loading, read_bounded, vet_checkpoint

PRECISIONS = (*runtimes.PRECISIONS, "int8")


def load_model(source, runtime: str = "auto", name: str | None = None, precision: str = "fp32", *,
               calibration=None, progress: quantize.Progress | None = None) -> UltralyticsModel:
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

    ``precision="int8"`` runs an 8-bit copy of the OpenVINO model (:mod:`.quantize`): the bundled
    models' shipped copies, or one made once (~30 s, cached) by NNCF from tiles of ``calibration`` (a
    folder, an image file, or a list of files or arrays: ideally the images to be processed), with
    ``progress(fraction, message)`` called meanwhile. The copy is used only if, on held-out tiles, it
    agrees with full precision to :data:`.agreement.AGREEMENT_BAR` (0.97, box F1 at IoU 0.5 and mask IoU);
    ``model.agreement`` holds the figure, and ``model.runtime`` is ``"openvino-int8"`` when it runs,
    else ``model.runtime_note`` says why not.
    """
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    label = name or ("the uploaded model" if is_bytes else Path(str(source)).name)
    try:
        return _load(source, runtime, label, precision, calibration, progress)
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


def check_precision(precision, runtime: str = "auto") -> None:
    """A ``ValueError`` naming the problem with a ``precision`` (or its pairing with ``runtime``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "int8" and runtime not in ("auto", "openvino"):
        raise ValueError(f"precision 'int8' runs on OpenVINO; use runtime 'auto' or 'openvino', not {runtime!r}")


def _load(source, runtime: str, label: str, precision: str, calibration=None, progress=None) -> UltralyticsModel:
    try:
        candidates = runtimes.resolve(runtime)
        check_precision(precision, runtime)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        check_size(len(data), label)
        kind = _kind_of_bytes(data, label)
        if kind != "pt":
            return _as_exported(_load_export_bytes(data, kind, label, _export_precision(precision)), precision)
    else:
        path = Path(source)
        baked = prefetched(str(source)) if str(source) == path.name else None
        if baked is not None:  # an official name, pre-fetched on this host: before any file or download
            return _load(baked, runtime, label, precision, calibration, progress)
        if path.is_dir() or path.suffix.lower() in EXPORT_SUFFIXES:
            return _as_exported(_load_export_path(path, label, _export_precision(precision)), precision)
        if not path.is_file():
            return _load_official(str(source), runtime, precision, calibration, progress)
        if path.suffix.lower() != ".pt":
            raise ModelError(f"{label}: expected an Ultralytics .pt checkpoint, an .onnx file or an OpenVINO folder")
        data = read_bounded(path, label)
    check_size(len(data), label)
    digest = sha256_of(data)
    if precision == "int8":  # before the slow part, a missing calibration is reported (and resolved once)
        calibration = _check_calibration(digest, calibration, label)
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
    model.use_runtime(candidates, data, "fp32" if precision == "int8" else precision)
    if precision == "int8":
        quantize.use_int8(model, data, calibration, progress)
    return model


def _export_precision(precision: str) -> str:
    return "fp32" if precision == "int8" else precision


def _as_exported(model: UltralyticsModel, precision: str) -> UltralyticsModel:
    """An export runs as it was exported: 8-bit copies are made from .pt checkpoints (an 8-bit export, such
    as Ultralytics' ``int8=True``, is 8-bit already)."""
    if precision == "int8":
        model.runtime_note = "8-bit copies are made from .pt checkpoints; this export runs as it was exported"
    return model


def _check_calibration(digest: str, calibration, label: str) -> Calibration | None:
    """The calibration data, resolved once (read and hashed) for ``quantize.use_int8``: the caller's, or
    None for a bundled checkpoint (its shipped copy, or the samples of its kind, chosen once its task is
    known). Needed for any other checkpoint; their problems are found now."""
    if calibration is not None:
        return calibration_from(calibration)
    if quantize.bundled_copy(digest) is not None or quantize.bundled_weights(digest):
        return None
    raise ModelError(f"{label}: precision 'int8' needs calibration images for this model: pass "
                     "calibration=<a folder or a list of images>, ideally the images to be processed")


def _kind_of_bytes(data: bytes, label: str) -> str:
    """"pt" (a torch checkpoint), "zip" (an OpenVINO folder, zipped) or "onnx" (named so: ONNX has no magic)."""
    if data[:4] == b"PK\x03\x04":
        import io
        import zipfile

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                names = zf.namelist()[: MAX_ENTRIES + 1]
        except zipfile.BadZipFile:
            return "pt"  # the checkpoint's vetting says what is wrong with it
        return "pt" if any(n.endswith("data.pkl") for n in names) else "zip"  # torch.save writes data.pkl
    return "onnx" if label.lower().endswith(".onnx") else "pt"


def _load_export_path(path: Path, label: str, precision: str) -> UltralyticsModel:
    """An ONNX file, an OpenVINO ``.xml`` or its folder, given by path."""
    if not path.exists():
        raise ModelError(f"{label}: no such file or folder")
    files = sorted(p for p in (path.iterdir() if path.is_dir() else [path]) if p.is_file())
    digest = sha256_of(b"".join(read_bounded(p, label) for p in files if p.suffix.lower() in (".xml", ".bin", ".onnx")))
    with sealed(label):
        return load_export(path, label, digest, precision)


def _load_export_bytes(data: bytes, kind: str, label: str, precision: str) -> UltralyticsModel:
    """An uploaded ONNX file, or an OpenVINO folder as a zip, through a private folder removed afterwards."""
    tmpdir = Path(tempfile.mkdtemp(prefix="patchwise-"))
    try:
        if kind == "zip":
            unpack_export_zip(data, tmpdir, label)
            found = [p for p in tmpdir.iterdir() if p.suffix.lower() == ".onnx"]
            target = found[0] if found and not any(tmpdir.glob("*.xml")) else tmpdir
        else:
            target = tmpdir / "model.onnx"
            target.write_bytes(data)
        with sealed(label):
            return load_export(target, label, sha256_of(data), precision)
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


def _load_official(name: str, runtime: str = "auto", precision: str = "fp32", calibration=None,
                   progress=None) -> UltralyticsModel:
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
                      progress=progress)


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
