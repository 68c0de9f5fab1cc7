"""Ultralytics exports as people deploy them: an ONNX file or an OpenVINO IR folder, with its metadata.

Names, task, stride and input size come from Ultralytics' ``metadata.yaml`` (OpenVINO) or the ONNX
file's metadata properties; nothing in either is executed and both are bounded before they are parsed
(:mod:`.declared`: YAML aliases bounded, ONNX values size-checked, ``literal_eval`` for 'names' alone).
An ONNX file that points at external data files is refused: its "weights" could be any file on the server.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..optional import require
from .base import ModelError
from .declared import MAX_CLASSES, check_names, check_output_size, onnx_value, read_yaml
from .runtimes import Precision, Runtime, backend
from .ultralytics_model import NetInfo, UltralyticsModel
from .vetting import SUPPORTED_TASKS, keypoint_shape

EXPORT_SUFFIXES = (".onnx", ".xml")
MAX_METADATA_CHARS = 1 << 20


@dataclass(frozen=True)
class Export:
    """What an exported model is: its file, format, task, class names, stride and fixed input (or None)."""

    path: Path
    runtime: Runtime  # the runtime that opens it
    task: str
    names: dict[int, str]
    stride: int
    input_hw: tuple[int, int] | None  # fixed (height, width), or None when the export takes any size
    batch: int | None  # fixed batch size, or None when dynamic
    kpt_shape: tuple[int, int] | None = None  # a pose model's (points, values per point)

    @property
    def info(self) -> NetInfo:
        """What the lean path needs to know of this network; a fixed input stands for the training size."""
        return NetInfo(self.task, self.names, self.stride, self.input_hw, self.kpt_shape,
                       int(max(self.input_hw)) if self.input_hw else 640)


def find_export(path: Path, label: str) -> tuple[Path, Runtime]:
    """(model file, runtime) for an ONNX file, an IR ``.xml`` or an ``*_openvino_model`` folder."""
    if path.is_dir():
        xmls = sorted(path.glob("*.xml"))
        if not xmls:
            raise ModelError(f"{label} is a folder without an OpenVINO model (.xml); export with "
                             "format='openvino' gives one")
        if len(xmls) > 1:
            raise ModelError(f"{label} holds {len(xmls)} .xml files; give the path of the one to load")
        path = xmls[0]
    suffix = path.suffix.lower()
    if suffix == ".xml":
        if not path.with_suffix(".bin").is_file():
            raise ModelError(f"{label}: {path.name} has no weights file beside it ({path.with_suffix('.bin').name})")
        return path, Runtime.OPENVINO
    if suffix == ".onnx":
        return path, Runtime.ONNX
    raise ModelError(f"{label}: expected an Ultralytics .pt, an .onnx file or an OpenVINO folder")


def _names(raw, label: str) -> dict[int, str]:
    if isinstance(raw, (list, tuple)):
        raw = dict(enumerate(raw))
    if not isinstance(raw, dict) or not raw:
        raise ModelError(f"{label} does not say its class names (no 'names' in its metadata); export it with "
                         "Ultralytics, which writes them")
    try:
        names = {int(k): str(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        raise ModelError(f"{label}: its class names are not numbered (got keys like {list(raw)[:3]})") from None
    if set(names) != set(range(len(names))) or len(names) > MAX_CLASSES:
        raise ModelError(f"{label}: its class names are not a list of 1 to {MAX_CLASSES:,} classes numbered from 0")
    check_names(names, label)
    check_output_size(len(names), label)
    return names


def _metadata(path: Path, runtime: Runtime, label: str, proto=None) -> dict:
    if runtime is Runtime.OPENVINO:
        meta_path = path.parent / "metadata.yaml"
        if not meta_path.is_file():
            raise ModelError(f"{label}: no metadata.yaml beside {path.name}, so its classes and task are unknown; "
                             "export with Ultralytics (format='openvino'), which writes it")
        if meta_path.stat().st_size > MAX_METADATA_CHARS:
            raise ModelError(f"{label}: metadata.yaml is too large to read")
        return read_yaml(meta_path.read_text(errors="replace"), label)
    return {p.key: onnx_value(p.key, p.value, label) for p in proto.metadata_props}


def _onnx_proto(path: Path, label: str):
    """The ONNX graph without its weights' external files, which are refused: they could name any file."""
    onnx = require("onnx", "onnx")

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{label} is not a readable ONNX model ({type(exc).__name__})") from None
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelError(f"{label} keeps its weights in external files, which are not accepted here; "
                             "export it as one .onnx file")
    return proto


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def read_export(path: Path, label: str) -> Export:
    """The export at ``path`` described from its metadata and its input shape, or a ``ModelError`` saying why not."""
    path, runtime = find_export(path, label)
    proto = _onnx_proto(path, label) if runtime is Runtime.ONNX else None  # parsed once, read twice
    meta = _metadata(path, runtime, label, proto)
    task = str(meta.get("task", "detect"))
    if task not in SUPPORTED_TASKS:
        raise ModelError(f"{label} is a '{task}' model; Patchwise runs detection, segmentation, oriented-box (obb) "
                         "and pose models only")
    names = _names(meta.get("names"), label)
    kpt_shape = None
    if task == "pose":
        raw = meta.get("kpt_shape")
        kpt_shape = keypoint_shape(list(raw) if isinstance(raw, (list, tuple)) else raw)
        if kpt_shape is None:
            raise ModelError(f"{label} is a pose model without a usable 'kpt_shape' in its metadata (got {raw!r}); "
                             "export it with Ultralytics, which writes it")
    stride = _int(meta.get("stride"), 32)
    if stride not in (8, 16, 32, 64, 128):
        raise ModelError(f"{label}: its stride {meta.get('stride')!r} is not one of 8, 16, 32, 64, 128")
    if meta.get("end2end") or meta.get("nms"):
        raise ModelError(f"{label} was exported with NMS inside (nms=True); export it without, so that boxes can "
                         "be merged across tiles")
    batch, input_hw = _input_shape(path, runtime, label, proto)
    return Export(path, runtime, task, names, stride, input_hw, batch, kpt_shape)


