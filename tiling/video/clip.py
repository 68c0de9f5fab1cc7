"""Open a video clip safely: probe its limits before any frame is decoded, then stream its frames.

Reading goes through PyAV (FFmpeg), not ``cv2.VideoCapture``: PyAV reports the container's streams (so an
audio-only file is named as such), each packet's timestamp (so a variable frame rate is seen before a
frame is decoded) and decoding errors as exceptions (OpenCV's reader ends quietly on a corrupt frame).

:func:`probe_clip` reads only the container's header and then its packets (demuxing, no decoding): the
size on disk, the resolution, the frame count (counted, not trusted from the header), the duration, the
frame rate and its constancy, and the memory the frames in flight would take are all checked first.
:func:`iter_frames` then decodes one frame at a time; a frame of another size or a decoding error stops
it with a :class:`VideoError`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import checks
from ..optional import require

DECODER_THREADS = 2  # FFmpeg's frame threads: each holds a decoded frame
DECODER_FRAMES = 4 + DECODER_THREADS  # frames a decoder may hold at once (reordering delay and its threads)
VFR_TOLERANCE = 0.02  # a frame interval more than 2% (and a tick) off the median one is a variable rate


class VideoError(ValueError):
    """A clip that cannot be read or is past a limit: one line, meant for the person who supplied it."""


@dataclass(frozen=True)
class ClipLimits:
    """What a clip may cost before it is decoded: bytes on disk, duration, frame count, pixels per frame,
    and ``max_decode_bytes`` for the decoded frames held at once (width x height x 3 x frames in flight).
    The page passes tighter ones."""

    max_bytes: int = 200_000_000
    max_seconds: float = 120.0
    max_frames: int = 3_600
    max_pixels: int = 3840 * 2160
    max_decode_bytes: int = 2_000_000_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_bytes", checks.whole("max_bytes", self.max_bytes, 1, 1 << 40))
        object.__setattr__(self, "max_seconds", checks.number("max_seconds", self.max_seconds, 0.001, 86_400.0))
        object.__setattr__(self, "max_frames", checks.whole("max_frames", self.max_frames, 1, 10_000_000))
        object.__setattr__(self, "max_pixels", checks.whole("max_pixels", self.max_pixels, 1, 1 << 32))
        object.__setattr__(self, "max_decode_bytes",
                           checks.whole("max_decode_bytes", self.max_decode_bytes, 1, 1 << 42))


@dataclass(frozen=True)
class ClipInfo:
    """A probed clip: its frame size, constant frame rate, frame count (counted from its packets) and duration."""

    path: str
    width: int
    height: int
    fps: float
    frames: int
    seconds: float

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as video writers take it."""
        return self.width, self.height


def decode_bytes(width: int, height: int, frames_in_flight: int) -> int:
    """Bytes of the BGR frames held at once while decoding and batching."""
    return int(width) * int(height) * 3 * int(frames_in_flight)


CONTAINERS = {"mov", "mp4", "matroska", "webm", "avi"}  # FFmpeg demuxer names read as video (by content, not suffix)
MIN_SIDE = 16  # px: a frame smaller than this a side is refused

def _open(path: str):
    av = require("av", "video")
    try:
        # only plain files: a playlist-like container (concat, HLS) must not reach other files or the network
        return av.open(path, mode="r", options={"probesize": "5000000", "protocol_whitelist": "file"})
    except av.error.FileNotFoundError:
        raise VideoError(f"{path}: no such file") from None
    except (av.error.InvalidDataError, av.error.EOFError):
        raise VideoError(f"{path} is not a video, or its container is corrupt or truncated") from None
    except av.error.FFmpegError as e:
        raise VideoError(f"{path} cannot be opened as a video: {e.strerror or e}") from None


def _video_stream(container, path: str):
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        raise VideoError(f"{path} is a still image ({container.format.long_name}), not a video")
    if not set(container.format.name.split(",")) & CONTAINERS:
        raise VideoError(f"{path} is a {container.format.long_name} file, not one of the video containers read here "
                         "(MP4/MOV, Matroska/WebM, AVI)")
    if not container.streams.video:
        if container.streams.audio:
            raise VideoError(f"{path} holds only audio, no video stream")
        raise VideoError(f"{path} has no video frames (no video stream)")
    return container.streams.video[0]


def _check(what: str, value: float, limit: float, path: str, unit: str = "") -> None:
    if value > limit:
        raise VideoError(f"{path}: {what} {value:,.{0 if float(value).is_integer() else 1}f}{unit} is past the "
                         f"limit of {limit:,g}{unit}")


