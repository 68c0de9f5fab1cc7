"""Ultralytics' official checkpoints by name: which names Patchwise knows, and where they are on this host.

A deployment that cannot download at run time fetches some official checkpoints when its image is
built, into the folder ``PATCHWISE_WEIGHTS_DIR`` names (the ``Dockerfile`` does). A name found there
is loaded from there before anything else, after its SHA-256 is checked against the value pinned in
``tiling/models/official-weights.sha256`` (the same file the image build checks), when one is pinned.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

from ..util import sha256_of_file
from .base import ModelError

OFFICIAL_NAMES = (
    "yolo11n.pt", "yolo11s.pt", "yolo11n-seg.pt", "yolov8n.pt", "yolov8n-seg.pt", "yolov10n.pt",
    "yolo26n.pt", "rtdetr-l.pt", "FastSAM-s.pt",
)
RELEASE_URL = "https://github.com/ultralytics/assets/releases/download/v8.4.0/"  # where Ultralytics 8.4 fetches them
PINS_FILE = Path(__file__).with_name("official-weights.sha256")
_verified: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, so a page rerun hashes nothing


def is_official(name: str) -> bool:
    return name in OFFICIAL_NAMES


def weights_dir() -> Path | None:
    """The folder of pre-fetched official weights (``PATCHWISE_WEIGHTS_DIR``), or None when unset."""
    value = os.environ.get("PATCHWISE_WEIGHTS_DIR", "").strip()
    return Path(value) if value else None


@functools.lru_cache(maxsize=4)  # the pins ship with the code: read once per process
def read_pins(path: Path = PINS_FILE) -> dict[str, str]:
    """name -> SHA-256 from a ``sha256sum``-style file; a malformed line is an error, not a silent skip."""
    pins: dict[str, str] = {}
    if not path.exists():
        return pins
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not is_official(name.strip()):
            raise ValueError(f"{path.name} line {n}: expected '<64 hex digits>  <official name>', got {line!r}")
        pins[name.strip()] = digest
    return pins


def _sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        _verified[key] = sha256_of_file(path)
    return _verified[key]


def prefetched(name: str) -> Path | None:
    """The pre-fetched file for an official ``name``, checked against its pinned SHA-256; None if absent."""
    folder = weights_dir()
    if folder is None or not is_official(name) or not (folder / name).is_file():
        return None
    path = folder / name
    pinned = read_pins().get(name)
    if pinned and _sha256(path) != pinned:
        raise ModelError(f"{name} in {folder} does not match its pinned SHA-256 ({pinned[:12]}…, "
                         f"{PINS_FILE.name}); it was refused. Fetch it again from {RELEASE_URL}{name}")
    return path


def availability(name: str) -> tuple[bool, str]:
    """(usable here, why): pre-fetched on this host, downloadable, or neither."""
    try:
        if prefetched(name) is not None:
            return True, "on this host"
    except ModelError as exc:
        return False, str(exc)
    offline = os.environ.get("YOLO_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline:
        return False, "not on this host, and downloads are off here (YOLO_OFFLINE)"
    return True, "downloaded on first use"
