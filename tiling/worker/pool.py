"""A bounded pool of worker processes, one per visitor model (by its bytes' digest), shared by sessions.

At most ``limits.workers`` run at once; a new model takes the place of the least recently used idle
one. A worker is killed when it has been idle for ``limits.idle_seconds``, when the last session that
asked for it ends (its owner object is collected), or when it passes a limit: then the model is
remembered as refused, so the page does not start it again on its next rerun. Thread-safe: Streamlit
runs each session in its own thread.
"""
from __future__ import annotations

import atexit
import queue
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..models.base import ModelError
from ..models.calibration import CalibrationError
from ..util import sha256_of
from .failures import LOADING, Refusals, WorkerError, is_limit, is_remembered, sentence
from .channel import WorkerFailure
from .limits import WorkerLimits
from .process import WorkerProcess
from .remote_model import RemoteModel

BUSY_WAIT = 10.0  # seconds a request waits for a worker to come free when all are busy
LOAD_REPLY = 4 << 20


@dataclass
class _Entry:
    process: WorkerProcess
    loaded: dict[str, dict] = field(default_factory=dict)  # variant -> the model's description


class WorkerPool:
    """Workers by model digest. :meth:`load` gives a :class:`~.remote_model.RemoteModel`; its calls come
    back through :meth:`call`."""

    def __init__(self, limits: WorkerLimits | None = None, probes: bool = False):
        self.limits = limits or WorkerLimits.from_env()
        self.probes = probes  # test-only: workers accept probe code (tests/test_worker.py)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._refused = Refusals()
        self._owners: dict[str, set[int]] = {}  # digest -> ids of the live objects (sessions) holding it
        self._gone: queue.SimpleQueue = queue.SimpleQueue()  # (digest, owner id) of owners collected
        self._spare: WorkerProcess | None = None  # started ahead of need (:meth:`warm`); it holds a place
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._closed = threading.Event()
        threading.Thread(target=self._reap, name="patchwise-worker-reaper", daemon=True).start()

    # -- the models --------------------------------------------------------------------------
    def load(self, data: bytes, label: str, runtime: str = "auto", precision: str = "fp32",
             calibration=(), calib_key: str = "", owner: object | None = None, digest: str = "") -> RemoteModel:
        """A visitor's model (checkpoint bytes, ONNX, zipped OpenVINO folder) loaded in its worker, as a
        model the pipeline takes; an 8-bit copy is calibrated on ``calibration`` (BGR uint8 images, named by
        ``calib_key``). ``owner``: an object whose collection (the session ending) releases the worker."""
        digest = digest or sha256_of(data)
        variant = self.variant(runtime, precision, calib_key)
        request = {"op": "load", "key": variant, "label": label, "runtime": str(runtime),
                   "precision": str(precision)}
        arrays = [np.frombuffer(data, np.uint8), *(np.ascontiguousarray(c, np.uint8) for c in calibration)]
        info = self._ensure_loaded(digest, variant, label, request, arrays)
        try:
            model = RemoteModel(self, digest, variant, label, info, (request, arrays))
        except ValueError as exc:  # ProtocolError included: a description no real model gives
            raise self._failed(digest, variant, label, WorkerFailure("protocol", str(exc)), LOADING, 0) from None
        if owner is not None:
            self._attach(digest, owner)
        return model

    @staticmethod
    def variant(runtime, precision, calib_key: str = "") -> str:
        """The name a worker keeps one loaded form of a model under (a model may have several: fp32, int8)."""
        return f"{runtime}:{precision}:{calib_key}"

    def is_loaded(self, digest: str, variant: str) -> bool:
        """Whether a running worker holds this form of the model (a load would return at once)."""
        with self._lock:
            entry = self._entries.get(digest)
            return entry is not None and entry.process.alive and variant in entry.loaded

    def call(self, model, header: dict, arrays: list[np.ndarray], seconds: float, what: str, max_reply: int):
        """One request to ``model``'s worker (restarted and reloaded if the pool let it go meanwhile)."""
        for _ in range(3):
            self._ensure_loaded(model.digest, model.variant, model.label, *model.load_request)
            try:
                return self._process(model.digest).call({**header, "key": model.variant}, arrays, seconds, max_reply)
            except WorkerFailure as failure:
                if failure.kind != "stopped":
                    raise self._failed(model.digest, model.variant, model.label, failure, what, seconds) from None
        raise WorkerError(f"{model.label}: its worker was stopped three times in a row to make room; try again")

    def stream(self, model, header: dict, batches, oldest):
        """A stream of batches to ``model``'s worker (:meth:`.WorkerProcess.stream`); ``oldest()`` gives
        (what, seconds) of the batch awaited, for the sentence should the worker fail on it."""
        for _ in range(3):
            self._ensure_loaded(model.digest, model.variant, model.label, *model.load_request)
            try:
                yield from self._process(model.digest).stream({**header, "key": model.variant}, batches)
                return
            except WorkerFailure as failure:
                if failure.kind != "stopped":  # "stopped": let go before the stream began, nothing sent yet
                    what, seconds = oldest()
                    raise self._failed(model.digest, model.variant, model.label, failure, what, seconds) from None
        raise WorkerError(f"{model.label}: its worker was stopped three times in a row to make room; try again")

    def broken(self, model: RemoteModel, detail: str, what: str) -> WorkerError:
        """The error for a reply that could not be read back as detections; the worker is killed."""
        return self._failed(model.digest, model.variant, model.label, WorkerFailure("protocol", detail), what, 0)

    def refused(self, digest: str, variant: str = "") -> str | None:
        """The sentence a model was refused with earlier, or None."""
        return self._refused.get(digest, variant)

    # -- workers -----------------------------------------------------------------------------
    def _ensure_loaded(self, digest: str, variant: str, label: str, request: dict, arrays) -> dict:
        with self._lock:
            key_lock = self._key_locks.setdefault(digest, threading.Lock())
        with key_lock:
            for _ in range(3):
                earlier = self.refused(digest, variant)
                if earlier:
                    raise WorkerError(earlier, remembered=True)
                seconds = self.limits.load_seconds
                try:
                    entry = self._entry(digest)
                    if variant in entry.loaded:
                        return entry.loaded[variant]
                    reply, _ = entry.process.call(request, arrays, seconds, LOAD_REPLY)
                except WorkerFailure as failure:
                    if failure.kind == "stopped":  # let go to make room meanwhile: start another
                        continue
                    raise self._failed(digest, variant, label, failure, LOADING, seconds) from None
                if not isinstance(reply.get("info"), dict):
                    failure = WorkerFailure("protocol", "no description of the model")
                    raise self._failed(digest, variant, label, failure, LOADING, seconds)
                entry.loaded[variant] = reply["info"]
                return entry.loaded[variant]
        raise WorkerError(f"{label}: its worker was stopped three times in a row to make room; try again")

    def _process(self, digest: str) -> WorkerProcess:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                raise WorkerFailure("stopped")
            self._entries.move_to_end(digest)
            return entry.process

    def _entry(self, digest: str) -> _Entry:
        """The live entry for ``digest``, starting a worker (after freeing a place) when there is none."""
        waited = time.monotonic()
        while True:
            with self._lock:
                entry = self._entries.get(digest)
                if entry is not None and entry.process.alive:
                    self._entries.move_to_end(digest)
                    return entry
                if entry is not None:
                    self._drop(digest)
                process = self._take_spare()
                if process is None and (self._room() or self._evict_one()):
                    process = WorkerProcess(self.limits, self.probes)
                if process is not None:
                    entry = self._entries[digest] = _Entry(process)
                    return entry
            if time.monotonic() - waited > BUSY_WAIT:
                raise WorkerError(f"this page is running {self.limits.workers} visitors' models already; "
                                  "try yours again in a minute")
            time.sleep(0.2)

    def warm(self, wait: bool = False) -> None:
        """Start a worker ahead of need when a place is free: its imports take seconds, which a visitor
        about to upload a model then does not wait for (the page calls this when "upload" is chosen).
        ``wait``: return once it is ready (benchmarks)."""
        with self._lock:
            if self._closed.is_set() or (self._spare is not None and self._spare.alive) or not self._room():
                return
            try:
                spare = self._spare = WorkerProcess(self.limits, self.probes)
            except WorkerFailure:  # only ahead of need: the load itself will say what is wrong
                return
        if wait:
            spare.wait_ready()

    def _room(self) -> bool:
        """Whether another worker may start (pool lock held); a live spare holds a place."""
        spare = self._spare is not None and self._spare.alive
        return len(self._entries) + spare < self.limits.workers

    def _take_spare(self) -> WorkerProcess | None:
        spare, self._spare = self._spare, None
        if spare is not None and not spare.alive:
            spare.kill()
            return None
        return spare

    def _evict_one(self) -> bool:
        """Kill the least recently used idle worker (pool lock held); False when every one is busy."""
        return any(self._drop_if_idle(digest) for digest in list(self._entries))

    def _drop_if_idle(self, digest: str) -> bool:
        """Kill ``digest``'s worker unless a call is running in it (pool lock held)."""
        entry = self._entries.get(digest)
        if entry is None or not entry.process.lock.acquire(blocking=False):
            return False
        try:
            self._drop(digest)
        finally:
            entry.process.lock.release()
        return True

    def _end_spare(self) -> None:
        spare = self._take_spare()
        if spare is not None:
            spare.kill()

    def _drop(self, digest: str) -> None:
        self._key_locks.pop(digest, None)  # a thread holding it keeps its own reference
        entry = self._entries.pop(digest, None)
        if entry is not None:
            entry.process.kill()

    def _failed(self, digest: str, variant: str, label: str, failure: WorkerFailure, what: str,
                seconds: float) -> ModelError:
        """The error to raise for ``failure``; the model is remembered as refused, and its worker killed
        when it broke a limit (a plain error of the model's, such as a bad file, leaves other variants)."""
        text = sentence(label, failure, self.limits, what, seconds)
        error = CalibrationError(text) if failure.kind == "calibration" else WorkerError(text, is_remembered(failure))
        self._refused.remember(digest, variant, failure, text)
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None and (is_limit(failure) or not entry.loaded):
                self._entries.pop(digest)
        if entry is not None and (is_limit(failure) or not entry.loaded):
            entry.process.kill()
        return error

    # -- ends --------------------------------------------------------------------------------
    def _attach(self, digest: str, owner: object) -> None:
        with self._lock:
            owners = self._owners.setdefault(digest, set())
            if id(owner) in owners:
                return
            owners.add(id(owner))
        # Not _detach itself: a collection can run inside any code, this pool's locked sections included.
        weakref.finalize(owner, self._gone.put, (digest, id(owner)))

    def _detach(self, digest: str, owner_id: int) -> None:
        """An owner (a session) is gone: its model's worker ends once no session holds it."""
        with self._lock:
            owners = self._owners.get(digest, set())
            owners.discard(owner_id)
            if owners:
                return
            self._owners.pop(digest, None)
            self._drop_if_idle(digest)

    def _reap(self) -> None:
        """End the workers of sessions that ended, and those idle longer than ``limits.idle_seconds``;
        runs until :meth:`close`."""
        pause = max(0.5, min(5.0, self.limits.idle_seconds / 4))
        while not self._closed.wait(pause):
            while not self._gone.empty():
                self._detach(*self._gone.get())
            now = time.monotonic()
            with self._lock:
                if self._spare is not None and now - self._spare.last_used > self.limits.idle_seconds:
                    self._end_spare()
                for digest, entry in list(self._entries.items()):
                    if now - entry.process.last_used > self.limits.idle_seconds or not entry.process.alive:
                        self._drop_if_idle(digest)

    def workers(self) -> dict[str, WorkerProcess]:
        """The running workers by model digest (for tests and benchmarks)."""
        with self._lock:
            return {d: e.process for d, e in self._entries.items()}

    def close(self) -> None:
        """Kill every worker and stop the reaper."""
        self._closed.set()
        with self._lock:
            self._end_spare()
            for digest in list(self._entries):
                self._drop(digest)


_default: WorkerPool | None = None
_default_lock = threading.Lock()


def default_pool() -> WorkerPool:
    """The process's pool, made on first use with the limits in the environment; closed at exit."""
    global _default
    with _default_lock:
        if _default is None:
            _default = WorkerPool()
            atexit.register(_default.close)
        return _default
