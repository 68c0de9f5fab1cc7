"""Safe opening of an Ultralytics checkpoint: nothing in the file may run code, fetch anything or claim
unbounded memory while it is read, and what it holds must be a model Patchwise can run.

In order: the archive's own metadata (size, records, inflated sizes), then its pickle read without
unpickling (:mod:`.pickle_scan`: no constructor may be called, storages are summed), and only then
``torch.load(weights_only=True)`` with Ultralytics' allow-list, followed by checks of the model.
"""
from __future__ import annotations

import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .base import ModelError
from .declared import MAX_CLASSES, anchors_per_tile, check_names, check_output_size
from .pickle_scan import Report, Scanner
from .zip_layout import check_layout, directory_bounds

os.environ.setdefault("ULTRALYTICS_SAFE_LOAD", "1")  # read by Ultralytics at import
SUPPORTED_TASKS = ("detect", "segment", "obb", "pose")
MB = 1 << 20
MAX_MODEL_MB = int(os.environ.get("PATCHWISE_MAX_MODEL_MB", 200))  # file, inflated archive and its tensors alike
MAX_PARAMS = int(os.environ.get("PATCHWISE_MAX_PARAMS", 100_000_000))  # tensor elements (YOLO11x: 57 M)
MAX_PICKLE_MB = 4  # data.pkl: YOLOv9e's is 0.46 MB
MAX_RECORDS = 100_000  # files in the archive (RT-DETR-l: 950)
MAX_ZIP_RATIO = 20  # inflated / compressed, for records over 1 MB (torch.save stores them uncompressed)
MAX_KEYPOINTS = 1_000  # per detection (COCO people: 17)
STRIDES = (4, 8, 16, 32, 64, 128)  # P2 to P7 feature maps
REFUSED = "(a checkpoint can hide code that runs when it is opened). Nothing from it was run."


@dataclass(frozen=True)
class Vetted:
    """What loading needs to know about a checkpoint that passed every check."""

    task: str
    rtdetr: bool
    report: Report


def enforce_safe_loading() -> None:
    from ultralytics.nn import tasks

    tasks.SAFE_LOAD = True  # even if Ultralytics was imported before this module set the variable


def check_size(nbytes: int, label: str) -> None:
    """The one size limit (``PATCHWISE_MAX_MODEL_MB``), applied before a byte is written or read."""
    if nbytes == 0:
        raise ModelError(f"{label} is empty (0 bytes)")
    if nbytes > MAX_MODEL_MB * MB:
        raise ModelError(f"{label} is {nbytes / MB:.0f} MB; the limit here is {MAX_MODEL_MB} MB")


def read_bounded(path: Path, label: str) -> bytes:
    """A checkpoint's bytes, its size checked first and never more read than the limit allows."""
    check_size(path.stat().st_size, label)
    with open(path, "rb") as f:
        return f.read(MAX_MODEL_MB * MB + 1)


def vet_checkpoint(path: Path, label: str) -> Vetted:
    """Every check that can run before the file is unpickled, then the unpickled model's."""
    check_size(path.stat().st_size, label)
    data, records = _read_archive(path, label)
    try:
        report = Scanner(records, label).run(data)
    except ModelError:
        raise
    except Exception as exc:  # a stack underflow, a truncated opcode: not a pickle torch.save wrote
        raise ModelError(f"{label} is not a loadable checkpoint: its pickle is malformed ({type(exc).__name__})") from None
    _check_budget(report, label)
    task, rtdetr = _check_model(_unpickle(path, label), label)
    return Vetted(task, rtdetr, report)


def _read_archive(path: Path, label: str) -> tuple[bytes, dict[str, int]]:
    """data.pkl (read with a bound) and each storage record's size, from one archive that cannot inflate."""
    if not zipfile.is_zipfile(path):
        raise ModelError(
            f"{label} is not a PyTorch checkpoint (a .pt file is a zip archive); it may be truncated or another format"
        )
    try:
        with open(path, "rb") as f:
            _check_directory(f, label)
            with zipfile.ZipFile(f) as zf:
                check_layout(f, zf, label)  # what zipfile reads here is what torch's reader loads
                infos = zf.infolist()
                prefix = _archive_prefix([i.filename for i in infos], label)
                _check_inflation(infos, label)
                pkl = zf.getinfo(f"{prefix}data.pkl")
                if pkl.file_size > MAX_PICKLE_MB * MB:
                    raise ModelError(f"{label} was refused: its pickle is {pkl.file_size / MB:.0f} MB, "
                                     f"over the {MAX_PICKLE_MB} MB a model's structure needs")
                with zf.open(pkl) as member:
                    data = member.read(MAX_PICKLE_MB * MB + 1)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError, KeyError, struct.error) as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"{label} is not a loadable checkpoint: the file is truncated or corrupted ({exc})") from None
    storages = f"{prefix}data/"
    return data, {i.filename[len(storages):]: i.file_size for i in infos if i.filename.startswith(storages)}