def _input_shape(path: Path, runtime: Runtime, label: str, proto=None) -> tuple[int | None, tuple[int, int] | None]:
    """(fixed batch or None, fixed (h, w) or None) from the model's first input."""
    if runtime is Runtime.OPENVINO:
        ov = require("openvino", "openvino")

        try:
            shape = ov.Core().read_model(str(path)).inputs[0].partial_shape
        except Exception as exc:
            raise ModelError(f"{label} is not a readable OpenVINO model ({str(exc).splitlines()[0][:200]})") from None
        dims = [d.get_length() if d.is_static else None for d in shape]
    else:
        inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
        if not inputs:
            raise ModelError(f"{label} has no input")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] not in (3, None):
        raise ModelError(f"{label} takes input of shape {dims}, not images (N x 3 x H x W)")
    hw = (dims[2], dims[3]) if dims[2] and dims[3] else None
    return dims[0], hw


def load_export(path: Path, label: str, digest: str, precision: Precision = Precision.FP32) -> UltralyticsModel:
    """An export as a model on the lean path, checked by running one blank tile through it. It runs at
    ``precision`` where its runtime can (bf16 on OpenVINO), else at the precision it was exported at."""
    export = read_export(path, label)
    entry = backend(export.runtime)
    run_at = precision if entry.supports(precision) and precision is not Precision.INT8 else Precision.FP32
    try:
        net = entry.open(export.path, run_at)
    except Exception as exc:
        raise ModelError(f"{label} could not be opened by {entry.title} ({str(exc).splitlines()[0][:200]})") from None
    model = UltralyticsModel.from_export(net, export.info, export.runtime, label, digest, run_at)
    try:  # the raw outputs are checked, then go through the model's NMS and mask decoding
        model.probe(lambda out: _check_outputs(out, export, label))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{label} failed on a blank tile ({str(exc).splitlines()[0][:200]})") from None
    return model


def _check_outputs(out, export: Export, label: str) -> None:
    """The outputs of an Ultralytics head: (N, 4 + classes + extra, boxes), the extra channels being 32 mask
    weights (segment, with prototype masks beside), one angle (obb) or the keypoints' values (pose)."""
    preds, proto = out[0] if isinstance(out[0], (tuple, list)) else (out[0], None)
    seg = export.task == "segment"
    extra = {"obb": 1, "pose": export.kpt_shape[0] * export.kpt_shape[1] if export.kpt_shape else 0}
    want = 4 + len(export.names) + (int(proto.shape[1]) if seg and proto is not None else extra.get(export.task, 0))
    if preds.ndim != 3 or preds.shape[1] != want or (seg and proto is None) or (not seg and proto is not None):
        shapes = [tuple(preds.shape)] + ([tuple(proto.shape)] if proto is not None else [])
        raise ModelError(f"{label}: its outputs {shapes} are not those of an Ultralytics {export.task} head with "
                         f"{len(export.names)} classes (expected (N, {want}, boxes)); export a detection, "
                         "segmentation, obb or pose model without NMS")
