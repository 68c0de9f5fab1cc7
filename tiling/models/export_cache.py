"""The export cache: a checkpoint exported once to OpenVINO or ONNX, kept on disk for every process.

Exports are keyed on the weights' SHA-256, the format, the Ultralytics version and the export
settings (8-bit copies, :mod:`.quantize`, also on their calibration data and NNCF's version), kept
in a user cache folder (``PATCHWISE_CACHE``, default ``~/.cache/patchwise``) bounded
to ``PATCHWISE_CACHE_MB`` (default 2048) by removing the least recently used, and made once even
when several threads or processes ask at the same time (a file lock per entry, and a thread lock per
entry within a process). Only the entry being made waits: another model's export or 8-bit copy, in
this process or another, goes ahead meanwhile.
"""
from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

EXPORT_SETTINGS = "dynamic-fp32-v1"
_entry_locks: dict[str, threading.Lock] = {}  # cache folder -> the lock this process's threads take to make it
_entry_locks_guard = threading.Lock()


def cache_dir() -> Path:
    base = os.environ.get("PATCHWISE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "patchwise")
    return Path(base)


def _entry(digest: str, fmt: str) -> Path:
    import ultralytics

    return entry_path(f"{digest[:32]}-{fmt}-{ultralytics.__version__}-{EXPORT_SETTINGS}")


def entry_path(name: str) -> Path:
    """The cache folder called ``name`` (exports and their 8-bit copies share one bounded cache)."""
    return cache_dir() / "exports" / name


def _entry_lock(entry: Path) -> threading.Lock:
    with _entry_locks_guard:
        return _entry_locks.setdefault(str(entry), threading.Lock())


def _lock_file(entry: Path) -> Path:
    return entry.parent / f"{entry.name}.lock"


def _artifact(entry: Path, pattern: str) -> Path | None:
    if not (entry / "done").exists():
        return None
    found = sorted(entry.glob(pattern))
    return found[0] if found else None


def _prune(keep: Path) -> None:
    limit = int(os.environ.get("PATCHWISE_CACHE_MB", 2048)) * 1024 * 1024
    root = cache_dir() / "exports"
    entries = [p for p in root.iterdir() if p.is_dir()] if root.exists() else []
    sizes = {p: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for p in entries}
    for p in sorted(entries, key=lambda e: (e / "done").stat().st_mtime if (e / "done").exists() else 0):
        if sum(sizes.values()) <= limit:
            break
        if p == keep:
            continue
        with open(_lock_file(p), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # being made right now, by another thread or process
            shutil.rmtree(p, ignore_errors=True)
            sizes.pop(p)


def export(weights: bytes, digest: str, fmt: str, pattern: str, **options) -> Path:
    """The file matching ``pattern`` that Ultralytics' export to ``fmt`` (with ``options``) makes of these
    weights, made now if no process made it before. Which runtime needs which export is
    :mod:`.runtimes`' to say."""

    def build(entry: Path) -> None:
        (entry / "model.pt").write_bytes(weights)
        from ultralytics import YOLO
        from ultralytics.utils import LOGGER

        level = LOGGER.level
        LOGGER.setLevel(logging.WARNING)  # the exporter's banner is not the caller's output
        try:
            YOLO(str(entry / "model.pt")).export(format=fmt, dynamic=True, imgsz=640, verbose=False, **options)
        finally:
            LOGGER.setLevel(level)
        (entry / "model.pt").unlink()

    return cached(_entry(digest, fmt), pattern, build)


def cached(entry: Path, pattern: str, build: Callable[[Path], None]) -> Path:
    """The first file matching ``pattern`` in the cache folder ``entry``, which ``build(entry)`` fills the
    first time: once, however many threads or processes ask together (those asking for the same entry
    wait, then find it; other entries are made meanwhile)."""
    found = _artifact(entry, pattern)
    if found:
        (entry / "done").touch()  # most recently used
        return found
    entry.parent.mkdir(parents=True, exist_ok=True)
    with _entry_lock(entry), open(_lock_file(entry), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other processes wait here, then find the finished entry
        try:
            found = _artifact(entry, pattern)
            if found:
                return found
            shutil.rmtree(entry, ignore_errors=True)
            entry.mkdir(parents=True)
            start = time.perf_counter()
            try:
                build(entry)
            except BaseException:
                shutil.rmtree(entry, ignore_errors=True)  # no half-made entry is left for the next caller
                raise
            (entry / "done").write_text(f"{time.perf_counter() - start:.1f} s\n")
            found = _artifact(entry, pattern)
            if found is None:
                raise RuntimeError(f"{entry.name}: nothing matching {pattern} was written")
            _prune(keep=entry)
            return found
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