def _archive_prefix(names: list[str], label: str) -> str:
    """The folder torch.save puts everything in; TorchScript and other zips are told apart here."""
    prefix = names[0].split("/")[0] + "/" if names and "/" in names[0] else ""
    if any("/code/" in n or n.endswith("constants.pkl") for n in names):
        raise ModelError(f"{label} is a TorchScript archive; upload the original Ultralytics .pt weights")
    if not prefix or f"{prefix}data.pkl" not in names:
        raise ModelError(f"{label} is a zip file but not a PyTorch checkpoint")
    return prefix


def _check_directory(f: BinaryIO, label: str) -> None:
    """The archive's entry count from its end record, before ``ZipFile`` builds an object per entry."""
    entries, cd_off, cd_end = directory_bounds(f, f.seek(0, 2), label)
    if entries > MAX_RECORDS or cd_end - cd_off > 64 * MB:
        raise ModelError(f"{label} was refused: its archive lists {entries} files "
                         f"(a model has a few thousand at most)")


def _check_inflation(infos: list[zipfile.ZipInfo], label: str) -> None:
    """A record that inflates far beyond its stored size (a zip bomb) is refused before it is read."""
    total = sum(i.file_size for i in infos)
    if total > MAX_MODEL_MB * MB:
        raise ModelError(f"{label} was refused: its archive inflates to {total / MB:.0f} MB, over the "
                         f"{MAX_MODEL_MB} MB limit here")
    for i in infos:
        if i.compress_type != zipfile.ZIP_STORED and i.file_size > MB and i.file_size > MAX_ZIP_RATIO * i.compress_size:
            raise ModelError(f"{label} was refused: {i.filename} inflates {i.file_size // max(1, i.compress_size)}-fold "
                             "(a zip bomb); torch.save stores tensors uncompressed")


def _check_budget(report: Report, label: str) -> None:
    """What the tensors would allocate, from their declared storages, against the limits here."""
    if report.storage_bytes > MAX_MODEL_MB * MB or report.view_bytes > 2 * MAX_MODEL_MB * MB:
        raise ModelError(f"{label} was refused: its tensors would take {report.view_bytes / MB:.0f} MB, over the "
                         f"{MAX_MODEL_MB} MB limit here")
    if report.elements > MAX_PARAMS:
        raise ModelError(f"{label} was refused: it has {report.elements / 1e6:.0f} million parameters; the limit "
                         f"here is {MAX_PARAMS / 1e6:.0f} million")


def _unpickle(path: Path, label: str) -> dict:
    """``weights_only`` with Ultralytics' allow-list: the scan passed, so this is a second wall."""
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)
    except (TypeError, pickle.UnpicklingError) as exc:
        if isinstance(exc, pickle.UnpicklingError) or "outside the supported" in str(exc):
            raise ModelError(f"{label} was refused: it references code or types outside the Ultralytics/PyTorch "
                             f"allow-list {REFUSED}") from None
        raise ModelError(f"{label} is not a loadable checkpoint: the file is truncated or corrupted") from None
    except ModuleNotFoundError as exc:
        raise ModelError(f"{label} needs a Python module that is not available ({exc.name}); refused") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{label} is not a loadable checkpoint: the file is truncated or corrupted ({exc})") from None
    return ckpt


def _check_model(ckpt: dict, label: str) -> tuple[str, bool]:
    """The network is an Ultralytics detection, segmentation, OBB or pose model whose head, task, classes and
    strides agree."""
    from ultralytics.nn.tasks import BaseModel, RTDETRDetectionModel

    model = ckpt.get("ema") if ckpt.get("ema") is not None else ckpt.get("model")
    if model is None:
        raise ModelError(
            f"{label} holds only weights (a state_dict with keys like {list(ckpt)[:3]}), not an Ultralytics model; "
            "save it with model.save() or upload the .pt that training wrote"
        )
    if not isinstance(model, BaseModel):
        raise ModelError(f"{label} holds an object of type {type(model).__name__} where the Ultralytics network "
                         "should be")
    task = _head_task(model, ckpt, label)
    if task == "pose":
        _check_keypoints(model, label)
    _check_names(model, label)
    strides = _check_strides(model, label)
    rtdetr = isinstance(model, RTDETRDetectionModel)
    anchors = getattr(model.model[-1], "num_queries", 300) if rtdetr else anchors_per_tile(strides)
    check_output_size(len(model.names), label, anchors if type(anchors) is int and anchors > 0 else None)
    return task, rtdetr


