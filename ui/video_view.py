"""The page's Video mode: one short clip, full-frame and tiled tracks side by side as playable videos,
objects per frame for both, unique-object counts and downloads. UI only; the work is ``tiling.video``'s.

The model runs once per clip, stride and model settings (:data:`RUNS`, shared by every session); the
confidence and merge sliders and the tracker re-merge the kept raw detections and track again without
it (:func:`tiling.video.retrack`). An uploaded clip is checked against :data:`PAGE_LIMITS`, said above
the uploader, before a frame is decoded, and is on disk only while it is read: a private temporary copy,
removed afterwards.
"""
from __future__ import annotations

import io
import json
import os
import re
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd
import streamlit as st

import tiling
from tiling.util import sha256_of
from tiling.video import (AnnotatedVideoWriter, ClipInfo, ClipLimits, ClipSummary, FrameResult, Tracker, TrackScores,
                          TrackSpec, VideoError, evaluate_tracks, iter_frames, predict_video, probe_clip, read_mot,
                          retrack, summarize, write_detections_csv, write_mot)

from . import resources as res
from .sidebar import RAW_CONF, RERUNS
from .text import plain

PHOTOS, VIDEO = "Photos", "Video"
BUNDLED_CLIP = res.SAMPLES_DIR / "clips" / "roads-1920x1080.mp4"
# A visitor's clip: its size, length and frame size, and the decoded frames held at once (a few 1080p frames).
PAGE_LIMITS = ClipLimits(max_bytes=30_000_000, max_seconds=20.0, max_frames=300, max_pixels=1920 * 1080,
                         max_decode_bytes=300_000_000)
VIDEO_TYPES = ["mp4", "webm", "mov", "mkv", "avi", "m4v"]
RUNS = res.SharedCache(max_entries=8, ttl=3600)  # (clip, model, specs, stride, mode) -> frames with raw detections
VIDEOS = res.SharedCache(max_entries=8, ttl=3600)  # (... and merge, tracker) -> the annotated video's bytes
SCORES = res.SharedCache(max_entries=16, ttl=3600)  # the same key -> TrackScores against the clip's ground truth
LIMITS_TEXT = (f"Clips up to {PAGE_LIMITS.max_bytes // 1_000_000} MB, {PAGE_LIMITS.max_seconds:g} s, "
               f"{PAGE_LIMITS.max_frames} frames and 1920x1080 pixels ({', '.join(VIDEO_TYPES)}).")


@dataclass(frozen=True)
class Clip:
    """The clip on the page: its name, content key, and either its file (bundled) or its bytes (upload)."""

    name: str
    key: str
    path: Path | None = None
    data: bytes | None = None
    truth: Path | None = None  # MOT ground truth (the bundled clip has it)

    @contextmanager
    def file(self) -> Iterator[str]:
        """A path to read the clip from; an upload's is a private copy (0600), removed on leaving."""
        if self.path is not None:
            yield str(self.path)
            return
        fd, tmp = tempfile.mkstemp(prefix="patchwise-clip-", suffix=Path(self.name).suffix.lower() or ".mp4")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self.data or b"")
            yield tmp
        finally:
            Path(tmp).unlink(missing_ok=True)


def mode() -> str:
    """The sidebar's Photos / Video switch."""
    return st.sidebar.radio("Mode", (PHOTOS, VIDEO), horizontal=True, key="page_mode",
                            help="Photos: one image, full vs patches. Video: a short clip, tracked both ways.")


