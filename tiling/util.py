"""Small helpers more than one stage needs: content hashes, the number of usable cores, the progress callback type."""
from __future__ import annotations

import hashlib
import os
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


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
