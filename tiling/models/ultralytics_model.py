"""Ultralytics models on a lean batch path.

Models with Ultralytics' ``Detect``/``Segment``/``OBB``/``Pose`` heads (YOLOv8/9/10/11/26 detect,
YOLOv8/11 seg, -obb and -pose, FastSAM) run this way: tiles are stacked as one tensor, padded at the
bottom/right only (so boxes, masks and keypoints need no letterbox shift), run through the network,
filtered by Ultralytics' own NMS (its rotated NMS for oriented boxes), and masks are decoded only
inside each box. Other heads (RT-DETR, YOLO26-seg, ...) go through Ultralytics
``predict``, un-letterboxed the same way (:mod:`.decoding`). The forward pass may be swapped for an exported runtime
(:mod:`tiling.models.runtimes`); everything around it stays the same, so results match torch.
"""
from __future__ import annotations

import copy
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..detections import Detections
from .base import InferSpec, Model, ModelError, torch_threads
from .runtimes import MIN_INT8_SIDE, Precision, Runtime, backend
from .decoding import decode_rows, predict_general

LOG = logging.getLogger(__name__)
PAD_VALUE = 114  # Ultralytics' letterbox grey
FAST_HEADS = ("Detect", "Segment", "v10Detect", "OBB", "OBB26", "Pose", "Pose26")
PROBE_SPEC = InferSpec(conf=0.5, iou=0.7, max_det=10)  # one dummy tile proves a layout runs


@dataclass(frozen=True)
class NetInfo:
    """What the lean path knows of a network besides its weights: an export says it in its metadata, a
    checkpoint in its model object (:meth:`of`)."""

    task: str
    names: dict[int, str]
    stride: int = 32
    input_hw: tuple[int, int] | None = None  # a fixed input (height, width); None: any multiple of stride
    kpt_shape: tuple[int, int] | None = None  # a pose model's (points, values per point)
    train_imgsz: int = 640

    @classmethod
    def of(cls, yolo) -> NetInfo:
        """An Ultralytics model object's task, names, training size and keypoint shape."""
        train_args = getattr(getattr(yolo, "model", None), "args", None)
        imgsz = train_args.get("imgsz", 640) if isinstance(train_args, dict) else 640
        head = getattr(getattr(yolo, "model", None), "model", [None])[-1]
        kpt = tuple(getattr(head, "kpt_shape", ())) if yolo.task == "pose" else None
        return cls(yolo.task, {int(k): str(v) for k, v in yolo.names.items()}, kpt_shape=kpt,
                   train_imgsz=int(imgsz if isinstance(imgsz, (int, float)) else max(imgsz)))