def _header_checks(stream, path: str, limits: ClipLimits, frames_in_flight: int) -> tuple[int, int, float]:
    """Width, height and nominal fps from the header, with the limits that need no packet read."""
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    if width < 1 or height < 1:
        raise VideoError(f"{path}: the video stream has no frame size (corrupt or truncated)")
    if width < MIN_SIDE or height < MIN_SIDE:
        raise VideoError(f"{path}: frames of {width}x{height} pixels are too small to detect anything in "
                         f"(at least {MIN_SIDE}x{MIN_SIDE})")
    _check("the resolution", width * height, limits.max_pixels, path, " pixels")
    _check("decoding", decode_bytes(width, height, frames_in_flight), limits.max_decode_bytes, path, " bytes")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if not np.isfinite(fps) or fps <= 0:
        raise VideoError(f"{path}: the video stream has no frame rate")
    if stream.frames:
        _check("the frame count", int(stream.frames), limits.max_frames, path)
    if stream.duration is not None and stream.time_base:
        _check("the duration", float(stream.duration * stream.time_base), limits.max_seconds, path, " s")
    return width, height, fps


def _packet_times(container, stream, path: str, limits: ClipLimits) -> np.ndarray:
    """Each video packet's presentation time in stream ticks, in display order (demuxed, not decoded)."""
    av = require("av", "video")
    times: list[int] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the flush packet at the end
            times.append(packet.pts if packet.pts is not None else (packet.dts if packet.dts is not None else -1))
            if len(times) > limits.max_frames:
                _check("the frame count", len(times), limits.max_frames, path)
    except av.error.FFmpegError:
        raise VideoError(f"{path} is corrupt or truncated after {len(times)} frames") from None
    return np.sort(np.asarray(times, np.int64))


def _check_rate(times: np.ndarray, path: str, stream) -> None:
    """A :class:`VideoError` when the frame intervals vary: the clip's time would not be frame index / fps."""
    if len(times) < 3 or (times < 0).any():
        return
    steps = np.diff(times)
    median = float(np.median(steps))
    off = np.abs(steps - median) > max(1.0, VFR_TOLERANCE * median)
    if median <= 0 or off.any():
        k = int(np.argmax(off)) if off.any() else 0
        tb = float(stream.time_base or 0)
        raise VideoError(f"{path} has a variable frame rate (frame {k + 1} comes {steps[k] * tb:.3f} s after the "
                         f"one before, the usual gap is {median * tb:.3f} s); re-encode it at a constant rate")


def _slack(frames: int) -> int:
    """Frames a stream may lack against its own count before it is called truncated (counts drift by one or two)."""
    return max(2, frames // 100)


def probe_clip(path: str | os.PathLike, limits: ClipLimits | None = None, frames_in_flight: int = 1) -> ClipInfo:
    """The clip's :class:`ClipInfo`, or a :class:`VideoError` naming the first limit or defect found.

    ``frames_in_flight``: decoded frames the caller holds at once (a batch of frames), added to the
    decoder's own for the memory check."""
    limits = limits or ClipLimits()
    path = str(path)
    if not Path(path).is_file():
        raise VideoError(f"{path}: no such file")
    size = os.path.getsize(path)
    if size == 0:
        raise VideoError(f"{path} is empty")
    _check("the file size", size, limits.max_bytes, path, " bytes")
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        width, height, fps = _header_checks(stream, path, limits, frames_in_flight + DECODER_FRAMES)
        times = _packet_times(container, stream, path, limits)
        if len(times) == 0:
            raise VideoError(f"{path} has no video frames")
        declared = int(stream.frames or 0)
        if len(times) < declared - _slack(declared):
            raise VideoError(f"{path} is truncated: its header lists {declared} frames, {len(times)} are there")
        _check_rate(times, path, stream)
    finally:
        container.close()
    seconds = len(times) / fps
    _check("the duration", seconds, limits.max_seconds, path, " s")
    return ClipInfo(path, width, height, fps, len(times), seconds)


def iter_frames(path: str | os.PathLike, limits: ClipLimits | None = None, stride: int = 1,
                info: ClipInfo | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, H x W x 3 uint8 BGR) of every ``stride``-th frame, decoded one at a time.

    The clip is probed first (give ``info`` when it already was). A decoding error, a frame of another
    size, or a stream that ends well short of its counted frames raises :class:`VideoError`."""
    stride = checks.whole("stride", stride, 1, 1_000_000)
    info = info or probe_clip(path, limits)
    av = require("av", "video")
    container = _open(info.path)
    index = 0
    try:
        stream = _video_stream(container, info.path)
        stream.thread_type = "FRAME"
        stream.codec_context.thread_count = DECODER_THREADS
        try:
            for frame in container.decode(stream):
                if index >= info.frames:
                    break  # packets counted at probe time bound the frames decoded
                if (frame.width, frame.height) != info.size:
                    raise VideoError(f"{info.path}: frame {index} is {frame.width}x{frame.height}, the clip is "
                                     f"{info.width}x{info.height}; a clip must keep one size")
                if index % stride == 0:
                    yield index, frame.to_ndarray(format="bgr24")
                index += 1
        except av.error.FFmpegError:
            raise VideoError(f"{info.path} is corrupt or truncated: decoding failed at frame {index}") from None
    finally:
        container.close()
    if index < info.frames - _slack(info.frames):
        raise VideoError(f"{info.path} is truncated: {index} of its {info.frames} frames could be decoded")
