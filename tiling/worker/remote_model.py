"""A visitor's model as the pipeline sees it, run in its worker process (:mod:`.pool`).

``RemoteModel`` has what ``predict_tiled``, ``predict_full`` and the page read of a model (``task``,
``names``, ``runtime``, ``precision``, ``input_hw``, ``kpt_shape``...), taken from the worker's report
and checked. Tiles go to the worker as uint8 arrays; detections come back as checked arrays
(:mod:`.wire`). The worker keeps the loaded model, so another tile size runs without reloading.
"""
from __future__ import annotations

import collections
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..detections import Detections
from ..models.base import InferSpec, Model
from ..models.runtimes import Precision, Runtime
from .failures import work_text
from .protocol import ProtocolError
from .wire import from_wire, names_from_wire

TASKS = ("detect", "segment", "obb", "pose")
REPLY_BYTES_PER_PIXEL = 8  # masks of one image may cover it this many times over
REPLY_BASE = 16 << 20


def _pair(value) -> tuple[int, int] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(type(v) is int and 0 < v <= 100_000 for v in value)):
        raise ProtocolError(f"the worker reported {str(value)[:40]} where a pair of sizes belongs")
    return int(value[0]), int(value[1])


class RemoteModel(Model):
    """A model loaded and run in a worker process; made by :meth:`.WorkerPool.load`."""

    def __init__(self, pool, digest: str, variant: str, label: str, info: dict, load_request: tuple):
        self.pool, self.digest, self.variant, self.label = pool, digest, variant, label
        self.load_request = load_request  # what reloads it should the pool let its worker go
        if info.get("task") not in TASKS:
            raise ProtocolError(f"the worker reported the task {str(info.get('task'))[:40]!r}")
        self.task = info["task"]
        self.names = names_from_wire(info.get("names"))
        self.runtime = Runtime.from_value(info.get("runtime"))
        self.precision = Precision.from_value(info.get("precision") or "fp32")
        self.runtime_note = str(info.get("runtime_note") or "")[:2000]
        self.source = label
        agreement = info.get("agreement")
        self.agreement = float(agreement) if isinstance(agreement, (int, float)) else None
        self.input_hw = _pair(info.get("input_hw"))
        self.kpt_shape = _pair(info.get("kpt_shape")) if self.task == "pose" else None
        params = info.get("params")
        self.params = int(params) if type(params) is int else None  # None for an export
        imgsz = info.get("train_imgsz")
        self.train_imgsz = imgsz if type(imgsz) is int and 32 <= imgsz <= 8192 else 640

    @property
    def runtime_label(self) -> str:
        """The runtime as the page shows it ("openvino", "openvino-int8")."""
        return str(self.runtime) if self.precision is Precision.FP32 else f"{self.runtime}-{self.precision}"

    def predict(self, images: Sequence[np.ndarray], spec: InferSpec | None = None, imgsz: int | None = None,
                scale: float | None = None) -> list[Detections]:
        spec = spec or InferSpec()
        images = [np.ascontiguousarray(im, np.uint8) for im in images]
        if not images:
            return []
        shapes = [im.shape[:2] for im in images]
        header = {"op": "predict", "spec": _spec_dict(spec), "imgsz": imgsz, "scale": scale}
        reply, arrays = self.pool.call(self, header, images, self._seconds(shapes, imgsz),
                                       work_text(shapes, full_pass=bool(imgsz)), self._max_reply(shapes))
        try:
            return from_wire(reply.get("items"), arrays, shapes, self.names, spec.max_det)
        except (ProtocolError, ValueError) as exc:
            raise self.pool.broken(self, str(exc), work_text(shapes, full_pass=bool(imgsz))) from None

    def predict_batches(self, batches: Iterable[Sequence[np.ndarray]], spec: InferSpec | None = None,
                        imgsz: int | None = None, scale: float | None = None) -> Iterator[list[Detections]]:
        """All batches in one stream to the worker, which runs the next batch (pipelined as in-process)
        while this thread maps the last."""
        spec = spec or InferSpec()
        sent: collections.deque = collections.deque()  # (shapes, what, seconds) of batches sent, oldest first

        def prepared():
            for images in batches:
                images = [np.ascontiguousarray(im, np.uint8) for im in images]
                shapes = [im.shape[:2] for im in images]
                seconds = self._seconds(shapes, imgsz)
                sent.append((shapes, work_text(shapes, full_pass=bool(imgsz)), seconds))
                yield images, seconds, self._max_reply(shapes)

        header = {"op": "batches", "spec": _spec_dict(spec), "imgsz": imgsz, "scale": scale}
        for reply, arrays in self.pool.stream(self, header, prepared(), lambda: sent[0][1:] if sent else ("", 0)):
            shapes, what, _ = sent.popleft()
            try:
                yield from_wire(reply.get("items"), arrays, shapes, self.names, spec.max_det)
            except (ProtocolError, ValueError) as exc:
                raise self.pool.broken(self, str(exc), what) from None

    def _seconds(self, shapes, imgsz: int | None) -> float:
        """The wall deadline for one batch: by its pixels (the full-image pass: at least imgsz squared)."""
        pixels = sum(h * w for h, w in shapes)
        return self.pool.limits.batch_seconds(max(pixels, imgsz * imgsz) if imgsz else pixels)

    @staticmethod
    def _max_reply(shapes) -> int:
        return REPLY_BASE + REPLY_BYTES_PER_PIXEL * sum(h * w for h, w in shapes)

    def worker_memory(self) -> dict[str, int]:
        """The worker's RSS and PSS in bytes, {} when it is not running (benchmarks)."""
        process = self.pool.workers().get(self.digest)
        return process.memory() if process is not None else {}

    def __repr__(self) -> str:
        return f"RemoteModel(task={self.task!r}, classes={len(self.names)}, runtime={self.runtime_label!r})"


def _spec_dict(spec: InferSpec) -> dict:
    return {"conf": spec.conf, "iou": spec.iou, "classes": list(spec.classes) if spec.classes is not None else None,
            "max_det": spec.max_det, "batch_size": spec.batch_size, "imgsz": spec.imgsz,
            "include_full": spec.include_full}
