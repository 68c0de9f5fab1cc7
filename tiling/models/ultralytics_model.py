"""Ultralytics models on a lean batch path.

Models with Ultralytics' ``Detect``/``Segment``/``OBB``/``Pose`` heads (YOLOv8/9/10/11/26 detect,
YOLOv8/11 seg, -obb and -pose, FastSAM) run this way: tiles are stacked as one tensor, padded at the
bottom/right only (so boxes, masks and keypoints need no letterbox shift), run through the network,
filtered by Ultralytics' own NMS (its rotated NMS for oriented boxes), and masks are decoded only
inside each box. Other heads (RT-DETR, YOLO26-seg, ...) go through Ultralytics
``predict``, un-letterboxed the same way. The forward pass may be swapped for an exported runtime
(:mod:`tiling.models.runtimes`); everything around it stays the same, so results match torch.
"""
from __future__ import annotations

import logging
import math
import threading
from typing import Sequence

import numpy as np

from ..detections import Detections
from .base import InferSpec, Model, torch_threads
from .masks import attach_masks, proto_logits, slice_map

LOG = logging.getLogger(__name__)
PAD_VALUE = 114  # Ultralytics' letterbox grey
FAST_HEADS = ("Detect", "Segment", "v10Detect", "OBB", "OBB26", "Pose", "Pose26")
PROBE_SPEC = InferSpec(conf=0.5, iou=0.7, max_det=10)  # one dummy tile proves a layout runs