def _clip() -> Clip:
    upload = st.sidebar.file_uploader("Your own clip", type=VIDEO_TYPES, key="video_upload", help=LIMITS_TEXT,
                                      max_upload_size=PAGE_LIMITS.max_bytes // 1_000_000)
    st.sidebar.caption(LIMITS_TEXT)
    if upload is not None:
        if upload.size > PAGE_LIMITS.max_bytes:
            st.error(f"{plain(upload.name)} is {upload.size / 1e6:.0f} MB; the page takes clips up to "
                     f"{PAGE_LIMITS.max_bytes // 1_000_000} MB. Showing the bundled clip.")
        else:
            data = upload.getvalue()
            return Clip(plain(upload.name), sha256_of(data), data=data)
    truth = BUNDLED_CLIP.with_name(BUNDLED_CLIP.stem + ".gt.txt")
    return Clip(BUNDLED_CLIP.name, f"bundled:{BUNDLED_CLIP.stat().st_mtime_ns}", path=BUNDLED_CLIP,
                truth=truth if truth.is_file() else None)


def _settings() -> tuple[tiling.TileSpec, tiling.InferSpec, tiling.MergeSpec, TrackSpec, int]:
    with st.sidebar:
        st.header("Clip settings")
        size = st.select_slider(f"Tile size {RERUNS}", [320, 480, 640, 800, 960], 640, key="video_tile")
        stride = st.select_slider(f"Every Nth frame {RERUNS}", [1, 2, 3, 5], 1, key="video_stride",
                                  help="Run the model on every Nth frame only: N times faster, coarser tracks.")
        conf = st.slider("Confidence", 0.05, 1.0, 0.25, 0.01, key="video_conf",
                         help="Hide detections the model is less sure about (re-merges and re-tracks, no model call).")
        threshold = st.slider("Merge threshold", 0.05, 1.0, tiling.MergeSpec().threshold, 0.05, key="video_threshold",
                              help="Two boxes are one object when their IoU is at least this (no model call).")
        tracker = st.radio("Tracker", [t.value for t in Tracker], horizontal=True, key="video_tracker",
                           help="ByteTrack or BoT-SORT (Ultralytics') link boxes over frames; none counts per frame.")
    tiles = tiling.TileSpec(tile_size=size, overlap=0.25)
    merge = tiling.MergeSpec(conf=conf, threshold=threshold)  # the library's merge, as the CLI's
    infer = tiling.InferSpec(conf=RAW_CONF)  # with the full-image pass, as the CLI runs a clip
    return tiles, infer, merge, TrackSpec(tracker=tracker), stride


@dataclass(frozen=True)
class Run:
    """The model's pass over a clip: the frames with their raw detections, and what it cost when it ran."""

    frames: list[FrameResult]
    seconds: float


def _run(clip: Clip, model, model_key: str, tiles, infer, stride: int, full_frame: bool) -> tuple[Run, bool]:
    """(the model over every processed frame, whether it ran now): cached for all sessions."""
    label = "full frame" if full_frame else "tiles"
    ran = []

    def compute() -> Run:
        ran.append(True)
        bar = st.progress(0.0, text=f"Running the model ({label})…")
        started = time.perf_counter()
        try:
            with clip.file() as path:
                run = predict_video(path, model, tiles, infer, stride=stride, full_frame=full_frame,
                                    limits=PAGE_LIMITS, progress=lambda done, total: bar.progress(
                                        done / total, text=f"{label}: frame {done} of {total}"))
                return Run(list(run), time.perf_counter() - started)
        finally:
            bar.empty()

    return RUNS.get((clip.key, model_key, tiles, infer, stride, full_frame), compute), bool(ran)


@dataclass(frozen=True)
class Side:
    """One side of the page: the tracked frames, their summary, video and scores, and the model's cost."""

    frames: list[FrameResult]
    summary: ClipSummary
    video: bytes
    scores: TrackScores | None
    run: Run
    ran_now: bool

    def cost(self) -> str:
        fps = len(self.frames) / max(self.run.seconds, 1e-6)
        took = f"{self.run.seconds:.1f} s for {len(self.frames)} frames ({fps:.1f} frames/s)"
        return f"model: {took}" if self.ran_now else f"from the cache (no model call); the model took {took}"


def _video(clip: Clip, frames: list[FrameResult], info: ClipInfo, stride: int, key: tuple) -> bytes:
    """The annotated clip (H.264 MP4) of these tracked frames, cached on what decides it; the clip is
    decoded again for it (its frames are never all kept)."""
    def compute() -> bytes:
        with clip.file() as path, tempfile.TemporaryDirectory(prefix="patchwise-video-") as tmp:
            out = Path(tmp) / "annotated.mp4"
            with AnnotatedVideoWriter(out, info.fps / stride, info.size) as writer:
                for result, (_, image) in zip(frames, iter_frames(path, PAGE_LIMITS, stride)):
                    writer.write(image, result.detections)
            return out.read_bytes()

    return VIDEOS.get(key, compute)


def _downloads(name: str, mode: str, side: Side, names: dict[int, str]) -> None:
    """The video, and a zip of its tracks (MOT), detections (CSV) and summary (JSON)."""
    stem = Path(name).stem
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="patchwise-export-") as tmp, \
            zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(write_mot(side.frames, Path(tmp) / "tracks.txt"), "tracks.txt")
        z.write(write_detections_csv(side.frames, Path(tmp) / "detections.csv", names), "detections.csv")
        z.writestr("summary.json", json.dumps(side.summary.to_dict(), indent=1))
    tag = "full-frame" if mode == "full" else "tiled"
    st.download_button("Annotated video", side.video, f"{stem}-{tag}.mp4", "video/mp4", on_click="ignore",
                       key=f"dl_video_{mode}", icon=":material/movie:")
    st.download_button("Tracks, detections, summary (zip)", buf.getvalue(), f"{stem}-{tag}.zip", "application/zip",
                       on_click="ignore", key=f"dl_tracks_{mode}", icon=":material/folder_zip:")


