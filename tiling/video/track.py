"""Track merged detections over frames with Ultralytics' trackers (ByteTrack, BoT-SORT).

Ultralytics is already a dependency and its trackers are maintained with it; they are fed the merged
boxes of each frame (its ``update`` takes any object with ``xyxy``/``xywh``/``conf``/``cls`` that
indexes like an array: Ultralytics' own ``Boxes`` over a NumPy array) and answer with each track's
detection index, which maps the track id back onto the detection it came from. BoT-SORT runs without
re-identification (that would load another network); its camera-motion compensation is optional and
needs the frames, so :func:`~tiling.video.run.retrack` refuses it. Neither tracker touches the network
or the disk. Oriented boxes are tracked by the upright boxes enclosing them.
"""
from __future__ import annotations

from argparse import Namespace
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from .. import checks
from ..detections import Detections
from ..optional import require


class Tracker(StrEnum):
    """Which tracker links detections over frames; ``NONE`` leaves every ``track_id`` at -1."""

    BYTETRACK = "bytetrack"
    BOTSORT = "botsort"
    NONE = "none"

    @classmethod
    def from_value(cls, value: object) -> Tracker:
        """``value`` (a Tracker or its name) as a Tracker, or a one-line ``SettingError`` listing the names."""
        if isinstance(value, cls):
            return value
        return cls(checks.choice("tracker", value, tuple(m.value for m in cls)))


@dataclass(frozen=True)
class TrackSpec:
    """How detections become tracks (Ultralytics' tracker settings, under its names less ``track_``):
    detections at ``high_thresh`` or above are matched first and may start a track at
    ``new_track_thresh``; those between ``low_thresh`` and ``high_thresh`` only extend tracks; a lost
    track is kept ``buffer`` processed frames; ``match_thresh`` is the largest matching cost (1 - IoU).
    ``camera_motion``: BoT-SORT's global motion compensation (sparse optical flow), for a moving camera."""

    tracker: Tracker = Tracker.BYTETRACK
    high_thresh: float = 0.25
    low_thresh: float = 0.1
    new_track_thresh: float = 0.25
    buffer: int = 30
    match_thresh: float = 0.8
    fuse_score: bool = True
    camera_motion: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "tracker", Tracker.from_value(self.tracker))
        for name in ("high_thresh", "low_thresh", "new_track_thresh", "match_thresh"):
            object.__setattr__(self, name, checks.number(name, getattr(self, name), 0.0, 1.0))
        if self.low_thresh > self.high_thresh:
            raise checks.SettingError("low_thresh", f"must not exceed high_thresh ({self.high_thresh:g}), "
                                                    f"got {self.low_thresh:g}")
        object.__setattr__(self, "buffer", checks.whole("buffer", self.buffer, 1, 100_000))
        object.__setattr__(self, "fuse_score", checks.flag("fuse_score", self.fuse_score))
        object.__setattr__(self, "camera_motion", checks.flag("camera_motion", self.camera_motion))
        if self.camera_motion and self.tracker is not Tracker.BOTSORT:
            raise checks.SettingError("camera_motion", "needs the botsort tracker")

    def ultralytics_args(self) -> Namespace:
        """The settings as Ultralytics' trackers read them (its ``cfg/trackers/*.yaml`` keys)."""
        return Namespace(
            tracker_type=self.tracker.value, track_high_thresh=self.high_thresh, track_low_thresh=self.low_thresh,
            new_track_thresh=self.new_track_thresh, track_buffer=self.buffer, match_thresh=self.match_thresh,
            fuse_score=self.fuse_score, gmc_method="sparseOptFlow" if self.camera_motion else "none",
            proximity_thresh=0.5, appearance_thresh=0.8, with_reid=False, model="auto",
        )


class FrameTracker:
    """One clip's tracker state: :meth:`update` gives each frame's merged detections their track ids."""

    def __init__(self, spec: TrackSpec | None = None) -> None:
        self.spec = spec or TrackSpec()
        self._tracker = None
        if self.spec.tracker is not Tracker.NONE:
            require("lap", "video")  # else Ultralytics' matching would try to pip-install it
            from ultralytics.trackers.bot_sort import BOTSORT
            from ultralytics.trackers.byte_tracker import BYTETracker

            make = BOTSORT if self.spec.tracker is Tracker.BOTSORT else BYTETracker
            self._tracker = make(self.spec.ultralytics_args())

    def update(self, detections: Detections, frame: np.ndarray | None = None) -> Detections:
        """``detections`` with ``data["track_id"]`` (int64, -1 where no confirmed track holds the detection).
        ``frame`` (BGR) is used only for BoT-SORT's camera-motion compensation."""
        ids = np.full(len(detections), -1, np.int64)
        if self._tracker is not None:
            from ultralytics.engine.results import Boxes

            h, w = (frame.shape[:2] if frame is not None else (1, 1))
            rows = np.concatenate([detections.xyxy, detections.confidence[:, None],
                                   detections.class_id[:, None].astype(np.float32)], axis=1)
            out = self._tracker.update(Boxes(rows.astype(np.float32), (h, w)),
                                       frame if self.spec.camera_motion else None)
            if len(out):
                ids[out[:, -1].astype(np.int64)] = out[:, 4].astype(np.int64)
        out_det = detections[np.arange(len(detections))]
        out_det.data["track_id"] = ids
        return out_det
