"""Tiled detection and tracking over a clip, streamed: :func:`predict_video` and :func:`retrack`.

Each frame goes through the tile core every engine shares (:mod:`tiling.video.frames`), the same merge
as :func:`~tiling.pipeline.predict_tiled`, then a tracker (:mod:`tiling.video.track`). Frames are
decoded, run and let go a few at a time as the :class:`VideoRun` is iterated, so memory does not grow
with the clip's length; only the summary's counts do (a few numbers per track and per frame).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from .. import checks
from ..detections import Detections
from ..grid import TileSpec
from ..merge import MergeSpec, merge as merge_detections
from ..models import InferSpec, Model, as_model
from ..pipeline import predict_full
from ..settings import check_run
from ..util import Progress
from .clip import ClipInfo, ClipLimits, iter_frames, probe_clip
from .frames import MAX_FRAMES_PER_GROUP, detect_frames, elapsed, frames_per_group, tiles_in_plan
from .result import FrameResult
from .summary import ClipSummary, SummaryBuilder
from .track import FrameTracker, TrackSpec


def merged(raw: Detections, merge: MergeSpec, full_frame: bool = False) -> Detections:
    """One frame's answer from its raw detections: merged as :func:`~tiling.pipeline.predict_tiled`
    merges, or, for a full-frame pass (the model's own NMS already ran), only filtered by the merge
    spec's ``conf`` and ``classes``, as the ordinary prediction is."""
    if full_frame:
        return raw.filter(conf=merge.conf, classes=merge.classes)
    return merge_detections(raw, merge)


@dataclass
class VideoRun:
    """A clip being processed: iterate it (once) for one :class:`FrameResult` per processed frame (every
    ``stride``-th), computed as iterated, or :meth:`with_frames` for the decoded frames too. ``info`` is
    the probed clip; :meth:`summary` is valid after the iteration; ``timings`` (seconds per stage) grow
    as it goes."""

    info: ClipInfo
    model: Model
    tiles: TileSpec
    infer: InferSpec
    merge: MergeSpec
    track: TrackSpec
    stride: int = 1
    full_frame: bool = False
    limits: ClipLimits | None = None
    progress: Progress | None = None
    timings: dict[str, float] = field(default_factory=dict)
    _builder: SummaryBuilder | None = field(default=None, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)

    @property
    def total(self) -> int:
        """Frames this run processes."""
        return math.ceil(self.info.frames / self.stride)

    @property
    def group(self) -> int:
        """Consecutive frames whose tiles share batches."""
        if self.full_frame:
            return 1
        return frames_per_group(tiles_in_plan(self.tiles, (self.info.height, self.info.width)), self.infer.batch_size)

    def __iter__(self) -> Iterator[FrameResult]:
        return (result for result, _ in self.with_frames())

    def with_frames(self) -> Iterator[tuple[FrameResult, np.ndarray]]:
        """The results with their decoded frames (BGR), for drawing: each frame is let go when the next
        group is decoded, unless the caller keeps it."""
        if self._started:
            raise RuntimeError("a VideoRun is iterated once; call predict_video again for another pass")
        self._started = True
        return self._frames()

    def _frames(self) -> Iterator[tuple[FrameResult, np.ndarray]]:
        tracker = FrameTracker(self.track)
        self._builder = SummaryBuilder(self.info.fps, self.stride)
        done = 0
        for pending in self._groups():
            for result, (_, frame) in zip(self._run_group(pending, tracker), pending):
                self._builder.add(result.detections)
                done += 1
                yield result, frame
                if self.progress is not None:
                    self.progress(done, self.total)

    def _groups(self) -> Iterator[list[tuple[int, np.ndarray]]]:
        """The decoded frames, :attr:`group` at a time (the last group may be shorter)."""
        pending: list[tuple[int, np.ndarray]] = []
        group, t0 = self.group, time.perf_counter()
        for item in iter_frames(self.info.path, self.limits, self.stride, info=self.info):
            pending.append(item)
            if len(pending) == group:
                elapsed(self.timings, "decode", t0)
                yield pending
                pending, t0 = [], time.perf_counter()
        if pending:
            elapsed(self.timings, "decode", t0)
            yield pending

    def _run_group(self, pending: list[tuple[int, np.ndarray]], tracker: FrameTracker) -> list[FrameResult]:
        frames = [f for _, f in pending]
        if self.full_frame:
            t0 = time.perf_counter()
            raws = [predict_full(f, self.model, self.infer) for f in frames]
            elapsed(self.timings, "full", t0)
        else:
            raws = detect_frames(self.model, self.tiles, self.infer, frames, self.timings)
        out = []
        for (index, frame), raw in zip(pending, raws):
            t0 = time.perf_counter()
            det = merged(raw, self.merge, self.full_frame)
            t0 = elapsed(self.timings, "merge", t0)
            det = tracker.update(det, frame)
            elapsed(self.timings, "track", t0)
            out.append(FrameResult(index, index / self.info.fps, raw, det, self.full_frame))
        return out

    def summary(self) -> ClipSummary:
        """The clip summary of the frames processed so far (all of them once the iteration has ended)."""
        if self._builder is None:
            raise RuntimeError("the summary is ready once the run has been iterated")
        return self._builder.result()


def predict_video(source, model, tiles: TileSpec | None = None, infer: InferSpec | None = None,
                  merge: MergeSpec | None = None, track: TrackSpec | None = None, *, stride: int = 1,
                  full_frame: bool = False, limits: ClipLimits | None = None, progress: Progress | None = None,
                  **changes) -> VideoRun:
    """Tiled detection and tracking over the clip at ``source`` (a path), frame by frame, as iterated.

    The specs are :func:`~tiling.pipeline.predict_tiled`'s (keywords change their fields), plus
    ``track`` (:class:`TrackSpec`). ``stride`` runs every Nth frame; ``full_frame`` runs the ordinary
    one-pass prediction per frame instead of tiles (the comparison). The clip is probed against
    ``limits`` here, before any frame is decoded: a bad clip raises :class:`~tiling.video.VideoError` now.
    ``progress(done, total)`` is called after each frame; if it raises, the run stops there.
    """
    tile_spec, infer, merge_spec = check_run(tiles, infer, merge, engine="a clip", **changes)
    track = checks.with_changes(track, TrackSpec, {})
    stride = checks.whole("stride", stride, 1, 1_000_000)
    full_frame = checks.flag("full_frame", full_frame)
    info = probe_clip(source, limits, frames_in_flight=1 if full_frame else MAX_FRAMES_PER_GROUP)
    return VideoRun(info, as_model(model), tile_spec, infer, merge_spec, track, stride, full_frame, limits, progress)


def retrack(frames: Sequence[FrameResult], merge: MergeSpec | None = None, track: TrackSpec | None = None,
            **changes) -> list[FrameResult]:
    """The frames re-merged from their kept raw detections and tracked again: no model call.

    ``merge``/``track`` (or keyword changes of their fields) are the new settings. A merge ``conf`` below
    the one the model ran at shows no more than that conf did (those detections were never made).
    BoT-SORT's camera motion needs the frames, which are not kept: it raises ``ValueError``."""
    merge_changes = {k: v for k, v in changes.items() if k in checks.field_names(MergeSpec)}
    track_changes = {k: v for k, v in changes.items() if k not in merge_changes}
    spec = checks.with_changes(merge, MergeSpec, merge_changes)
    track = checks.with_changes(track, TrackSpec, track_changes)
    if track.camera_motion:
        raise ValueError("camera_motion needs the frames; run predict_video again to track with it")
    tracker = FrameTracker(track)
    out = []
    for f in frames:
        det = tracker.update(merged(f.raw, spec, f.full_frame))
        out.append(FrameResult(f.index, f.seconds, f.raw, det, f.full_frame))
    return out
