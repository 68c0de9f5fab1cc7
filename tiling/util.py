"""Small helpers more than one stage needs: content hashes and the number of usable cores."""
from __future__ import annotations

import hashlib
import os


def sha256_of(data: bytes) -> str:
    """Hex SHA-256: the key of every content-addressed cache (models, exports, images)."""
    return hashlib.sha256(data).hexdigest()


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