class UltralyticsModel(Model):
    """An Ultralytics model with a lock (they are not thread-safe) and the lean batch path."""

    def __init__(self, yolo, source: str = "", digest: str = ""):
        self.yolo = yolo
        self.task = yolo.task
        self.names = {int(k): str(v) for k, v in yolo.names.items()}
        self.source = source
        self.digest = digest
        self.runtime = "torch"
        self.runtime_note = ""
        self.agreement: float | None = None  # an 8-bit copy's agreement with full precision (quantize.use_int8)
        self.min_input = 0  # inputs are padded to at least this many pixels a side (8-bit OpenVINO graphs need 96)
        train_args = getattr(getattr(yolo, "model", None), "args", None)
        imgsz = train_args.get("imgsz", 640) if isinstance(train_args, dict) else 640
        self.train_imgsz = int(imgsz if isinstance(imgsz, (int, float)) else max(imgsz))
        self._lock = threading.Lock()
        self.net = None
        self.stride = 32
        self.input_hw: tuple[int, int] | None = None  # an export's fixed input size; None: any multiple of stride
        self._end2end = False
        head = getattr(getattr(yolo, "model", None), "model", [None])[-1]
        self.kpt_shape = tuple(getattr(head, "kpt_shape", ())) if self.task == "pose" else None
        self._fast = self._prepare_fast_path()

    @classmethod
    def from_export(cls, net, task: str, names: dict[int, str], stride: int, input_hw: tuple[int, int] | None,
                    runtime: str, source: str, digest: str,
                    kpt_shape: tuple[int, int] | None = None) -> UltralyticsModel:
        """A deployed export (ONNX, OpenVINO IR) on the same lean path: its network, described by its metadata."""
        self = cls.__new__(cls)
        self.yolo, self.task, self.names, self.source, self.digest = None, task, dict(names), source, digest
        self.runtime, self.runtime_note = runtime, ""
        self.agreement, self.min_input = None, 0
        self.train_imgsz = int(max(input_hw)) if input_hw else 640
        self._lock = threading.Lock()
        self.net, self.stride, self.input_hw = net, int(stride), input_hw
        self._end2end, self._fast = False, True
        self.kpt_shape = tuple(kpt_shape) if kpt_shape else None
        return self

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
            probe = np.zeros((64, 64, 3), np.uint8)
            self._predict_fast([probe], PROBE_SPEC, None)
            return True
        except Exception as exc:  # unknown layout: the general path is always correct
            LOG.info("falling back to Ultralytics predict for %s: %s", self.source, exc)
            self.net = None
            return False

    def use_runtime(self, candidates: Sequence[str], weights: bytes, precision: str = "fp32") -> str:
        """Swap the forward pass for the first of ``candidates`` that exports and loads here."""
        from . import runtimes

        notes = []
        for name in candidates:
            if name == "torch":
                break
            if not self._fast:
                notes.append(f"{name}: this architecture runs through Ultralytics predict, kept on torch")
                break
            try:
                net = runtimes.exported_net(weights, self.digest, name, precision)
                with self._lock:
                    torch_net, self.net = self.net, net
                    try:
                        self._predict_fast([np.zeros((64, 64, 3), np.uint8)], PROBE_SPEC, None)
                    except Exception:
                        self.net = torch_net
                        raise
                self.runtime = name if precision == "fp32" or name != "openvino" else f"{name}-{precision}"
                break
            except Exception as exc:  # a failed export must never stop the model from working
                notes.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
                LOG.warning("runtime %s unavailable for %s, falling back: %s", name, self.source, notes[-1])
        self.runtime_note = "; ".join(notes)
        return self.runtime

    # -- inference ---------------------------------------------------------------------------
    def predict(self, images, spec=None, imgsz=None, scale=None):
        images = list(images)
        spec = spec or InferSpec()
        if not images:
            return []
        with self._lock, torch_threads():
            if self._fast:
                return self._predict_fast(images, spec, imgsz, scale)
            return self._predict_ultralytics(images, spec, imgsz)

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

        h, w, nh, nw, ph, pw = layout
        with torch.inference_mode():
            preds, proto = out[0] if isinstance(out[0], (tuple, list)) else (out[0], None)
            if isinstance(preds, (tuple, list)):
                preds = preds[0]
            dets = non_max_suppression(
                preds, spec.conf, spec.iou, classes=list(spec.classes) if spec.classes is not None else None,
                max_det=spec.max_det, nc=0 if self.task == "detect" else len(self.names),
                end2end=self._end2end, rotated=self.task == "obb",
            )
        sx, sy = nw / w, nh / h
        results = []
        for i, d in enumerate(dets):
            d = d.numpy()
            if self.task in ("obb", "pose"):
                results.append(self._decode_extra(d, sx, sy, w, h))
                continue
            xyxy = d[:, :4] / np.array([sx, sy, sx, sy], np.float32)
            xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
            det = Detections(xyxy=xyxy, confidence=d[:, 4], class_id=d[:, 5], names=self.names)
            if proto is not None:
                maps = proto[i].numpy()  # (nm, ph/4, pw/4) prototype masks
                coef = d[:, 6:]
                ratio_x, ratio_y = maps.shape[2] / pw, maps.shape[1] / ph
                det = attach_masks(det, (w, h), lambda k, r: proto_logits(maps, coef[k], r),
                                    sx * ratio_x, sy * ratio_y, 0.0, 0.0, threshold=0.0)
            results.append(det)
        return results

    def _decode_extra(self, d: np.ndarray, sx: float, sy: float, w: int, h: int) -> Detections:
        """Rows of an OBB head (cx, cy, w, h, conf, class, angle) or a pose head (x0, y0, x1, y1, conf,
        class, keypoints) after NMS, mapped from network input pixels to the image's."""
        if self.task == "obb":
            obb = np.concatenate([d[:, 0:1] / sx, d[:, 1:2] / sy, d[:, 2:4] / ((sx + sy) / 2), d[:, 6:7]], axis=1)
            return Detections.from_obb(obb, d[:, 4], d[:, 5], self.names, clip=(w, h))
        xyxy = np.clip(d[:, :4] / np.array([sx, sy, sx, sy], np.float32), 0, [w, h, w, h]).astype(np.float32)
        kp = keypoints_from(d[:, 6:], self.kpt_shape, sx, sy)
        kp[..., 0] = np.clip(kp[..., 0], 0, w)  # clipped to the image, as Ultralytics does
        kp[..., 1] = np.clip(kp[..., 1], 0, h)
        return Detections(xyxy=xyxy, confidence=d[:, 4], class_id=d[:, 5], names=self.names, keypoints=kp)

    def _predict_ultralytics(self, images, spec: InferSpec, imgsz: int | None) -> list[Detections]:
        h, w = images[0].shape[:2]
        res = self.yolo.predict(
            list(images), imgsz=imgsz or max(h, w), conf=spec.conf, iou=spec.iou,
            classes=list(spec.classes) if spec.classes is not None else None, max_det=spec.max_det, verbose=False, batch=len(images), device="cpu",
        )
        out = []
        for r, im in zip(res, images):
            ih, iw = im.shape[:2]
            b = r.boxes
            if r.obb is not None:
                o = r.obb
                out.append(Detections.from_obb(o.xywhr.numpy(), o.conf.numpy(), o.cls.numpy(), self.names, clip=(iw, ih)))
                continue
            kp = None
            if self.task == "pose":
                data = r.keypoints.data.numpy() if r.keypoints is not None else np.zeros((0, *self.kpt_shape))
                kp = keypoints_from(data.reshape(len(b), -1), self.kpt_shape, 1.0, 1.0)  # already in image pixels
            det = Detections(xyxy=b.xyxy.numpy(), confidence=b.conf.numpy(), class_id=b.cls.numpy(), names=self.names,
                             keypoints=kp)
            if r.masks is not None and len(det):
                maps = r.masks.data.numpy().astype(np.float32)  # letterboxed input size, centre-padded
                mh, mw = maps.shape[1:]
                gain = min(mh / ih, mw / iw)
                pad_x, pad_y = (mw - iw * gain) / 2, (mh - ih * gain) / 2
                det = attach_masks(det, (iw, ih), lambda k, r_: slice_map(maps[k], r_), gain, gain, pad_x, pad_y,
                                    threshold=0.5)
            out.append(det)
        return out


def keypoints_from(flat: np.ndarray, kpt_shape, sx: float, sy: float) -> np.ndarray:
    """(N, K, 3) keypoints from a head's flat (N, K * D) rows in network pixels; D = 2 gets visibility 1."""
    k, dims = (int(v) for v in kpt_shape)
    kp = np.asarray(flat, np.float32).reshape(len(flat), k, dims)
    out = np.ones((len(kp), k, 3), np.float32)
    out[..., :dims] = kp[..., :3]
    out[..., 0] /= sx
    out[..., 1] /= sy
    return out
