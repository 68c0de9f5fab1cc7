"""What a clip held: unique objects per class, how long each track lasted, and objects per frame.

Built frame by frame (:class:`SummaryBuilder`), so a run's summary costs a few numbers per track and
one per frame, never the frames' detections.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..detections import Detections
from .result import FrameResult


@dataclass(frozen=True)
class ClipSummary:
    """A tracked clip in numbers.

    ``unique_per_class``: distinct tracks per class name (a track's class is the one it was seen as most
    often); with no tracker (every ``track_id`` -1) it is the most objects of that class seen in one
    frame, a lower bound. ``track_lengths``: frames each track id was seen in. ``counts_per_frame``:
    detections in each processed frame (every ``stride``-th), ``frames`` of them, of a clip at ``fps``.
    """

    unique_per_class: dict[str, int]
    track_lengths: dict[int, int]
    counts_per_frame: list[int]
    frames: int
    fps: float
    stride: int = 1
    tracked: bool = True

    def to_dict(self) -> dict:
        """The summary as JSON-ready values (track ids as strings, as JSON keys must be)."""
        return {
            "frames": self.frames, "fps": round(float(self.fps), 6), "stride": self.stride, "tracked": self.tracked,
            "unique_per_class": dict(self.unique_per_class), "unique_total": int(sum(self.unique_per_class.values())),
            "track_lengths": {str(k): v for k, v in sorted(self.track_lengths.items())},
            "counts_per_frame": list(self.counts_per_frame),
        }


@dataclass
class SummaryBuilder:
    """Accumulates a :class:`ClipSummary` one frame's tracked detections at a time."""

    fps: float
    stride: int = 1
    counts: list[int] = field(default_factory=list)
    lengths: Counter = field(default_factory=Counter)
    track_classes: dict[int, Counter] = field(default_factory=lambda: defaultdict(Counter))
    most_in_frame: Counter = field(default_factory=Counter)
    names: dict[int, str] = field(default_factory=dict)
    tracked: bool = False

    def add(self, detections: Detections) -> None:
        self.counts.append(len(detections))
        self.names.update(detections.names)
        ids = detections.data.get("track_id", np.full(len(detections), -1, np.int64))
        self.tracked |= bool((ids >= 0).any())
        for tid, cls in zip(ids.tolist(), detections.class_id.tolist()):
            if tid >= 0:
                self.lengths[tid] += 1
                self.track_classes[tid][cls] += 1
        for cls, n in Counter(detections.class_id.tolist()).items():
            self.most_in_frame[cls] = max(self.most_in_frame[cls], n)

    def result(self) -> ClipSummary:
        if self.tracked:
            per_class = Counter(c.most_common(1)[0][0] for c in self.track_classes.values())
        else:
            per_class = self.most_in_frame
        unique = {self.names.get(int(c), str(c)): int(n) for c, n in sorted(per_class.items())}
        return ClipSummary(unique, {int(k): int(v) for k, v in sorted(self.lengths.items())}, list(self.counts),
                           len(self.counts), float(self.fps), self.stride, self.tracked)


def summarize(frames: Iterable[FrameResult], fps: float, stride: int = 1) -> ClipSummary:
    """The summary of tracked frames (for example those :func:`~tiling.video.run.retrack` returns)."""
    builder = SummaryBuilder(fps, stride)
    for frame in frames:
        builder.add(frame.detections)
    return builder.result()
