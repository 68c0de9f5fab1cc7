"""The server's end of a worker's two pipes: messages (:mod:`.protocol`) sent and received under a deadline.

Sending also reads: while a batch of tiles goes out, the worker may already be answering the last one,
and a worker blocked writing its answer into a full pipe while the server blocks writing tiles into
another would stop both. What arrives meanwhile is kept (up to a cap) for the next receive.
"""
from __future__ import annotations

import os
import select
import time
from typing import Callable, Sequence

import numpy as np

from .protocol import ProtocolError, decode, encode

CHUNK = 1 << 20


class WorkerFailure(Exception):
    """A call that did not come back: ``kind`` is "deadline", "died", "protocol", "startup" (the worker
    never became ready), "stopped" (the pool had already ended it) or "memory"/"error" (the child's own
    one-line report, "calibration" when an 8-bit copy's calibration images were unusable)."""

    def __init__(self, kind: str, detail: str = ""):
        super().__init__(detail or kind)
        self.kind, self.detail = kind, detail


class Channel:
    """Deadline-bound messages over ``send_fd`` (the child's stdin) and ``recv_fd`` (its stdout), both
    non-blocking. ``ended()`` says how the child ended when its pipe closes."""

    def __init__(self, send_fd: int, recv_fd: int, ended: Callable[[], str], inbox_cap: int = 64 << 20):
        self.send_fd, self.recv_fd, self.ended, self.inbox_cap = send_fd, recv_fd, ended, inbox_cap
        self.inbox = bytearray()
        os.set_blocking(send_fd, False)
        os.set_blocking(recv_fd, False)

    def send(self, header: dict, arrays: Sequence[np.ndarray], deadline: float) -> None:
        for part in encode(header, arrays):
            view = memoryview(part).cast("B")
            while view:
                readable, writable = self._select(deadline, write=True)
                if readable:
                    self._take_in()
                if writable:
                    try:
                        view = view[os.write(self.send_fd, view):]
                    except BlockingIOError:
                        pass

    def receive(self, deadline: float, max_bytes: int) -> tuple[dict, list[np.ndarray]]:
        return decode(lambda n: self._read(n, deadline), max_bytes)

    def _select(self, deadline: float, write: bool) -> tuple[bool, bool]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WorkerFailure("deadline")
        readable, writable, _ = select.select([self.recv_fd], [self.send_fd] if write else [], [], left)
        if not readable and not writable:
            raise WorkerFailure("deadline")
        return bool(readable), bool(writable)

    def _take_in(self, wanted: int = 0) -> None:
        """Read what the worker sent: at most ``inbox_cap`` bytes held, or the ``wanted`` ones when a reply
        (its size checked by the protocol first) asks for more."""
        try:
            chunk = os.read(self.recv_fd, CHUNK)
        except BlockingIOError:
            return
        if not chunk:
            raise WorkerFailure("died", self.ended())
        self.inbox += chunk
        if len(self.inbox) > max(self.inbox_cap, wanted):
            raise ProtocolError(f"the worker sent more than {self.inbox_cap} bytes it was not asked for")

    def _read(self, n: int, deadline: float) -> bytearray:
        while len(self.inbox) < n:
            self._select(deadline, write=False)
            self._take_in(n)
        out = self.inbox[:n]
        del self.inbox[:n]
        return out
