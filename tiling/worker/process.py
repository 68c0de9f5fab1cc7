"""One worker process seen from the server: started, spoken to under a wall deadline, killed.

The child is a fresh interpreter (``subprocess.Popen``, never a fork of the threaded server) with a
minimal environment: its home, temporary and cache folders are its private folder, removed when it
ends, and none of the server's own variables (tokens, keys) reach it. Every call has a deadline; past
it, or if the child dies or answers outside the protocol, the child is killed and the caller gets a
:class:`WorkerFailure` saying which.
"""
from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .limits import ENV, WorkerLimits
from .protocol import ProtocolError, decode, encode

STARTUP_SECONDS = 120.0  # the worker's own imports, before any model: not counted against the model
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the tiling package


class WorkerFailure(Exception):
    """A call that did not come back: ``kind`` is "deadline", "died", "protocol", "startup" (the worker
    never became ready), "stopped" (the pool had already ended it) or "memory"/"error" (the child's own
    one-line report, "calibration" when an 8-bit copy's calibration images were unusable)."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(detail or kind)
        self.kind, self.detail = kind, detail


def child_env(folder: str, limits: WorkerLimits, probes: bool = False) -> dict[str, str]:
    """The child's whole environment: its limits, its folder for everything it may write, nothing else."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": folder, "TMPDIR": folder,
           "YOLO_CONFIG_DIR": os.path.join(folder, "ultralytics"), "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False",
           "PATCHWISE_CACHE": os.path.join(folder, "cache"), "MPLCONFIGDIR": os.path.join(folder, "mpl"),
           "MALLOC_ARENA_MAX": "2", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
           "ULTRALYTICS_SAFE_LOAD": "1", "PYTHONPATH": str(PACKAGE_ROOT)}
    env.update({var: str(getattr(limits, name)) for name, var in ENV.items()})
    if probes:
        env["PATCHWISE_WORKER_PROBES"] = "1"
    return env


class WorkerProcess:
    """A running worker. One call at a time (``lock``); any failure but the child's own report kills it."""

    def __init__(self, limits: WorkerLimits, probes: bool = False):
        self.limits = limits
        self.folder = tempfile.mkdtemp(prefix="patchwise-worker-")
        self.lock = threading.Lock()
        log = open(os.path.join(self.folder, "stderr.log"), "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tiling.worker.child", self.folder], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, cwd=self.folder, env=child_env(self.folder, limits, probes),
                close_fds=True, start_new_session=True)
        finally:
            log.close()
        self._in, self._out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)
        self.started = self.last_used = time.monotonic()
        self.stderr_tail = ""
        self.stopped = False  # killed: any later call is refused at once
        self.ready = False  # the child has said it is ready (its imports, limits and hook in place)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, header: dict, arrays: Sequence[np.ndarray], seconds: float,
             max_reply: int) -> tuple[dict, list[np.ndarray]]:
        """Send one request and read its reply within ``seconds``; a reply's arrays total at most ``max_reply``."""
        with self.lock:
            if self.stopped:
                raise WorkerFailure("stopped")
            if not self.ready:
                self._wait_ready()
            deadline = time.monotonic() + seconds
            try:
                self._send(encode(header, arrays), deadline)
                reply, out = decode(lambda n: self._read(n, deadline), max_reply)
            except WorkerFailure:
                self.kill()
                raise
            except ProtocolError as exc:
                self.kill()
                raise WorkerFailure("protocol", str(exc)) from None
            except (OSError, ValueError) as exc:  # a closed pipe: the child is gone
                self.kill()
                raise WorkerFailure("died", self.exit_text() or str(exc)) from None
            finally:
                self.last_used = time.monotonic()
        if not reply.get("ok"):
            kind = reply.get("kind") if reply.get("kind") in ("memory", "calibration") else "error"
            raise WorkerFailure(kind, str(reply.get("error", ""))[:400])
        return reply, out

    def _wait_ready(self) -> None:
        """Wait for the child's ready message: its own start, not the model, so it has its own deadline."""
        deadline = time.monotonic() + STARTUP_SECONDS
        try:
            reply, _ = decode(lambda n: self._read(n, deadline), 0)
        except (WorkerFailure, ProtocolError, OSError, ValueError) as exc:
            self.kill()
            detail = self.exit_text() or (exc.kind if isinstance(exc, WorkerFailure) else str(exc))
            raise WorkerFailure("startup", detail) from None
        if not reply.get("ready"):
            self.kill()
            raise WorkerFailure("startup", "no ready message")
        self.ready = True

    def _wait(self, fd: int, write: bool, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WorkerFailure("deadline")
        ready = select.select([], [fd], [], left) if write else select.select([fd], [], [], left)
        if not (ready[1] if write else ready[0]):
            raise WorkerFailure("deadline")

    def _send(self, parts, deadline: float) -> None:
        for part in parts:
            view = memoryview(part).cast("B")
            while view:
                self._wait(self._in, True, deadline)
                try:
                    view = view[os.write(self._in, view):]
                except BlockingIOError:
                    continue

    def _read(self, n: int, deadline: float) -> bytearray:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            self._wait(self._out, False, deadline)
            try:
                k = os.readv(self._out, [view[got:]])
            except BlockingIOError:
                continue
            if k == 0:
                self.proc.wait(timeout=5)
                raise WorkerFailure("died", self.exit_text())
            got += k
        return buf

    def exit_text(self) -> str:
        """How the child ended ("signal SIGXCPU", "exit 1"), or "" while it runs."""
        code = self.proc.poll()
        if code is None:
            return ""
        if code < 0:
            try:
                return f"signal {signal.Signals(-code).name}"
            except ValueError:
                return f"signal {-code}"
        return f"exit {code}"

    def kill(self) -> None:
        """End the child (if it still runs) and remove its folder."""
        self.stopped = True
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own process group: anything it started goes too
            except OSError:
                self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.stderr_tail = self._stderr_tail()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)

    def _stderr_tail(self, limit: int = 4000) -> str:
        """The end of what the child wrote to stderr (for the server's log and tests, never for visitors)."""
        try:
            with open(os.path.join(self.folder, "stderr.log"), "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - limit))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def memory(self) -> dict[str, int]:
        """The child's resident and proportional memory in bytes (RSS and PSS, from /proc); {} once it ended."""
        try:
            text = Path(f"/proc/{self.proc.pid}/smaps_rollup").read_text()
        except OSError:
            return {}
        values = dict(line.split(":", 1) for line in text.splitlines()[1:] if ":" in line)
        return {k.lower(): int(values[k].split()[0]) * 1024 for k in ("Rss", "Pss") if k in values}
