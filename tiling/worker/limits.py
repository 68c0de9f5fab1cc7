"""What a worker process may use, read from the environment once, and the OS limits that enforce it.

A visitor's model runs in a child process whose limits are set before it reads a byte of the model:
address space (so an allocation past the budget fails inside the child instead of swapping the host),
CPU seconds, open files, file size, no core dumps. The parent adds a wall deadline per call
(:meth:`WorkerLimits.batch_seconds`). Every figure can be changed by an environment variable.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass, fields

MB = 1024 * 1024
ENV = {  # field -> environment variable
    "memory_mb": "PATCHWISE_WORKER_MEMORY_MB",
    "cpu_seconds": "PATCHWISE_WORKER_CPU_SECONDS",
    "open_files": "PATCHWISE_WORKER_OPEN_FILES",
    "file_mb": "PATCHWISE_WORKER_FILE_MB",
    "load_seconds": "PATCHWISE_WORKER_LOAD_SECONDS",
    "call_seconds": "PATCHWISE_WORKER_CALL_SECONDS",
    "seconds_per_mpx": "PATCHWISE_WORKER_SECONDS_PER_MPX",
    "idle_seconds": "PATCHWISE_WORKER_IDLE_SECONDS",
    "workers": "PATCHWISE_WORKERS",
}


@dataclass(frozen=True)
class WorkerLimits:
    """Limits of one worker. ``memory_mb`` is what the visitor's model may allocate beyond the worker's
    own libraries (torch, OpenVINO, ONNX Runtime: about 4 GB of address space, 1 GB resident): two
    workers at the default 4 GB fit a 16 GB machine beside the server. A call's wall deadline is
    ``call_seconds`` plus ``seconds_per_mpx`` per megapixel of tiles it carries; loading (vetting,
    export, the test tile, an 8-bit copy) has ``load_seconds``."""

    memory_mb: int = 4096
    cpu_seconds: int = 3600
    open_files: int = 64
    file_mb: int = 1024
    load_seconds: float = 240.0
    call_seconds: float = 20.0
    seconds_per_mpx: float = 10.0
    idle_seconds: float = 600.0
    workers: int = 2

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{ENV[f.name]} must be a positive number, got {value!r}")

    @classmethod
    def from_env(cls, env=None) -> WorkerLimits:
        """The defaults, each replaced by its environment variable when set; a bad value is one line."""
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = env.get(ENV[f.name])
            if raw is None or raw.strip() == "":
                continue
            kind = float if isinstance(f.default, float) else int
            try:
                values[f.name] = kind(raw)
            except ValueError:
                raise ValueError(f"{ENV[f.name]} must be a {'number' if kind is float else 'whole number'}, "
                                 f"got {raw!r}") from None
        return cls(**values)

    def batch_seconds(self, pixels: int) -> float:
        """The wall deadline for one call carrying ``pixels`` pixels of tiles."""
        return self.call_seconds + self.seconds_per_mpx * pixels / 1e6

    @property
    def memory_text(self) -> str:
        """The memory budget as a visitor reads it: "4 GB", "512 MB"."""
        return f"{self.memory_mb / 1024:g} GB" if self.memory_mb >= 1024 else f"{self.memory_mb} MB"


def address_space_now() -> int:
    """Bytes of address space this process has mapped (VmSize)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def apply(limits: WorkerLimits) -> None:
    """Set this process's OS limits: called in the worker after its libraries are imported and before it
    reads anything. The address-space cap is what is mapped now plus ``memory_mb``, so the budget is the
    model's own. RLIMIT_NPROC is not used: it counts every thread of the user (the runtimes' thread pools
    too) and root ignores it; the worker's audit hook refuses new processes instead (:mod:`.jail`)."""
    cap = address_space_now() + limits.memory_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * MB, limits.file_mb * MB))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
