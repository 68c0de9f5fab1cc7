"""One worker process seen from the server: started, spoken to under a wall deadline, killed.

The child is a fresh interpreter (``subprocess.Popen``, never a fork of the threaded server) with a
minimal environment: its home, temporary and cache folders are its private folder, removed when it
ends, and none of the server's own variables (tokens, keys) reach it. Every call has a deadline; past
it, or if the child dies or answers outside the protocol, the child is killed and the caller gets a
:class:`WorkerFailure` saying which.
"""
from __future__ import annotations

import collections
import contextlib
import os
import shutil
import stat
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .channel import Channel, WorkerFailure
from .limits import ENV, WorkerLimits
from .protocol import ProtocolError

AHEAD = 2  # batches sent before the first answer is read: the worker always has the next one at hand
STARTUP_SECONDS = 120.0  # the worker's own imports, before any model: not counted against the model
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the tiling package
JAIL = Path(__file__).resolve().with_name("jail.py")
# The worker's first lines: the audit hook from jail.py, loaded by its path, before even the tiling package.
BOOT = ("import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('tiling.worker.jail', sys.argv[2])\n"
        "jail = sys.modules[spec.name] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(jail)\n"
        "jail.install(sys.argv[1])\n"
        "from tiling.worker.child import main\n"
        "sys.exit(main(sys.argv))\n")


