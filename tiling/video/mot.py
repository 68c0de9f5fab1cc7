"""Tracks in the MOT Challenge text format: ``frame,id,x,y,w,h,conf,-1,-1,-1`` per line, frames 1-based.

Written as the frames arrive (:class:`MotWriter`), so a long clip's tracks are never all in memory; read
back (:func:`read_mot`) for scoring, with every malformed line refused by its number.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .result import FrameResult

MAX_MOT_BYTES = 200_000_000  # a tracks file larger than this is refused before it is read


class MotError(ValueError):
    """A MOT file that cannot be read: one line naming the file and the line."""


@dataclass(frozen=True)
class MotTracks:
    """Rows of a MOT file: ``frame`` (1-based), ``track_id``, ``xywh`` (left, top, width, height) and ``conf``."""

    frame: np.ndarray
    track_id: np.ndarray
    xywh: np.ndarray
    conf: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)

    def at(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Track ids and xywh boxes in ``frame`` (1-based)."""
        keep = self.frame == frame
        return self.track_id[keep], self.xywh[keep]


def mot_lines(result: FrameResult) -> list[str]:
    """The MOT lines of one frame: its tracked detections (``track_id`` >= 0) only."""
    det = result.detections
    ids = det.data.get("track_id")
    if ids is None:
        return []
    lines = []
    for k in np.flatnonzero(ids >= 0):
        x0, y0, x1, y1 = (float(v) for v in det.xyxy[k])
        lines.append(f"{result.index + 1},{int(ids[k])},{x0:.2f},{y0:.2f},{x1 - x0:.2f},{y1 - y0:.2f},"
                     f"{float(det.confidence[k]):.4f},-1,-1,-1\n")
    return lines


class MotWriter:
    """Writes MOT lines frame by frame; use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = open(self.path, "w", encoding="utf-8", newline="")

    def add(self, result: FrameResult) -> None:
        self._file.writelines(mot_lines(result))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> MotWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_mot(frames: Iterable[FrameResult], path: str | os.PathLike) -> Path:
    """The tracked detections of ``frames`` as a MOT Challenge ``tracks.txt``; returns the path."""
    with MotWriter(path) as writer:
        for result in frames:
            writer.add(result)
    return writer.path


def _parse(line: str, number: int, path: str) -> list[float] | None:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    parts = text.split(",") if "," in text else text.split()
    try:
        values = [float(p) for p in parts[:7]]
    except ValueError:
        raise MotError(f"{path} line {number}: not MOT numbers (frame,id,x,y,w,h,conf,...): {text[:60]!r}") from None
    if len(values) < 6 or not np.isfinite(values).all():
        raise MotError(f"{path} line {number}: a MOT line needs at least frame,id,x,y,w,h, got {text[:60]!r}")
    if values[0] < 1 or values[0] != int(values[0]) or values[1] != int(values[1]) or min(values[4:6]) < 0:
        raise MotError(f"{path} line {number}: the frame must be a whole number from 1, the id whole, "
                       f"w and h not negative: {text[:60]!r}")
    return values + [1.0] * (7 - len(values))


def read_mot(path: str | os.PathLike, ground_truth: bool = False) -> MotTracks:
    """A MOT file's rows. ``ground_truth``: rows whose 7th column is 0 are dropped (the MOT Challenge
    truth marks boxes to ignore so)."""
    path = str(path)
    if not Path(path).is_file():
        raise MotError(f"{path}: no such file")
    if os.path.getsize(path) > MAX_MOT_BYTES:
        raise MotError(f"{path} is larger than {MAX_MOT_BYTES:,} bytes")
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            values = _parse(line, number, path)
            if values is not None:
                rows.append(values)
    arr = np.asarray(rows, np.float64).reshape(-1, 7)
    if ground_truth:
        arr = arr[arr[:, 6] != 0]
    return MotTracks(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2:6].copy(), arr[:, 6].copy())


def tracks_of(frames: Iterable[FrameResult]) -> MotTracks:
    """The tracked detections of ``frames`` as :class:`MotTracks` (what :func:`read_mot` would read back)."""
    rows = [np.array(line.split(",")[:7], np.float64) for result in frames for line in mot_lines(result)]
    arr = np.asarray(rows, np.float64).reshape(-1, 7)
    return MotTracks(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2:6].copy(), arr[:, 6].copy())