def _head_task(model, ckpt: dict, label: str) -> str:
    """The task the last layer performs; the task the file declares must be the same."""
    from torch import nn
    from ultralytics.nn.modules import head as h
    from ultralytics.nn.tasks import DetectionModel, OBBModel, PoseModel, RTDETRDetectionModel, SegmentationModel

    layers = getattr(model, "model", None)
    if not isinstance(layers, nn.Sequential) or not len(layers):
        raise ModelError(f"{label} has no layers: not an Ultralytics network")
    head = layers[-1]
    runnable = {h.Detect: DetectionModel, h.v10Detect: DetectionModel, h.RTDETRDecoder: RTDETRDetectionModel,
                h.Segment: SegmentationModel, h.Segment26: SegmentationModel, h.OBB: OBBModel, h.OBB26: OBBModel,
                h.Pose: PoseModel, h.Pose26: PoseModel}
    tasks = {h.Segment: "segment", h.Segment26: "segment", h.OBB: "obb", h.OBB26: "obb", h.Pose: "pose",
             h.Pose26: "pose"}
    other = {"Classify": "classify", "SemanticSegment": "semantic", "Depth": "depth"}
    task = tasks.get(type(head), "detect") if type(head) in runnable else None
    task = task or other.get(type(head).__name__)
    if task is None or (task in SUPPORTED_TASKS and type(model) is not runnable[type(head)]):
        raise ModelError(f"{label} ends in a {type(head).__name__} layer inside a {type(model).__name__}; "
                         "Patchwise runs Ultralytics detection, segmentation, oriented-box and pose heads only")
    if task not in SUPPORTED_TASKS:
        raise ModelError(f"{label} is a '{task}' model; Patchwise runs detection, segmentation, oriented-box (obb) "
                         "and pose models only")
    train_args = ckpt.get("train_args")
    if train_args is not None and not isinstance(train_args, dict):
        raise ModelError(f"{label} has training arguments of type {type(train_args).__name__}, not a dict")
    for declared in (getattr(model, "task", None), (train_args or {}).get("task")):
        if declared is not None and declared != task:
            raise ModelError(f"{label} declares a '{declared}' model, but its {type(head).__name__} head makes it a "
                             f"'{task}' model; refused")
    return task


def keypoint_shape(value) -> tuple[int, int] | None:
    """(points, values per point) from a pose model's ``kpt_shape``, or None when it is not one."""
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(type(v) is int for v in value):
        return None
    k, d = value
    return (k, d) if 1 <= k <= MAX_KEYPOINTS and d in (2, 3) else None


def _check_keypoints(model, label: str) -> None:
    """A pose head's keypoint layout: a few points of 2 or 3 values, as many as its layers predict."""
    head = model.model[-1]
    shape = keypoint_shape(getattr(head, "kpt_shape", None))
    if shape is None or getattr(head, "nk", None) != shape[0] * shape[1]:
        raise ModelError(f"{label} has a pose head with keypoint shape {getattr(head, 'kpt_shape', None)!r}; "
                         f"expected (points, 2 or 3) with 1 to {MAX_KEYPOINTS} points")


def _check_names(model, label: str) -> None:
    """Class names: a dict of 0..n-1 -> str, one per class the head predicts."""
    names = getattr(model, "names", None)
    if not isinstance(names, dict) or not all(type(k) is int and isinstance(v, str) for k, v in names.items()):
        raise ModelError(f"{label} has class names of the wrong form ({type(names).__name__}); "
                         "an Ultralytics model has a dict of class id -> name")
    head_nc = getattr(model.model[-1], "nc", len(names))
    if not 1 <= len(names) <= MAX_CLASSES or type(head_nc) is not int or set(names) != set(range(head_nc)):
        raise ModelError(f"{label} names {len(names)} classes but its head predicts {head_nc} "
                         f"(1 to {MAX_CLASSES} allowed, numbered from 0)")
    check_names(names, label)


def _check_strides(model, label: str) -> list[float]:
    """Strides are how far apart the head's cells are: a forged 4096 pads every tile to 4096 px. Returns
    the head's (or the model's) strides."""
    import torch

    found: list[float] = []
    for owner in (model, model.model[-1]):
        stride = getattr(owner, "stride", None)
        if stride is None and owner is not model:
            continue
        values = stride.reshape(-1).tolist() if isinstance(stride, torch.Tensor) and 0 < stride.numel() <= 8 else None
        if not values or any(v not in STRIDES for v in values):
            raise ModelError(f"{label} has strides {values if values else stride!r}; "
                             f"an Ultralytics model's are among {STRIDES}")
        found = values
    return found
