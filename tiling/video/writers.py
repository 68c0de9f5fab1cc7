"""A clip's results on disk: detections CSV, summary JSON, and an annotated video a browser plays.

The video is encoded with PyAV (FFmpeg), not ``cv2.VideoWriter``: the OpenCV wheel installed here
opens no H.264 writer ("avc1", "H264" and "X264" all fail; its "mp4v" is MPEG-4 Part 2, which browsers do
not play) and sets no encoder options, while PyAV's wheel carries libx264 and libvpx (no OpenH264). An
``.mp4`` is H.264 (yuv420p, the "veryfast" preset, the index at the front of the file so playback starts
before the download ends), which every browser plays; a ``.webm`` is VP9 (libvpx in its realtime
mode). Odd frame sizes lose their last row or column (4:2:0 colour needs even ones).
"""
from __future__ import annotations

import csv
import json
import os
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

from ..detections import Detections
from ..draw import draw_detections
from ..optional import require
from .result import FrameResult
from .summary import ClipSummary

CSV_COLUMNS = ["frame", "seconds", "track_id", "class_id", "class", "confidence", "x0", "y0", "x1", "y1"]


class VideoFormat(StrEnum):
    """A browser-playable video: H.264 in MP4 or VP9 in WebM, named by the file's suffix."""

    MP4 = "mp4"
    WEBM = "webm"

    @classmethod
    def from_value(cls, value: object) -> VideoFormat:
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower().lstrip("."))
        except ValueError:
            raise ValueError(f"video format must be one of {tuple(m.value for m in cls)}, got {value!r}") from None

    @classmethod
    def for_path(cls, path: str | os.PathLike) -> VideoFormat:
        return cls.from_value(Path(path).suffix)

    @property
    def codec(self) -> str:
        return {VideoFormat.MP4: "libx264", VideoFormat.WEBM: "libvpx-vp9"}[self]

    @property
    def options(self) -> dict[str, str]:
        """Encoder options: fast enough to cost little beside the model, small enough to download."""
        if self is VideoFormat.MP4:
            return {"preset": "veryfast", "crf": "23"}
        return {"deadline": "realtime", "cpu-used": "8", "crf": "34", "b": "0", "row-mt": "1"}


def csv_rows(result: FrameResult, names: dict[int, str] | None = None) -> list[list]:
    """One CSV row per detection of a frame (``frame`` 1-based, as in MOT files)."""
    det = result.detections
    names = names or det.names
    ids = det.data.get("track_id", np.full(len(det), -1, np.int64))
    return [[result.index + 1, round(result.seconds, 4), int(ids[k]), int(det.class_id[k]),
             names.get(int(det.class_id[k]), str(int(det.class_id[k]))), round(float(det.confidence[k]), 4),
             *(round(float(v), 2) for v in det.xyxy[k])] for k in range(len(det))]


class DetectionsCsvWriter:
    """Writes :data:`CSV_COLUMNS` rows frame by frame; use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike, names: dict[int, str] | None = None) -> None:
        self.path, self.names = Path(path), names
        self._file = open(self.path, "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(CSV_COLUMNS)

    def add(self, result: FrameResult) -> None:
        self._csv.writerows(csv_rows(result, self.names))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> DetectionsCsvWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_detections_csv(frames: Iterable[FrameResult], path: str | os.PathLike,
                         names: dict[int, str] | None = None) -> Path:
    """Every detection of ``frames`` with its frame, time and track id (-1 untracked); returns the path."""
    with DetectionsCsvWriter(path, names) as writer:
        for result in frames:
            writer.add(result)
    return writer.path


def write_summary_json(summary: ClipSummary, path: str | os.PathLike) -> Path:
    """The clip summary as JSON; returns the path."""
    path = Path(path)
    path.write_text(json.dumps(summary.to_dict(), indent=1) + "\n", encoding="utf-8")
    return path


def track_labels(detections: Detections) -> list[str]:
    """"class #id" per detection ("class" alone when untracked)."""
    ids = detections.data.get("track_id", np.full(len(detections), -1, np.int64))
    return [f"{name} #{int(t)}" if t >= 0 else name for name, t in zip(detections.class_names, ids)]


class AnnotatedVideoWriter:
    """A browser-playable video of frames with their tracked boxes drawn by :func:`tiling.draw_detections`.

    ``path`` ends in .mp4 (H.264) or .webm (VP9); ``size`` is the frames' (width, height). Use as a
    context manager, or call :meth:`close`, which finishes the file."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]) -> None:
        av = require("av", "video")
        self.path, self.format = Path(path), VideoFormat.for_path(path)
        self.width, self.height = int(size[0]) // 2 * 2, int(size[1]) // 2 * 2
        if self.width < 2 or self.height < 2:
            raise ValueError(f"a video frame must be at least 2x2 pixels, got {size[0]}x{size[1]}")
        options = {"movflags": "+faststart"} if self.format is VideoFormat.MP4 else {}
        self._container = av.open(str(self.path), mode="w", options=options)
        rate = Fraction(float(fps)).limit_denominator(1001)
        self._stream = self._container.add_stream(self.format.codec, rate=rate, options=self.format.options)
        self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, "yuv420p"
        self._av = av
        self.frames = 0

    def write(self, frame: np.ndarray, detections: Detections | None = None) -> None:
        """Encode ``frame`` (H x W x 3 BGR) with ``detections`` drawn on it, labelled "class #track"."""
        if detections is not None and len(detections):
            frame = draw_detections(frame, detections, texts=track_labels(detections))
        frame = np.ascontiguousarray(frame[: self.height, : self.width])
        if frame.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame is {frame.shape[1]}x{frame.shape[0]}, the video is {self.width}x{self.height}")
        packet_frame = self._av.VideoFrame.from_ndarray(frame, format="bgr24")
        self._container.mux(self._stream.encode(packet_frame))
        self.frames += 1

    def close(self) -> None:
        if self._container is not None:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None

    def __enter__(self) -> AnnotatedVideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
