"""Models: load Ultralytics checkpoints safely and run batches of tiles through them.

Any callable ``fn(list_of_bgr_images) -> list[Detections]`` (tile coordinates) is a model too, so
the library is not tied to Ultralytics.

Models with Ultralytics' ``Detect``/``Segment`` heads (YOLOv8/9/10/11/26 detect, YOLOv8/11 seg,
FastSAM) run on a lean path: tiles are stacked as one tensor, padded at the bottom/right only (so
boxes and masks need no letterbox shift), run through the network, filtered by Ultralytics' own
NMS, and masks are decoded only inside each box. Other heads (RT-DETR, YOLO26-seg, ...) go through
Ultralytics ``predict``, un-letterboxed the same way.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from .detections import Detections, mask_boxes_for

os.environ.setdefault("ULTRALYTICS_SAFE_LOAD", "1")  # read by Ultralytics at import: no pickled code runs

LOG = logging.getLogger(__name__)
SUPPORTED_TASKS = ("detect", "segment")
PAD_VALUE = 114  # Ultralytics' letterbox grey


class ModelError(ValueError):
    """A model that cannot be loaded or used, with a message meant for the person who supplied it."""


@contextlib.contextmanager
def torch_threads(n: int | None = None):
    """Use ``n`` intra-op threads (default: every core this process may use) and restore the old count."""
    import torch

    if n is None:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    old = torch.get_num_threads()
    if n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


class Model:
    """Base of every model the pipeline takes: tiles in, tile-coordinate ``Detections`` out."""

    task: str = "detect"
    names: dict[int, str]
    runtime: str = "python"
    source: str = ""

    def predict(
        self,
        images: Sequence[np.ndarray],
        imgsz: int | None = None,
        conf: float = 0.25,
        iou: float = 0.7,
        classes: Sequence[int] | None = None,
        max_det: int = 300,
    ) -> list[Detections]:
        raise NotImplementedError

    def predict_batches(
        self,
        batches: Iterable[Sequence[np.ndarray]],
        imgsz: int | None = None,
        conf: float = 0.25,
        iou: float = 0.7,
        classes: Sequence[int] | None = None,
        max_det: int = 300,
    ) -> Iterator[list[Detections]]:
        """``predict`` over each batch in turn, yielding as each is done. A model may run the next
        batch while the caller handles this one."""
        for images in batches:
            yield self.predict(images, imgsz=imgsz, conf=conf, iou=iou, classes=classes, max_det=max_det)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, classes={len(self.names)}, runtime={self.runtime!r})"


class CallableModel(Model):
    """Wraps ``fn(images) -> list[Detections]``; thresholds and class filters are applied after it."""

    def __init__(self, fn: Callable, names: dict[int, str] | None = None, task: str | None = None):
        self.fn = fn
        self.names = dict(names if names is not None else getattr(fn, "names", {}) or {})
        self.task = task or getattr(fn, "task", "detect")
        self.source = getattr(fn, "__name__", type(fn).__name__)

    def predict(self, images, imgsz=None, conf=0.25, iou=0.7, classes=None, max_det=300):
        out = self.fn(list(images))
        if len(out) != len(images):
            raise ModelError(f"the model returned {len(out)} results for {len(images)} images")
        results = []
        for det in out:
            if not isinstance(det, Detections):
                raise ModelError(f"the model must return tiling.Detections, got {type(det).__name__}")
            det = det.filter(conf=conf, classes=classes)
            if not det.names:
                det.names = dict(self.names)
            results.append(det)
        return results


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
        train_args = getattr(getattr(yolo, "model", None), "args", None)
        imgsz = train_args.get("imgsz", 640) if isinstance(train_args, dict) else 640
        self.train_imgsz = int(imgsz if isinstance(imgsz, (int, float)) else max(imgsz))
        self._lock = threading.Lock()
        self.net = None
        self.stride = 32
        self._end2end = False
        self._fast = self._prepare_fast_path()

    # -- set-up ------------------------------------------------------------------------------
    def _prepare_fast_path(self) -> bool:
        net = getattr(self.yolo, "model", None)
        head = getattr(net, "model", [None])[-1] if net is not None else None
        if head is None or type(head).__name__ not in ("Detect", "Segment", "v10Detect"):
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
            self._predict_fast([probe], None, 0.5, 0.7, None, 10)
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
                        self._predict_fast([np.zeros((64, 64, 3), np.uint8)], None, 0.5, 0.7, None, 10)
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
    def predict(self, images, imgsz=None, conf=0.25, iou=0.7, classes=None, max_det=300):
        images = list(images)
        if not images:
            return []
        with self._lock, torch_threads():
            if self._fast:
                return self._predict_fast(images, imgsz, conf, iou, classes, max_det)
            return self._predict_ultralytics(images, imgsz, conf, iou, classes, max_det)

    def predict_batches(self, batches, imgsz=None, conf=0.25, iou=0.7, classes=None, max_det=300):
        """Batches of equal-sized images, pipelined where the runtime runs asynchronously (OpenVINO):
        batch k+1 is prepared and started before batch k's outputs go through NMS, so the runtime's
        threads are not left idle while this thread does that work (at 320 px tiles that made
        predict_tiled 12-14% faster). The model stays locked until the iterator is exhausted or closed."""
        if not (self._fast and hasattr(self.net, "submit")):
            yield from super().predict_batches(batches, imgsz, conf, iou, classes, max_det)
            return
        pending: list = []  # (handle, layout) of batches started and not yet collected

        def oldest() -> list[Detections]:
            handle, layout = pending.pop(0)
            return self._finish_alongside(self.net.collect(handle), layout, conf, iou, classes, max_det)

        with self._lock:
            try:
                for images in batches:
                    images = list(images)
                    if not images or not all(im.shape == images[0].shape for im in images):
                        while pending:  # nothing to run, or sizes that run one by one
                            yield oldest()
                        yield self._predict_fast(images, imgsz, conf, iou, classes, max_det) if images else []
                        continue
                    x, layout = self._prepare(images, imgsz)
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

    def _finish_alongside(self, out, layout, conf, iou, classes, max_det) -> list[Detections]:
        """``_finish`` on one torch thread: the runtime's threads hold the cores meanwhile, and a
        second thread made this thread's NMS spin at OpenMP barriers (0.10 -> 0.15 CPU-s an image)."""
        with torch_threads(1):
            return self._finish(out, layout, conf, iou, classes, max_det)

    def _predict_fast(self, images, imgsz, conf, iou, classes, max_det) -> list[Detections]:
        import torch

        h, w = images[0].shape[:2]
        same = all(im.shape[:2] == (h, w) for im in images)
        if not same:  # differently sized images run one by one (rare: the pipeline sends equal tiles)
            out: list[Detections] = []
            for im in images:
                out += self._predict_fast([im], imgsz, conf, iou, classes, max_det)
            return out
        x, layout = self._prepare(images, imgsz)
        with torch.inference_mode():
            out = self.net(x)
        if isinstance(self.net, torch.nn.Module):
            return self._finish(out, layout, conf, iou, classes, max_det)
        return self._finish_alongside(out, layout, conf, iou, classes, max_det)  # the runtime's threads may spin on

    def _prepare(self, images, imgsz):
        """The network's input for equal-sized images, and what ``_finish`` needs to map boxes back."""
        import cv2
        import torch

        h, w = images[0].shape[:2]
        scale = 1.0 if not imgsz else min(1.0 * imgsz / max(h, w), 1e9)
        nh, nw = (h, w) if scale == 1.0 else (max(1, round(h * scale)), max(1, round(w * scale)))
        ph, pw = math.ceil(nh / self.stride) * self.stride, math.ceil(nw / self.stride) * self.stride
        # One pass per tile straight into the network's layout: BGR HWC uint8 -> RGB CHW float in [0, 1].
        batch = np.empty((len(images), 3, ph, pw), np.float32)
        if (ph, pw) != (nh, nw):
            batch.fill(PAD_VALUE / 255.0)
        for i, im in enumerate(images):
            src = im if scale == 1.0 else cv2.resize(im, (nw, nh), interpolation=cv2.INTER_LINEAR)
            np.multiply(src.transpose(2, 0, 1)[::-1], np.float32(1 / 255.0), out=batch[i, :, :nh, :nw],
                        casting="unsafe")
        return torch.from_numpy(batch), (h, w, nh, nw, ph, pw)

    def _finish(self, out, layout, conf, iou, classes, max_det) -> list[Detections]:
        """NMS and boxes (and box-cropped masks) in each input image's pixels."""
        import torch
        import torchvision  # noqa: F401  Ultralytics' NMS uses its C++ kernel only once it is imported
        from ultralytics.utils.nms import non_max_suppression

        h, w, nh, nw, ph, pw = layout
        with torch.inference_mode():
            preds, proto = out[0] if isinstance(out[0], (tuple, list)) else (out[0], None)
            if isinstance(preds, (tuple, list)):
                preds = preds[0]
            dets = non_max_suppression(
                preds, conf, iou, classes=list(classes) if classes is not None else None, max_det=max_det,
                nc=len(self.names) if self.task == "segment" else 0, end2end=self._end2end,
            )
        sx, sy = nw / w, nh / h
        results = []
        for i, d in enumerate(dets):
            d = d.numpy()
            xyxy = d[:, :4] / np.array([sx, sy, sx, sy], np.float32)
            xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
            det = Detections(xyxy=xyxy, confidence=d[:, 4], class_id=d[:, 5], names=self.names)
            if proto is not None:
                maps = proto[i].numpy()  # (nm, ph/4, pw/4) prototype masks
                coef = d[:, 6:]
                ratio_x, ratio_y = maps.shape[2] / pw, maps.shape[1] / ph
                det = _attach_masks(det, (w, h), lambda k, r: _proto_logits(maps, coef[k], r),
                                    sx * ratio_x, sy * ratio_y, 0.0, 0.0, threshold=0.0)
            results.append(det)
        return results

    def _predict_ultralytics(self, images, imgsz, conf, iou, classes, max_det) -> list[Detections]:
        h, w = images[0].shape[:2]
        res = self.yolo.predict(
            list(images), imgsz=imgsz or max(h, w), conf=conf, iou=iou, classes=list(classes) if classes else None,
            max_det=max_det, verbose=False, batch=len(images), device="cpu",
        )
        out = []
        for r, im in zip(res, images):
            ih, iw = im.shape[:2]
            b = r.boxes
            det = Detections(xyxy=b.xyxy.numpy(), confidence=b.conf.numpy(), class_id=b.cls.numpy(), names=self.names)
            if r.masks is not None and len(det):
                maps = r.masks.data.numpy().astype(np.float32)  # letterboxed input size, centre-padded
                mh, mw = maps.shape[1:]
                gain = min(mh / ih, mw / iw)
                pad_x, pad_y = (mw - iw * gain) / 2, (mh - ih * gain) / 2
                det = _attach_masks(det, (iw, ih), lambda k, r_: _slice(maps[k], r_), gain, gain, pad_x, pad_y,
                                    threshold=0.5)
            out.append(det)
        return out


