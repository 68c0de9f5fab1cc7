"""Small helpers more than one stage needs: content hashes, the number of usable cores, the progress callback type."""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Callable

#: ``progress(done, total)``: called as work is done; if it raises, the work stops there.
Progress = Callable[[int, int], None]


def sha256_of(data: bytes) -> str:
    """Hex SHA-256: the key of every content-addressed cache (models, exports, images)."""
    return hashlib.sha256(data).hexdigest()


def sha256_of_file(path) -> str:
    """Hex SHA-256 of a file, read in 1 MB pieces (a checkpoint need not be held in memory to be checked)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_sha256_of_file(path) -> str:
    """:func:`sha256_of_file`, computed once per process for each version of a file (path, mtime, size):
    shipped 8-bit copies and calibration images are checked on every load without being read again."""
    stat = os.stat(path)
    return _cached_sha256_of_file(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=512)
def _cached_sha256_of_file(path: str, mtime_ns: int, size: int) -> str:
    return sha256_of_file(path)


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
