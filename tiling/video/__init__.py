"""Video clips: tiled detection and tracking frame by frame, clip summaries, result files and scores.

    import tiling
    model = tiling.load_model("models/synth-yolo11n-det.pt")
    run = tiling.predict_video("clip.mp4", model, tile_size=640, overlap=0.25, conf=0.25)
    with tiling.AnnotatedVideoWriter("tracks.mp4", run.info.fps, run.info.size) as video:
        for result, frame in run.with_frames():  # computed as iterated, a few frames at a time
            video.write(frame, result.detections)
    run.summary().unique_per_class

Modules, bottom up: :mod:`.clip` (probe and read), :mod:`.result` (a frame's value), :mod:`.track`
(Ultralytics' trackers), :mod:`.frames` (tiles of consecutive frames through the tile core),
:mod:`.summary`, :mod:`.run` (:func:`predict_video`, :func:`retrack`), :mod:`.mot`, :mod:`.writers`,
:mod:`.hota` and :mod:`.scores` (MOTA, IDF1, HOTA).
"""
from .clip import ClipInfo, ClipLimits, VideoError, iter_frames, probe_clip
from .mot import MotError, MotTracks, MotWriter, read_mot, write_mot
from .result import FrameResult
from .run import VideoRun, predict_video, retrack
from .scores import TrackScores, evaluate_tracks
from .summary import ClipSummary, summarize
from .track import Tracker, TrackSpec
from .writers import (AnnotatedVideoWriter, DetectionsCsvWriter, VideoFormat, write_detections_csv,
                      write_summary_json)

__all__ = [
    "AnnotatedVideoWriter", "ClipInfo", "ClipLimits", "ClipSummary", "DetectionsCsvWriter", "FrameResult", "MotError",
    "MotTracks", "MotWriter", "TrackScores", "TrackSpec", "Tracker", "VideoError", "VideoFormat", "VideoRun",
    "evaluate_tracks", "iter_frames", "predict_video", "probe_clip", "read_mot", "retrack", "summarize",
    "write_detections_csv", "write_mot", "write_summary_json",
]
