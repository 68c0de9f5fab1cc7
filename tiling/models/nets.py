"""Exported networks on a fast CPU runtime: OpenVINO IR and ONNX models with the torch forward's outputs.

Each takes the batch ``UltralyticsModel`` prepares and returns ``(preds,)`` or ``((preds, proto),)`` as torch
tensors, so NMS and mask decoding stay those of the torch path. :mod:`.runtimes` says which runtime opens
which export.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..optional import require
from ..util import usable_cpus

# OpenVINO's CPU plugin (2026.4) ends the process (SIGSEGV) on 8-bit YOLO graphs given inputs of 64x64, 32x96
# or less, and runs 64x96 and larger: such graphs get every input padded to at least this size a side.
MIN_INT8_SIDE = 96


def is_quantized(ov_model) -> bool:
    """Whether an OpenVINO graph runs 8-bit (NNCF and Ultralytics' INT8 export insert FakeQuantize nodes)."""
    return any(op.get_type_name() == "FakeQuantize" for op in ov_model.get_ops())


class OpenVINONet:
    """An exported network with the torch forward's output shape: ``(preds,)`` or ``((preds, proto),)``.

    A batch of tiles runs as single-tile requests spread over OpenVINO's throughput streams (one per
    core group): on 2 cores, 46.6 ms per 640 px tile against 52.0 ms for one 2-thread request of 8
    tiles. ``submit`` returns at once, so the caller can prepare the next batch and run NMS on the
    last one while the streams work (``UltralyticsModel.predict_batches``). A lone image (the
    full-image pass) goes through a latency-tuned compile instead, made on first use, since one
    request on one stream would use only part of the cores.

    A tile shape met a second time gets its own compile with that shape fixed (two at most, see
    ``_requests_for``): in interleaved A/Bs of ``predict_tiled``, 7-10% faster than the dynamic-shape
    model with 320 px tiles and 3.5-9% with 640 px tiles, fp32 and bf16 alike. A compile's buffers grow
    with the tile (~26 MB at 320 px, ~100 MB at 640), so tiles above 640x640 stay on the dynamic model.
    The first use stays dynamic too, so a new tile size costs no compile (~0.3 s) until it is used again: a slider moved once in
    the app pays nothing, a folder of images gains from the second one on.
    """

    STATIC_SHAPES = 2  # fixed-shape compiles kept
    USE_DECAY = 0.98  # per call: a shape's count halves after ~35 calls without it
    STATIC_MAX_PIXELS = 640 * 640

    def __init__(self, xml: Path, bf16: bool = False):
        ov = require("openvino", "openvino")

        self._core = ov.Core()
        self._model = self._core.read_model(str(xml))
        # fp32 unless asked: some CPUs default to bf16, which moves a few boxes by 1-2 px.
        self._config = {"INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
                        "INFERENCE_NUM_THREADS": usable_cpus()}
        self._dynamic = self._streams(self._model)
        self._reshapeable = self._model.is_dynamic()  # an export fixed at one shape has nothing to specialise
        self._static: dict[tuple[int, int], object] = {}
        self._uses: dict[tuple[int, int], float] = {}  # tiles run per shape, decaying
        self._single = None

    @property
    def quantized(self) -> bool:
        """Whether this is an 8-bit graph (its inputs must then be at least ``MIN_INT8_SIDE`` a side)."""
        return is_quantized(self._model)

    def _streams(self, model) -> "_Requests":
        """Infer requests over a throughput-tuned compile of ``model`` (its streams run them in parallel)."""
        return _Requests(self._core.compile_model(model, "CPU", {**self._config, "PERFORMANCE_HINT": "THROUGHPUT"}))

    def _requests_for(self, shape: tuple[int, int], tiles: int) -> "_Requests":
        """The fixed-shape compile for ``shape`` if it has (or now earns) one, else the dynamic model.

        The slots go to the shapes that ran the most tiles lately (counts decay by ``USE_DECAY`` per
        call): with trimmed edge tiles an image has up to four shapes, and a least-recently-used choice
        recompiled (~0.3 s) on every image. A shape takes a slot from another only with twice its count.
        """
        seen = shape in self._uses
        self._uses = {k: v * self.USE_DECAY for k, v in self._uses.items()
                      if v * self.USE_DECAY > 0.01 or k in self._static or k == shape}
        self._uses[shape] = self._uses.get(shape, 0.0) + tiles
        if shape in self._static:
            return self._static[shape]
        if shape[0] * shape[1] > self.STATIC_MAX_PIXELS or not seen or not self._reshapeable:
            # a first use never waits for a compile, and a fixed-shape export is already compiled for its shape
            return self._dynamic
        if len(self._static) >= self.STATIC_SHAPES:
            weakest = min(self._static, key=lambda k: self._uses[k])
            if self._uses[shape] < 2 * self._uses[weakest]:
                return self._dynamic
            del self._static[weakest]
        fixed = self._model.clone()
        fixed.reshape([1, 3, *shape])
        self._static[shape] = requests = self._streams(fixed)
        return requests

    def submit(self, x) -> "_Running":
        """Start a batch and return at once; ``collect`` gives its outputs. Several batches may be in
        flight: the caller prepares the next while the streams run this one."""
        batch = np.ascontiguousarray(x.numpy() if hasattr(x, "numpy") else x)
        if len(batch) == 1:
            if self._single is None:
                self._single = self._core.compile_model(self._model, "CPU",
                                                        {**self._config, "PERFORMANCE_HINT": "LATENCY"})
                self._single_request = self._single.create_infer_request()
            self._single_request.infer({0: batch})
            return _Running(None, [], batch, [t.data.copy() for t in self._single_request.output_tensors])
        pool = self._requests_for(tuple(batch.shape[2:]), len(batch))
        requests = pool.take(len(batch))
        for i, request in enumerate(requests):
            request.start_async({0: batch[i : i + 1]}, share_inputs=True)  # no copy: the handle keeps batch
        return _Running(pool, requests, batch, None)

    def collect(self, running: "_Running"):
        """The outputs of a submitted batch, in input order, shaped like the torch forward's."""
        import torch

        outs = running.outputs
        if outs is None:
            try:
                for request in running.requests:
                    request.wait()
                outs = [np.concatenate([r.get_output_tensor(k).data for r in running.requests])
                        for k in range(len(running.requests[0].output_tensors))]
            finally:
                running.pool.give_back(running.requests)
                running.requests = []
            running.outputs = outs
        outs = [torch.from_numpy(o) for o in outs]
        return ((outs[0], outs[1]),) if len(outs) > 1 else (outs[0],)

    def __call__(self, x):
        return self.collect(self.submit(x))


class _Requests:
    """A compiled model's infer requests, reused: made as batches need them, one per tile in flight."""

    def __init__(self, compiled):
        self.compiled = compiled
        self.free: list = []

    def take(self, n: int) -> list:
        while len(self.free) < n:
            self.free.append(self.compiled.create_infer_request())
        taken, self.free = self.free[:n], self.free[n:]
        return taken

    def give_back(self, requests: list) -> None:
        self.free.extend(requests)


class _Running:
    """A submitted batch: its requests (or, for a lone image, its outputs) and the input they read."""

    def __init__(self, pool, requests, batch, outputs):
        self.pool, self.requests, self.batch, self.outputs = pool, requests, batch, outputs


class ONNXNet:
    """An ONNX model on ONNX Runtime's CPU provider, with the torch forward's output shape; an export fixed
    at one batch size runs a batch in steps of that size."""

    def __init__(self, path: Path):
        ort = require("onnxruntime", "onnx")

        options = ort.SessionOptions()
        options.intra_op_num_threads = usable_cpus()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input = first.name
        self.fixed_batch = first.shape[0] if isinstance(first.shape[0], int) and first.shape[0] > 0 else None

    def __call__(self, x):
        import torch

        x = np.ascontiguousarray(x.numpy() if hasattr(x, "numpy") else x)
        step = self.fixed_batch or len(x)  # an export fixed at batch 1 runs one tile per call
        parts = [self.session.run(None, {self.input: x[i : i + step]}) for i in range(0, len(x), step)]
        outs = [torch.from_numpy(np.concatenate([p[k] for p in parts])) for k in range(len(parts[0]))]
        return ((outs[0], outs[1]),) if len(outs) > 1 else (outs[0],)
