"""The worker process, started by :mod:`.process` (``process.BOOT``: the audit hook of :mod:`.jail` first,
then :func:`main`; ``python -m tiling.worker.child FOLDER`` also runs it, the hook after the package import).

Before it reads a byte from its parent it imports its libraries and sets its OS limits (:mod:`.limits`). Then
it answers requests on stdin/stdout (:mod:`.protocol`): ``load`` opens a visitor's model (vetting, export,
test tile, 8-bit copy: all of ``load_model``) and keeps it under a key; ``predict`` runs tiles through a kept
model, and ``batches`` streams batch after batch through its pipelined ``predict_batches``. Anything the libraries print goes to stderr, so the protocol's pipe carries only messages. A failure is
one line back, never a traceback.
"""
from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
import threading
import time
import traceback

import numpy as np

from ..models import InferSpec, load_model, telemetry
from . import jail, limits as limits_mod
from .protocol import decode, encode
from .wire import to_wire

MAX_REQUEST_BYTES = 1 << 31
MEMORY_WORDS = re.compile(r"alloc|out of memory|MemoryError|cannot allocate|bad_alloc", re.IGNORECASE)
_LEAVING = threading.Lock()
PRELOAD = ("torch", "torchvision", "cv2", "ultralytics", "ultralytics.utils.nms", "onnx", "onnxruntime", "openvino",
           "yaml", "tiling.models.loading", "tiling.models.runtimes", "tiling.models.quantize")


def _preload() -> None:
    """Import every library a model may need now, while imports are free to map and open what they need."""
    telemetry.opt_out()  # OpenVINO's own switch, in the worker's home folder, before OpenVINO is imported
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # an optional runtime not installed here: loading says so when a model needs it


def _read_exact(fd: int, n: int) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            raise EOFError
        got += k
    return buf


def _write_all(fd: int, parts) -> None:
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            view = view[os.write(fd, view):]


class Worker:
    """The models this process holds, by key, and what each request does with them."""

    def __init__(self, inp: int, out: int, probes: bool):
        self.models: dict[str, object] = {}
        self.inp, self.out, self.probes = inp, out, probes

    def handle(self, header: dict, arrays: list[np.ndarray]) -> tuple[dict, list[np.ndarray]]:
        op = header.get("op")
        if op == "load":
            return self.load(header, arrays), []
        if op == "predict":
            return self.predict(header, arrays)
        if op == "batches":
            return self.batches(header)
        if op == "probe" and self.probes:  # tests only (tests/test_worker.py): code run as a model's could be
            scope = {"np": np, "protocol_fd": self.out}
            exec(compile(str(header["code"]), "<probe>", "exec"), scope)
            return {"ok": True, "result": str(scope.get("result", ""))[:2000]}, []
        return {"ok": False, "kind": "error", "error": f"unknown request {str(op)[:40]!r}"}, []

    def load(self, header: dict, arrays: list[np.ndarray]) -> dict:
        data, calibration = arrays[0].tobytes(), [np.ascontiguousarray(a) for a in arrays[1:]]
        args = {"runtime": header["runtime"], "precision": header["precision"]}
        if calibration:
            args["calibration"] = calibration
        model = load_model(data, name=header["label"], **args)
        self.models[header["key"]] = model
        return {"ok": True, "info": describe(model)}

    def batches(self, header: dict) -> tuple[dict, list[np.ndarray]]:
        """A stream of batches (``batch`` messages until ``end``) through the model's own pipelined
        ``predict_batches``: each batch's answer goes out as soon as it is ready; then one ``done``."""
        model = self.models[header["key"]]

        def source():
            while True:
                message, tiles = decode(lambda n: _read_exact(self.inp, n), MAX_REQUEST_BYTES)
                if message.get("op") != "batch":
                    return
                yield [np.ascontiguousarray(t) for t in tiles]

        for dets in model.predict_batches(source(), InferSpec(**header["spec"]), imgsz=header.get("imgsz"),
                                          scale=header.get("scale")):
            items, out = to_wire(dets)
            _write_all(self.out, encode({"ok": True, "items": items}, out))
        return {"ok": True, "done": True}, []

    def predict(self, header: dict, arrays: list[np.ndarray]) -> tuple[dict, list[np.ndarray]]:
        model = self.models[header["key"]]
        spec = InferSpec(**header["spec"])
        dets = model.predict([np.ascontiguousarray(a) for a in arrays], spec, imgsz=header.get("imgsz"),
                             scale=header.get("scale"))
        items, out = to_wire(dets)
        return {"ok": True, "items": items}, out


