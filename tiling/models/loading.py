"""``load_model``: a checkpoint from a path, bytes or an official name, opened safely, then moved to
the fastest runtime available here; ``as_model`` for anything the pipeline is given."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..util import sha256_of
from . import runtimes
from .base import CallableModel, Model, ModelError
from .official import OFFICIAL_NAMES, is_official
from .ultralytics_model import UltralyticsModel
from .vetting import SUPPORTED_TASKS, enforce_safe_loading, vet_checkpoint


def load_model(source, runtime: str = "auto", name: str | None = None, precision: str = "fp32") -> UltralyticsModel:
    """Load an Ultralytics checkpoint (path, bytes or an official name such as ``yolo11n.pt``) safely.

    The checkpoint is opened with ``weights_only`` and Ultralytics' allow-list first: one that would
    run code is refused with :class:`ModelError` before anything in it runs. Only then is it
    exported for ``runtime``: ``"auto"`` takes the fastest one installed (OpenVINO, then ONNX
    Runtime, then torch on a CPU; torch on a GPU); ``model.runtime`` says which one runs, and
    ``model.runtime_note`` why another was not used. ``precision="bf16"`` lets OpenVINO use the
    CPU's bfloat16 units: faster, with boxes no longer identical to torch's to the pixel.
    """
    try:
        candidates = runtimes.resolve(runtime)
        runtimes.check_precision(precision)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    enforce_safe_loading()
    tmpdir = None
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            tmpdir = tempfile.mkdtemp(prefix="patchwise-")
            path = Path(tmpdir) / "weights.pt"  # never the uploaded file's own name
            path.write_bytes(data)
            label = name or "the uploaded model"
        else:
            path = Path(source)
            label = name or path.name
            if not path.is_file():
                return _load_official(str(source), runtime, precision)
            if path.suffix.lower() != ".pt":
                raise ModelError(f"{label}: expected an Ultralytics .pt checkpoint")
            data = path.read_bytes()
        vet_checkpoint(path, label)
        yolo = _build(path, label)
        model = UltralyticsModel(yolo, source=label, digest=sha256_of(data))
        model.use_runtime(candidates, data, precision)
        return model
    finally:
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _build(path: Path, label: str):
    from ultralytics import RTDETR, YOLO

    try:
        yolo = YOLO(str(path))
        if type(getattr(yolo, "model", None)).__name__ == "RTDETRDetectionModel":
            yolo = RTDETR(str(path))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{label} could not be loaded as an Ultralytics model: {exc}") from None
    if yolo.task not in SUPPORTED_TASKS:
        raise ModelError(f"{label} is a '{yolo.task}' model; Patchwise runs detection and segmentation models only")
    return yolo


def _load_official(name: str, runtime: str = "auto", precision: str = "fp32") -> UltralyticsModel:
    """Official checkpoints are fetched by Ultralytics when the host is online; a clear error when not."""
    from ultralytics.utils import is_online

    if Path(name).name != name or not is_official(name):
        raise ModelError(f"{name}: no such file (official names: {', '.join(OFFICIAL_NAMES)})")
    if not is_online():
        raise ModelError(
            f"{name} is not on this machine and cannot be downloaded here (no internet access, or "
            "YOLO_OFFLINE is set). Use a bundled demo model or upload a .pt file."
        )
    try:
        from ultralytics.utils.downloads import attempt_download_asset

        path = Path(attempt_download_asset(name))
    except Exception as exc:
        raise ModelError(f"{name} could not be downloaded: {exc}") from None
    return load_model(path, name=name, runtime=runtime, precision=precision)


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