def child_env(folder: str, limits: WorkerLimits, probes: bool = False) -> dict[str, str]:
    """The child's whole environment: Patchwise's own settings (vetting limits and the like), its limits,
    its folder for everything it may write; none of the server's other variables (tokens, keys)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PATCHWISE_")}
    env.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": folder, "TMPDIR": folder,
                "YOLO_CONFIG_DIR": os.path.join(folder, "ultralytics"), "YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False",
                "PATCHWISE_CACHE": os.path.join(folder, "cache"), "MPLCONFIGDIR": os.path.join(folder, "mpl"),
                "MALLOC_ARENA_MAX": "2", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
                "ULTRALYTICS_SAFE_LOAD": "1", "PYTHONPATH": str(PACKAGE_ROOT), "PATCHWISE_WORKER_PROBES": "0"})
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
                [sys.executable, "-c", BOOT, self.folder, str(JAIL)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, cwd=self.folder, env=child_env(self.folder, limits, probes),
                close_fds=True, start_new_session=True)
        except OSError as exc:  # no process could be started (the machine's limit, no memory)
            shutil.rmtree(self.folder, ignore_errors=True)
            raise WorkerFailure("startup", f"{type(exc).__name__}: {exc}") from None
        finally:
            log.close()
        self.channel = Channel(self.proc.stdin.fileno(), self.proc.stdout.fileno(), self._ended)
        self.started = self.last_used = time.monotonic()
        self.stderr_tail = ""
        self.stopped = False  # killed: any later call is refused at once
        self.ready = False  # the child has said it is ready (its imports, limits and hook in place)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self) -> None:
        """Block until the worker has started (imports, limits, hook), or raise ``WorkerFailure("startup")``."""
        with self.lock:
            if not self.ready and not self.stopped:
                self._wait_ready()

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
                with self._guarded():
                    self.channel.send(header, arrays, deadline)
                    reply, out = self.channel.receive(deadline, max_reply)
            finally:
                self._leave()
        return _checked(reply), out

    def stream(self, header: dict, batches: Iterator[tuple[list[np.ndarray], float, int]]):
        """Batches of tiles in one request, ``AHEAD`` in flight, so the worker runs the next batch while the
        server maps the last. ``batches`` gives (tiles, seconds, max_reply) each; yields each batch's
        (reply, arrays). The worker is told at once when there are no more (it may hold answers until
        then). Closed early, the worker finishes what it holds and keeps its model."""
        with self.lock:
            if self.stopped:
                raise WorkerFailure("stopped")
            if not self.ready:
                self._wait_ready()
            state = _Stream(batches)
            try:
                with self._guarded():
                    self.channel.send(header, [], time.monotonic() + STARTUP_SECONDS)
                    while len(state.pending) < AHEAD and self._push(state):
                        pass
                    while state.pending:
                        seconds, max_reply = state.pending.popleft()
                        reply, arrays = self.channel.receive(time.monotonic() + seconds, max_reply)
                        if not reply.get("ok"):
                            self.kill()  # mid-stream: what is still in the pipes is unknown
                            _checked(reply)
                        yield reply, arrays
                        self._push(state)
                    self._finish(state)
            finally:
                try:
                    if not state.done and not self.stopped:  # closed early: drain, so the worker stays usable
                        with self._guarded():
                            self._finish(state)
                finally:
                    self._leave()

    def _push(self, state: _Stream) -> bool:
        """Send the next batch, or the end of the stream once there are no more."""
        item = None if state.ended else next(state.batches, None)
        if item is None:
            if not state.ended:
                self.channel.send({"op": "end"}, [], time.monotonic() + STARTUP_SECONDS)
                state.ended = True
            return False
        tiles, seconds, max_reply = item
        self.channel.send({"op": "batch"}, tiles, time.monotonic() + seconds)
        state.pending.append((seconds, max_reply))
        return True

    def _finish(self, state: _Stream) -> None:
        """The end of a stream: answers still owed are read and dropped, then the worker's ``done``."""
        state.batches = iter(())
        self._push(state)
        while state.pending:
            seconds, max_reply = state.pending.popleft()
            self.channel.receive(time.monotonic() + seconds, max_reply)
        reply, _ = self.channel.receive(time.monotonic() + STARTUP_SECONDS, 0)
        if not reply.get("done"):
            self.kill()
        state.done = True

    @contextlib.contextmanager
    def _guarded(self):
        """Any failure of the pipes kills the child and becomes a :class:`WorkerFailure`."""
        try:
            yield
        except WorkerFailure:
            self.kill()
            raise
        except ProtocolError as exc:
            self.kill()
            raise WorkerFailure("protocol", str(exc)) from None
        except (OSError, ValueError) as exc:  # a closed pipe: the child is gone
            self.kill()
            raise WorkerFailure("died", self._ended() or str(exc)) from None
        finally:
            self.last_used = time.monotonic()

    def _wait_ready(self) -> None:
        """Wait for the child's ready message: its own start, not the model, so it has its own deadline."""
        deadline = time.monotonic() + STARTUP_SECONDS
        try:
            reply, _ = self.channel.receive(deadline, 0)
        except (WorkerFailure, ProtocolError, OSError, ValueError) as exc:
            self.kill()
            detail = self.exit_text() or (exc.kind if isinstance(exc, WorkerFailure) else str(exc))
            raise WorkerFailure("startup", detail) from None
        if not reply.get("ready"):
            self.kill()
            raise WorkerFailure("startup", "no ready message")
        self.ready = True

    def _ended(self) -> str:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        return self.exit_text()

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
        if self.lock.acquire(blocking=False):  # else the thread in a call closes them as it leaves (_leave)
            try:
                self._close_pipes()
            finally:
                self.lock.release()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _close_pipes(self) -> None:
        """Close the pipes, only ever under ``lock``: a call in flight must not see their descriptor numbers
        reused by another worker's pipes."""
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def _leave(self) -> None:
        """On the way out of a call (under ``lock``): the pipes of a worker killed meanwhile are closed here."""
        if self.stopped:
            self._close_pipes()

    def _stderr_tail(self, limit: int = 4000) -> str:
        """The end of what the child wrote to stderr (for the server's log and tests, never for visitors)."""
        try:  # the folder is the worker's: the name may now be a FIFO or a link to /dev/zero
            fd = os.open(os.path.join(self.folder, "stderr.log"), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return ""
        try:
            size = os.fstat(fd).st_size
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return ""
            return os.pread(fd, limit, max(0, size - limit)).decode(errors="replace")
        except OSError:
            return ""
        finally:
            os.close(fd)

    def memory(self) -> dict[str, int]:
        """The child's resident and proportional memory in bytes (RSS and PSS, from /proc); {} once it ended."""
        try:
            text = Path(f"/proc/{self.proc.pid}/smaps_rollup").read_text()
        except OSError:
            return {}
        values = dict(line.split(":", 1) for line in text.splitlines()[1:] if ":" in line)
        return {k.lower(): int(values[k].split()[0]) * 1024 for k in ("Rss", "Pss") if k in values}


def _checked(reply: dict) -> dict:
    """The reply, or the child's own report of failure as a :class:`WorkerFailure`."""
    if not reply.get("ok"):
        kind = reply.get("kind") if reply.get("kind") in ("memory", "calibration") else "error"
        raise WorkerFailure(kind, str(reply.get("error", ""))[:400])
    return reply


class _Stream:
    """Where a stream of batches stands: what is left to send, what is owed, whether the end was sent."""

    def __init__(self, batches):
        self.batches = batches
        self.pending: collections.deque = collections.deque()  # (seconds, max_reply) of batches sent
        self.ended = self.done = False