def _plain(value):
    """An enum as its value, a tuple as a list: what JSON carries."""
    value = getattr(value, "value", value)
    return list(value) if isinstance(value, tuple) else value


def describe(model) -> dict:
    """What the server needs to know about a loaded model to stand in for it (:class:`.RemoteModel`)."""
    net = getattr(getattr(model, "yolo", None), "model", None)
    params = None if net is None else int(sum(p.numel() for p in net.parameters()))
    return {"task": str(model.task), "names": {str(k): v for k, v in model.names.items()},
            "runtime": str(_plain(model.runtime)), "runtime_note": str(model.runtime_note)[:2000],
            "precision": _plain(getattr(model, "precision", None)), "digest": str(model.digest),
            "agreement": getattr(model, "agreement", None), "input_hw": _plain(model.input_hw),
            "kpt_shape": _plain(getattr(model, "kpt_shape", None)), "params": params,
            "train_imgsz": int(getattr(model, "train_imgsz", 640))}


def failure(exc: BaseException) -> dict:
    """One line for the parent: what failed, and whether it was memory (the parent words that itself)."""
    text = f"{exc}".splitlines()[0][:400] if str(exc) else type(exc).__name__
    chain, seen = [], exc
    while seen is not None and len(chain) < 8:
        chain.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    memory = isinstance(exc, MemoryError) or any(MEMORY_WORDS.search(c) for c in chain)
    kind = "memory" if memory else "calibration" if type(exc).__name__ == "CalibrationError" else "error"
    return {"ok": False, "kind": kind, "error": text}


def serve(worker: Worker) -> None:
    inp, out = worker.inp, worker.out
    while True:
        try:
            header, arrays = decode(lambda n: _read_exact(inp, n), MAX_REQUEST_BYTES)
        except EOFError:
            return
        if header.get("op") == "quit":
            return
        try:
            reply, result = worker.handle(header, arrays)
        except BaseException as exc:  # noqa: BLE001  a hostile model may raise anything; one line goes back
            traceback.print_exc(limit=3, file=sys.stderr)
            reply, result = failure(exc), []
        del arrays
        _write_all(out, encode(reply, result))


def _exit_with_parent(parent: int, folder: str) -> None:
    """End this worker once the server is gone (even mid-computation): it has no one left to answer, and
    no one else will remove its folder."""
    while os.getppid() == parent:
        time.sleep(1.0)
    _leave(folder)


def _leave(folder: str) -> None:
    """Remove the folder and end the process, once, from whichever thread gets here first."""
    with _LEAVING:
        shutil.rmtree(folder, ignore_errors=True)
        os._exit(0)


def main(argv: list[str]) -> int:
    folder = os.path.realpath(argv[1])
    limits = limits_mod.WorkerLimits.from_env()
    jail.install(folder)  # already done by process.BOOT: the imports below may not reach the network or write
    _preload()
    out = os.dup(1)  # the protocol's pipe; fd 1 becomes stderr so stray prints cannot corrupt it
    os.dup2(2, 1)
    limits_mod.apply(limits)
    jail.seal()
    parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent, folder), name="parent-watch", daemon=True).start()
    _write_all(out, encode({"ok": True, "ready": True}))
    serve(Worker(0, out, probes=os.environ.get("PATCHWISE_WORKER_PROBES") == "1"))
    _leave(folder)  # its pipe closed: the server went away without ending this worker
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
