"""Ultralytics exports as people deploy them: an ONNX file or an OpenVINO IR folder, with its metadata.

Names, task, stride and input size come from Ultralytics' ``metadata.yaml`` (OpenVINO) or the ONNX
file's metadata properties; nothing in either is executed (YAML is read with the safe loader, ONNX
values with ``ast.literal_eval``). An ONNX file that points at external data files is refused: its
"weights" could be any file on the server.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from ..optional import require
from .base import ModelError
from .vetting import SUPPORTED_TASKS, keypoint_shape

EXPORT_SUFFIXES = (".onnx", ".xml")
MAX_METADATA_CHARS = 1 << 20


@dataclass(frozen=True)
class Export:
    """What an exported model is: its file, format, task, class names, stride and fixed input (or None)."""

    path: Path
    runtime: str  # "onnx" or "openvino"
    task: str
    names: dict[int, str]
    stride: int
    input_hw: tuple[int, int] | None  # fixed (height, width), or None when the export takes any size
    batch: int | None  # fixed batch size, or None when dynamic
    kpt_shape: tuple[int, int] | None = None  # a pose model's (points, values per point)


def find_export(path: Path, label: str) -> tuple[Path, str]:
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
        return path, "openvino"
    if suffix == ".onnx":
        return path, "onnx"
    raise ModelError(f"{label}: expected an Ultralytics .pt, an .onnx file or an OpenVINO folder")


def _literal(value: str, key: str, label: str):
    if len(value) > MAX_METADATA_CHARS:
        raise ModelError(f"{label}: its metadata '{key}' is too large to read")
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value


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
    if min(names) < 0 or len(names) > 10_000:
        raise ModelError(f"{label}: its class names are not a list of 1 to 10,000 classes")
    return names


def _metadata(path: Path, runtime: str, label: str, proto=None) -> dict:
    if runtime == "openvino":
        meta_path = path.parent / "metadata.yaml"
        if not meta_path.is_file():
            raise ModelError(f"{label}: no metadata.yaml beside {path.name}, so its classes and task are unknown; "
                             "export with Ultralytics (format='openvino'), which writes it")
        import yaml

        text = meta_path.read_text(errors="replace")
        if len(text) > MAX_METADATA_CHARS:
            raise ModelError(f"{label}: metadata.yaml is too large to read")
        try:
            meta = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ModelError(f"{label}: metadata.yaml is not valid YAML ({str(exc).splitlines()[0]})") from None
        return meta if isinstance(meta, dict) else {}
    return {p.key: _literal(p.value, p.key, label) for p in proto.metadata_props}


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
    proto = _onnx_proto(path, label) if runtime == "onnx" else None  # parsed once, read twice
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


def _input_shape(path: Path, runtime: str, label: str, proto=None) -> tuple[int | None, tuple[int, int] | None]:
    """(fixed batch or None, fixed (h, w) or None) from the model's first input."""
    if runtime == "openvino":
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


def load_export(path: Path, label: str, digest: str, precision: str = "fp32"):
    """An export as a model on the lean path, checked by running one blank tile through it."""
    import numpy as np

    from .quantize import is_quantized
    from .runtimes import MIN_INT8_SIDE, ONNXNet, OpenVINONet
    from .ultralytics_model import PROBE_SPEC, UltralyticsModel

    export = read_export(path, label)
    try:
        net = OpenVINONet(export.path, precision) if export.runtime == "openvino" else ONNXNet(export.path)
    except Exception as exc:
        raise ModelError(f"{label} could not be opened by {export.runtime} ({str(exc).splitlines()[0][:200]})") from None
    model = UltralyticsModel.from_export(net, export.task, export.names, export.stride, export.input_hw,
                                         export.runtime, label, digest, export.kpt_shape)
    if export.runtime == "openvino" and is_quantized(net._model):
        model.min_input = MIN_INT8_SIDE  # smaller inputs crash 8-bit graphs on OpenVINO's CPU plugin
    probe = np.zeros((64, 64, 3), np.uint8)
    x, layout = model._prepare([probe], None)
    try:
        out = net(x)
    except Exception as exc:
        raise ModelError(f"{label} failed on a blank tile ({str(exc).splitlines()[0][:200]})") from None
    _check_outputs(out, export, label)
    model._finish(out, layout, PROBE_SPEC)  # the same outputs through the model's NMS and mask decoding
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