def page() -> None:
    st.title("Patchwise on video: tracking what only tiles see")
    st.caption("Left: each frame shrunk to the model's input, then tracked. Right: the same model on tiles of each "
               "frame, merged, then tracked the same way. The sliders re-merge and re-track without the model.")
    clip = _clip()
    tiles, infer, merge, track, stride = _settings()
    model = res.load_bundled(res.BUNDLED_MODELS[next(iter(res.BUNDLED_MODELS))], res.RUNTIME_CHOICES[res.FAST])
    model_key = f"{model.digest}:{model.runtime_label}"
    try:
        with clip.file() as path:
            info = probe_clip(path, PAGE_LIMITS)
        st.caption(f"{plain(clip.name)}: {info.width}x{info.height}, {info.frames} frames at {info.fps:g} fps "
                   f"({info.seconds:.1f} s); the bundled detector, 8-bit.")
        results = {}
        for mode, full_frame in (("full", True), ("tiled", False)):
            run, ran_now = _run(clip, model, model_key, tiles, infer, stride, full_frame)
            frames = retrack(run.frames, merge, track)
            key = (clip.key, model_key, tiles, infer, stride, full_frame, merge, track)
            video = _video(clip, frames, info, stride, key)
            scores = (SCORES.get(key, lambda: evaluate_tracks(clip.truth, frames))
                      if clip.truth is not None and track.tracker is not Tracker.NONE else None)  # no tracks: no score
            results[mode] = Side(frames, summarize(frames, info.fps, stride), video, scores, run, ran_now)
    except VideoError as exc:  # named by the clip's own name, not the temporary copy's
        st.error(f"{plain(_named(str(exc), clip.name))} ({LIMITS_TEXT})")
        return
    if clip.truth is not None:
        truth = read_mot(clip.truth, ground_truth=True)
        st.caption(f"Ground truth: {len(set(truth.track_id.tolist()))} objects in the clip; each side is scored "
                   "against it (MOTA, IDF1, HOTA: 1 is perfect; MOTA goes below 0 when false boxes outnumber "
                   "the true ones).")
    _side_by_side(clip, results, dict(model.names), track)
    _chart(results)


def _named(message: str, name: str) -> str:
    """A clip error's text with an upload's temporary copy called by the upload's name."""
    return re.sub(re.escape(tempfile.gettempdir()) + r"/patchwise-clip-[^\s:]+", lambda _: name, message)


def _side_by_side(clip: Clip, results: dict, names: dict[int, str], track: TrackSpec) -> None:
    counted = "unique objects" if track.tracker is not Tracker.NONE else "most objects in one frame"
    for column, (mode, title) in zip(st.columns(2, gap="small"), (("full", "Full frame"), ("tiled", "Tiles"))):
        side = results[mode]
        with column:
            st.subheader(title)
            total = sum(side.summary.unique_per_class.values())
            per_class = ", ".join(f"{n} {c}" for c, n in side.summary.unique_per_class.items())
            st.metric(counted.capitalize(), total, delta=per_class or "none found", delta_color="off",
                      delta_arrow="off")
            st.video(side.video, format="video/mp4")
            if side.scores is not None:
                sc = side.scores
                st.caption(f"MOTA {sc.mota:.2f} · IDF1 {sc.idf1:.2f} · HOTA {sc.hota:.2f} · "
                           f"{sc.switches} identity switches")
            st.caption(side.cost())
            _downloads(clip.name, mode, side, names)


def _chart(results: dict) -> None:
    st.subheader("Objects per frame")
    full, tiled = results["full"].frames, results["tiled"].frames
    frame = pd.DataFrame({"seconds": [f.seconds for f in tiled], "full frame": [len(f.detections) for f in full],
                          "tiles": [len(f.detections) for f in tiled]}).set_index("seconds")
    st.line_chart(frame, x_label="seconds into the clip", y_label="objects")
