"""What a visitor reads when their model's worker fails: one plain sentence, never a traceback."""
from __future__ import annotations

import re
import threading
from collections import OrderedDict

from ..models.base import ModelError
from .channel import WorkerFailure
from .limits import WorkerLimits

PRIVATE_PATH = re.compile(r"(/[\w.-]+)*/patchwise-[\w.-]+(/[\w.-]*)*")  # the worker's files: not for visitors
LOADING = "loading it and running a 64 px test tile"
LIMIT_KINDS = frozenset({"memory", "deadline", "died", "protocol"})  # the worker was killed or broke down


class WorkerError(ModelError):
    """A visitor's model stopped by its worker's limits, or failing in it; the message is the sentence to show.
    ``remembered``: the pool refuses the model from now on with this sentence (a page may rerun without it)."""

    def __init__(self, message: str, remembered: bool = False):
        super().__init__(message)
        self.remembered = remembered


def work_text(shapes: list[tuple[int, int]], full_pass: bool = False) -> str:
    """The call in words: "one 640 px tile", "a batch of 8 tiles of 640x480 px", "the whole image at 1280 px"."""
    if not shapes:
        return LOADING
    h, w = shapes[0]
    size = f"{w} px" if h == w else f"{w}x{h} px"
    if full_pass:
        return f"the whole image at {max(h, w)} px"
    return f"one {size} tile" if len(shapes) == 1 else f"a batch of {len(shapes)} tiles of {size}"


def sentence(label: str, failure: WorkerFailure, limits: WorkerLimits, what: str, seconds: float) -> str:
    """The one sentence for ``failure`` of ``label``'s worker while doing ``what`` under a ``seconds`` deadline."""
    if failure.kind == "memory":
        return f"{label} needed more than {limits.memory_text} of memory for {what}."
    if failure.kind == "deadline":
        return f"{label} took longer than {seconds:.0f} s for {what}, so it was stopped."
    if failure.kind == "protocol":
        return f"{label} sent back something that is not a detection result for {what}, so it was stopped."
    if failure.kind == "startup":
        return f"the worker process for {label} could not start ({failure.detail}); try again in a minute."
    if failure.kind == "died":
        if "SIGXCPU" in failure.detail:
            return (f"{label}'s worker used its {limits.cpu_seconds} s of CPU time, so it was stopped; it starts "
                    "afresh on the next run.")
        return f"{label} stopped unexpectedly during {what} ({failure.detail or 'no reason given'})."
    return PRIVATE_PATH.sub("a temporary file", failure.detail) or f"{label} failed during {what}."


def is_limit(failure: WorkerFailure) -> bool:
    """Whether the worker was stopped (a limit, a crash, a broken reply) rather than reporting an error itself."""
    return failure.kind in LIMIT_KINDS


def is_remembered(failure: WorkerFailure) -> bool:
    """Whether the model is refused from now on: not when the worker could not start (not the model's doing),
    nor when a long-lived worker used up its lifetime CPU allowance (a fresh one gets a new one)."""
    return failure.kind not in ("startup", "stopped") and "SIGXCPU" not in failure.detail


class Refusals:
    """The sentences models were refused with, so a page's next rerun does not start them again: by model
    after a limit (every form of it), by model and form after its own error; the oldest forgotten first."""

    def __init__(self, size: int = 64):
        self.size = size
        self._items: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, digest: str, variant: str, failure: WorkerFailure, text: str) -> None:
        if not is_remembered(failure):
            return
        with self._lock:
            self._items[(digest, "" if is_limit(failure) else variant)] = text
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get(self, digest: str, variant: str = "") -> str | None:
        with self._lock:
            return self._items.get((digest, "")) or self._items.get((digest, variant))