class UltralyticsModel(Model):
    """An Ultralytics model with a lock (they are not thread-safe) and the lean batch path.

    ``runtime`` and ``precision`` say what its forward pass runs on; :meth:`run_on` is the one way to
    change them. ``agreement``: an 8-bit copy's agreement with full precision (:mod:`.quantize`).
    """

    def __init__(self, yolo=None, source: str = "", digest: str = "", *, net=None, info: NetInfo | None = None,
                 runtime: Runtime = Runtime.TORCH, precision: Precision = Precision.FP32):
        """From an Ultralytics model object ``yolo`` (its torch network set up for the lean path when its
        head allows, else run through Ultralytics ``predict``), or from an exported ``net`` and its ``info``."""
        if (yolo is None) == (net is None):
            raise TypeError("UltralyticsModel takes an Ultralytics model or an exported net with its info")
        info = info or NetInfo.of(yolo)
        self.yolo, self.source, self.digest = yolo, source, digest
        self.task, self.names, self.kpt_shape = info.task, dict(info.names), info.kpt_shape
        self.stride, self.input_hw, self.train_imgsz = int(info.stride), info.input_hw, info.train_imgsz
        self.runtime, self.precision = runtime, precision
        self.runtime_note = ""
        self.agreement: float | None = None
        self.net = net
        self.min_input = MIN_INT8_SIDE if getattr(net, "quantized", False) else 0  # 8-bit graphs need 96 a side
        self._lock = threading.Lock()
        self._end2end = False
        self._fast = net is not None or self._prepare_fast_path()

    @classmethod
    def from_export(cls, net, info: NetInfo, runtime: Runtime, source: str, digest: str,
                    precision: Precision = Precision.FP32) -> UltralyticsModel:
        """A deployed export (ONNX, OpenVINO IR) on the same lean path; an 8-bit graph runs at ``INT8``."""
        precision = Precision.INT8 if getattr(net, "quantized", False) else precision
        return cls(source=source, digest=digest, net=net, info=info, runtime=runtime, precision=precision)

    @property
    def runtime_label(self) -> str:
        """The runtime as shown to people: ``openvino``, or ``openvino-int8`` when not at full precision."""
        return str(self.runtime) if self.precision is Precision.FP32 else f"{self.runtime}-{self.precision}"

    # -- set-up ------------------------------------------------------------------------------
    def _prepare_fast_path(self) -> bool:
        net = getattr(self.yolo, "model", None)
        head = getattr(net, "model", [None])[-1] if net is not None else None
        if head is None or type(head).__name__ not in FAST_HEADS:
            return False
        try:
            import torch

            net = net.fuse(verbose=False) if hasattr(net, "fuse") else net
            net = net.float().eval()
            for p in net.parameters():
                p.requires_grad_(False)
            self.net = net
            self.stride = max(32, int(max(getattr(net, "stride", torch.tensor([32])).tolist())))
            self._end2end = bool(getattr(head, "end2end", False))
            self.probe()
            return True
        except Exception as exc:  # unknown layout: the general path is always correct
            LOG.info("falling back to Ultralytics predict for %s: %s", self.source, exc)
            self.net = None
            return False

    def probe(self, inspect: Callable[[object], None] | None = None) -> list[Detections]:
        """One blank 64 px tile through the lean path, to prove the network runs; ``inspect`` sees the
        network's raw outputs before NMS (an export's are checked to be an Ultralytics head's)."""
        import torch

        x, layout = self._prepare([np.zeros((64, 64, 3), np.uint8)], None)
        with torch.inference_mode():
            out = self.net(x)
        if inspect is not None:
            inspect(out)
        return self._finish(out, layout, PROBE_SPEC)

    def run_on(self, net, runtime: Runtime, precision: Precision) -> None:
        """Swap the forward pass for ``net`` (an exported network, :mod:`.nets`), kept only if it runs a blank
        tile: on an error the model keeps its network and the error propagates."""
        if not self._fast:
            raise ModelError(f"{self.source}: this architecture runs through Ultralytics predict, on torch only")
        with self._lock:
            kept = self.net, self.min_input
            self.net, self.min_input = net, MIN_INT8_SIDE if getattr(net, "quantized", False) else 0
            try:
                self.probe()
            except Exception:
                self.net, self.min_input = kept
                raise
            self.runtime, self.precision = runtime, precision

    def use_runtime(self, candidates: Sequence[Runtime], weights: bytes, precision: Precision = Precision.FP32) -> Runtime:
        """Swap the forward pass for the first of ``candidates`` that exports and loads here; ``runtime_note``
        says why the others were not used. A precision a runtime cannot run leaves it at full precision."""
        precision, notes = Precision.from_value(precision), []
        for runtime in map(Runtime.from_value, candidates):
            if runtime is Runtime.TORCH:
                break
            if not self._fast:
                notes.append(f"{runtime}: this architecture runs through Ultralytics predict, kept on torch")
                break
            entry = backend(runtime)
            run_at = precision if entry.supports(precision) else Precision.FP32
            try:
                self.run_on(entry.exported_net(weights, self.digest, run_at), runtime, run_at)
                break
            except Exception as exc:  # a failed export must never stop the model from working
                notes.append(f"{runtime}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
                LOG.warning("runtime %s unavailable for %s, falling back: %s", runtime, self.source, notes[-1])
        self.runtime_note = "; ".join(notes)
        return self.runtime

    def predict_with(self, net, images: Sequence[np.ndarray], spec: InferSpec, min_input: int = 0) -> list[Detections]:
        """``images`` (of one size) through ``net`` in place of this model's network, padded to at least
        ``min_input`` a side, the rest of the lean path unchanged. The model itself is not changed, and
        its lock is held meanwhile, since ``net`` may be the network it runs."""
        stand_in = copy.copy(self)
        stand_in._lock, stand_in.net, stand_in.min_input = threading.Lock(), net, min_input
        with self._lock:
            return stand_in.predict(images, spec)

    # -- inference ---------------------------------------------------------------------------
    def predict(self, images, spec=None, imgsz=None, scale=None):
        images = list(images)
        spec = spec or InferSpec()
        if not images:
            return []
        with self._lock, torch_threads():
            if self._fast:
                return self._predict_fast(images, spec, imgsz, scale)
            return predict_general(self.yolo, images, spec, imgsz, self.names, self.kpt_shape)

    def predict_batches(self, batches, spec=None, imgsz=None, scale=None):
        """Batches of equal-sized images, pipelined where the runtime runs asynchronously (OpenVINO):
        batch k+1 is prepared and started before batch k's outputs go through NMS, so the runtime's
        threads are not left idle while this thread does that work (at 320 px tiles that made
        predict_tiled 12-14% faster). The model stays locked until the iterator is exhausted or closed."""
        spec = spec or InferSpec()
        if not (self._fast and hasattr(self.net, "submit")):
            yield from super().predict_batches(batches, spec, imgsz, scale)
            return
        pending: list = []  # (handle, layout) of batches started and not yet collected

        def oldest() -> list[Detections]:
            handle, layout = pending.pop(0)
            return self._finish_alongside(self.net.collect(handle), layout, spec)

        with self._lock:
            try:
                for images in batches:
                    images = list(images)
                    if not images or not all(im.shape == images[0].shape for im in images):
                        while pending:  # nothing to run, or sizes that run one by one
                            yield oldest()
                        yield self._predict_fast(images, spec, imgsz, scale) if images else []
                        continue
                    x, layout = self._prepare(images, imgsz, scale)
                    if pending and (pending[-1][1] != layout or len(images) == 1):
                        # Another shape (or a lone image) runs on another compile, whose threads would
                        # fight this one's for the cores: let the last batch finish first.
                        yield oldest()
                    pending.append((self.net.submit(x), layout))
                    if len(pending) > 1:
                        yield oldest()
                while pending:
                    yield oldest()
            finally:
                for handle, _ in pending:  # abandoned mid-way: let the requests finish before unlocking
                    self.net.collect(handle)

    def _finish_alongside(self, out, layout, spec: InferSpec) -> list[Detections]:
        """``_finish`` on one torch thread: the runtime's threads hold the cores meanwhile, and a
        second thread made this thread's NMS spin at OpenMP barriers (0.10 -> 0.15 CPU-s an image)."""
        with torch_threads(1):
            return self._finish(out, layout, spec)

    def _predict_fast(self, images, spec: InferSpec, imgsz: int | None, scale: float | None = None) -> list[Detections]:
        import torch

        h, w = images[0].shape[:2]
        same = all(im.shape[:2] == (h, w) for im in images)
        if not same:  # differently sized images run one by one (rare: the pipeline sends equal tiles)
            out: list[Detections] = []
            for im in images:
                out += self._predict_fast([im], spec, imgsz, scale)
            return out
        x, layout = self._prepare(images, imgsz, scale)
        with torch.inference_mode():
            out = self.net(x)
        if isinstance(self.net, torch.nn.Module):
            return self._finish(out, layout, spec)
        return self._finish_alongside(out, layout, spec)  # the runtime's threads may spin on

    def _prepare(self, images, imgsz, scale=None):
        """The network's input for equal-sized images (resized by ``scale``, or to ``imgsz`` on the long side),
        and what ``_finish`` needs to map boxes back."""
        import cv2
        import torch

        h, w = images[0].shape[:2]
        scale = float(scale) if scale else (1.0 if not imgsz else 1.0 * imgsz / max(h, w))
        if self.input_hw:  # a fixed input: pad up to it, or shrink to fit it (letterboxed at the top left)
            scale = min(scale, self.input_hw[0] / h, self.input_hw[1] / w)
        nh, nw = (h, w) if scale == 1.0 else (max(1, round(h * scale)), max(1, round(w * scale)))
        ph, pw = self.input_hw or (max(self.min_input, math.ceil(nh / self.stride) * self.stride),
                                   max(self.min_input, math.ceil(nw / self.stride) * self.stride))
        # One pass per tile straight into the network's layout: BGR HWC uint8 -> RGB CHW float in [0, 1].
        batch = np.empty((len(images), 3, ph, pw), np.float32)
        if (ph, pw) != (nh, nw):
            batch.fill(PAD_VALUE / 255.0)
        for i, im in enumerate(images):
            src = im if scale == 1.0 else cv2.resize(im, (nw, nh), interpolation=cv2.INTER_LINEAR)
            np.multiply(src.transpose(2, 0, 1)[::-1], np.float32(1 / 255.0), out=batch[i, :, :nh, :nw],
                        casting="unsafe")
        return torch.from_numpy(batch), (h, w, nh, nw, ph, pw)

    def _finish(self, out, layout, spec: InferSpec) -> list[Detections]:
        """NMS and boxes (box-cropped masks, oriented boxes, keypoints) in each input image's pixels."""
        import torch
        import torchvision  # noqa: F401  Ultralytics' NMS uses its C++ kernel only once it is imported
        from ultralytics.utils.nms import non_max_suppression

        with torch.inference_mode():
            preds, proto = out[0] if isinstance(out[0], (tuple, list)) else (out[0], None)
            if isinstance(preds, (tuple, list)):
                preds = preds[0]
            dets = non_max_suppression(
                preds, spec.conf, spec.iou, classes=list(spec.classes) if spec.classes is not None else None,
                max_det=spec.max_det, nc=0 if self.task == "detect" else len(self.names),
                end2end=self._end2end, rotated=self.task == "obb",
            )
        return [decode_rows(d.numpy(), None if proto is None else proto[i].numpy(), self.task, self.names,
                            self.kpt_shape, layout) for i, d in enumerate(dets)]