def _proto_logits(maps: np.ndarray, coef: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = region
    crop = maps[:, y0:y1, x0:x1]  # clipped at the map's edge for boxes touching the tile border
    return (coef @ crop.reshape(crop.shape[0], -1)).reshape(crop.shape[1:])


def _slice(mask_map: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = region
    return mask_map[y0:y1, x0:x1]


def _attach_masks(det: Detections, size: tuple[int, int], sample, sx: float, sy: float, px: float, py: float,
                  threshold: float) -> Detections:
    """Decode each mask only inside its box; map (sx, sy, px, py): image px -> mask-map px."""
    import cv2

    w, h = size
    boxes = mask_boxes_for(det.xyxy)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    masks = []
    for k, (bx0, by0, bx1, by1) in enumerate(boxes):
        u0, v0 = bx0 * sx + px, by0 * sy + py
        u1, v1 = bx1 * sx + px, by1 * sy + py
        a0, b0 = max(0, int(math.floor(u0)) - 1), max(0, int(math.floor(v0)) - 1)
        a1, b1 = int(math.ceil(u1)) + 1, int(math.ceil(v1)) + 1
        logits = sample(k, (a0, b0, a1, b1))
        b1, a1 = b0 + logits.shape[0], a0 + logits.shape[1]  # clipped by the map's extent
        out_w = max(1, int(round((a1 - a0) / sx)))
        out_h = max(1, int(round((b1 - b0) / sy)))
        up = cv2.resize(np.ascontiguousarray(logits, dtype=np.float32), (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        ox, oy = int(round((a0 - px) / sx)), int(round((b0 - py) / sy))
        m = np.zeros((by1 - by0, bx1 - bx0), bool)
        ys0, xs0 = by0 - oy, bx0 - ox
        src = up[max(0, ys0) : ys0 + m.shape[0], max(0, xs0) : xs0 + m.shape[1]] > threshold
        m[max(0, -ys0) : max(0, -ys0) + src.shape[0], max(0, -xs0) : max(0, -xs0) + src.shape[1]] = src
        masks.append(m)
    return Detections(det.xyxy, det.confidence, det.class_id, masks=masks, mask_boxes=boxes, names=det.names,
                      data=det.data)


# -- loading --------------------------------------------------------------------------------------
def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _enforce_safe_loading() -> None:
    import ultralytics.nn.tasks as tasks

    tasks.SAFE_LOAD = True  # even if Ultralytics was imported before this module set the variable


def _vet_checkpoint(path: Path, label: str) -> dict:
    """Open the checkpoint with ``weights_only`` and the Ultralytics allow-list; nothing in it runs."""
    import pickle
    import zipfile

    from ultralytics.nn.tasks import torch_safe_load

    size = path.stat().st_size
    if size == 0:
        raise ModelError(f"{label} is empty (0 bytes)")
    if not zipfile.is_zipfile(path):
        raise ModelError(
            f"{label} is not a PyTorch checkpoint (a .pt file is a zip archive); it may be truncated or another format"
        )
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    if not any(n.endswith("data.pkl") for n in names):
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            raise ModelError(f"{label} is a TorchScript archive; upload the original Ultralytics .pt weights")
        raise ModelError(f"{label} is a zip file but not a PyTorch checkpoint")
    if any("/code/" in n for n in names):
        raise ModelError(f"{label} is a TorchScript archive; upload the original Ultralytics .pt weights")
    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)
    except (TypeError, pickle.UnpicklingError) as exc:
        text = str(exc)
        if "outside the supported" in text or isinstance(exc, pickle.UnpicklingError) or "Unsupported global" in text:
            raise ModelError(
                f"{label} was refused: it references code or types outside the Ultralytics/PyTorch allow-list "
                "(a checkpoint can hide code that runs when it is opened). Nothing from it was run."
            ) from None
        if "TorchScript" in text:
            raise ModelError(f"{label} is a TorchScript archive; upload the original Ultralytics .pt weights") from None
        raise ModelError(f"{label} is not a loadable checkpoint: the file is truncated or corrupted") from None
    except ModuleNotFoundError as exc:
        raise ModelError(f"{label} needs a Python module that is not available ({exc.name}); refused") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{label} is not a loadable checkpoint: the file is truncated or corrupted ({exc})") from None
    if not isinstance(ckpt, dict) or not (ckpt.get("ema") or ckpt.get("model")):
        keys = list(ckpt)[:3] if isinstance(ckpt, dict) else []
        raise ModelError(
            f"{label} holds only weights (a state_dict with keys like {keys}), not an Ultralytics model; "
            "save it with model.save() or upload the .pt that training wrote"
        )
    model = ckpt.get("ema") or ckpt.get("model")
    task = getattr(model, "task", None) or (ckpt.get("train_args") or {}).get("task")
    if task not in SUPPORTED_TASKS:
        raise ModelError(
            f"{label} is a '{task}' model; Patchwise runs detection and segmentation models only"
        )
    return ckpt


def load_model(source, runtime: str = "auto", name: str | None = None, precision: str = "fp32") -> UltralyticsModel:
    """Load an Ultralytics checkpoint (path, bytes or an official name such as ``yolo11n.pt``) safely.

    The checkpoint is opened with ``weights_only`` and Ultralytics' allow-list first: one that would
    run code is refused with :class:`ModelError` before anything in it runs. Only then is it
    exported for ``runtime``: ``"auto"`` takes the fastest one installed (OpenVINO, then ONNX
    Runtime, then torch on a CPU; torch on a GPU); ``model.runtime`` says which one runs, and
    ``model.runtime_note`` why another was not used. ``precision="bf16"`` lets OpenVINO use the
    CPU's bfloat16 units: faster, with boxes no longer identical to torch's to the pixel.
    """
    from . import runtimes

    try:
        candidates = runtimes.resolve(runtime)
        runtimes.check_precision(precision)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    _enforce_safe_loading()
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
        _vet_checkpoint(path, label)
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


OFFICIAL_NAMES = (
    "yolo11n.pt", "yolo11s.pt", "yolo11n-seg.pt", "yolov8n.pt", "yolov8n-seg.pt", "yolov10n.pt",
    "yolo26n.pt", "rtdetr-l.pt", "FastSAM-s.pt",
)


def _load_official(name: str, runtime: str = "auto", precision: str = "fp32") -> UltralyticsModel:
    """Official checkpoints are fetched by Ultralytics when the host is online; a clear error when not."""
    from ultralytics.utils import is_online

    if Path(name).name != name or name not in OFFICIAL_NAMES:
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
