"""The video branch of ``patchwise predict`` and ``patchwise evaluate``: a clip (or a folder of clips) is
streamed frame by frame through :func:`tiling.video.predict_video` with a frames bar (fps and ETA).

Each clip gets a folder ``<out>/<stem>/`` with ``annotated.mp4`` (H.264, plays in a browser), ``tracks.txt``
(MOT Challenge), ``detections.csv`` (one row per box, with its frame and track id) and ``summary.json``
(unique objects per class, track lengths, objects per frame), written in that order, each whole under a
temporary name then renamed: a clip whose ``summary.json`` names it and this run's settings is finished,
and a rerun skips it, as folder runs skip finished images.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd
from tqdm import tqdm

from .checks import SettingError
from .cli_common import CliError, flag_of, load, runtime_options
from .cli_specs import add_fields, settings
from .inputs import INPUT_SUFFIXES, Entry, entries, run_key
from .names import display_name
from .outputs import write_atomic
from .util import sha256_of
from .video import (AnnotatedVideoWriter, DetectionsCsvWriter, MotError, MotWriter, TrackSpec, VideoError,
                    evaluate_tracks, predict_video, probe_clip, read_mot)

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")  # what a folder run of clips picks up

TRACK_FLAGS = {"tracker": "--tracker", "high_thresh": "--track-high-thresh", "low_thresh": "--track-low-thresh",
               "new_track_thresh": "--track-new-thresh", "buffer": "--track-buffer",
               "match_thresh": "--track-match-thresh", "fuse_score": "--track-fuse-score",
               "camera_motion": "--track-camera-motion"}
TRACK_HELP = {
    "tracker": "links each frame's merged boxes into tracks: Ultralytics' ByteTrack or BoT-SORT, or none",
    "high_thresh": "boxes at this confidence or above are matched to tracks first",
    "low_thresh": "boxes between this and --track-high-thresh only extend tracks",
    "new_track_thresh": "a box at this confidence or above may start a track",
    "buffer": "frames a lost track is kept",
    "match_thresh": "largest matching cost (1 - IoU) between a track and a box",
    "fuse_score": "weigh the matching cost by the box's confidence",
    "camera_motion": "BoT-SORT: compensate the camera's motion (optical flow), for a moving camera",
}
FILES = ("annotated.mp4", "tracks.txt", "detections.csv", "summary.json")


def add_video_args(parser: argparse.ArgumentParser) -> None:
    """The tracking options (one per :class:`TrackSpec` field) and ``--stride``, for clips."""
    g = parser.add_argument_group(f"video clips ({', '.join(VIDEO_SUFFIXES)})")
    add_fields(g, TrackSpec, TRACK_FLAGS, TRACK_HELP)
    g.add_argument("--stride", type=int, default=1, help="run every Nth frame (default 1: every frame)")


def is_video(source: str) -> bool:
    """Whether ``source`` is a clip, or a folder holding clips and no images (a folder with images is an
    image run, as before clips were read)."""
    path = Path(source)
    if path.is_file() or not path.exists():
        return path.suffix.lower() in VIDEO_SUFFIXES
    if not path.is_dir():
        return False
    clips = False
    for p in path.rglob("*"):  # stops at the first image: a folder of photos costs one step
        suffix = p.suffix.lower()
        if suffix in INPUT_SUFFIXES and p.is_file():
            return False
        clips = clips or (suffix in VIDEO_SUFFIXES and p.is_file())
    return clips


def find_clips(source: str) -> tuple[Path, list[Path]]:
    """(root, clips): one clip, or a folder's clips searched recursively; a one-line error when there are none."""
    path = Path(source)
    if path.is_dir():
        clips = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        if not clips:
            raise CliError(f"{display_name(source)} holds no clips ({', '.join(VIDEO_SUFFIXES)})")
        return path, clips
    if not path.is_file():
        raise CliError(f"{display_name(source)}: no such file or folder")
    return path.parent, [path]


def track_spec(args) -> TrackSpec:
    """The options' :class:`TrackSpec`, or a one-line error naming the bad option."""
    try:
        return TrackSpec(**{name: getattr(args, name) for name in TRACK_FLAGS})
    except SettingError as exc:
        raise CliError.of_setting(exc, TRACK_FLAGS) from None


def _stride(args) -> int:
    if not isinstance(args.stride, int) or args.stride < 1:
        raise CliError(f"--stride must be a whole number of at least 1, got {args.stride}")
    return args.stride


def _refuse_image_options(args) -> None:
    """Options of image and raster runs that a clip has no use for are refused, not silently ignored."""
    given = [flag for flag, on in (("--engine ray", getattr(args, "engine", "local") == "ray"),
                                   ("--bands", getattr(args, "bands", None) is not None),
                                   ("--wgs84", getattr(args, "wgs84", False)),
                                   ("--max-pixels", getattr(args, "max_pixels", None) is not None)) if on]
    if given:
        raise CliError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for images and rasters, not clips; "
                       "leave it out for a video run")


class ClipFolder:
    """One clip's output folder: its files, whether a run with ``key`` finished it, and its writing."""

    def __init__(self, out: Path, entry: Entry, key: str) -> None:
        self.dir, self.entry, self.key = out / entry.stem, entry, key

    def is_done(self, with_video: bool) -> bool:
        try:
            summary = json.loads((self.dir / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        files = FILES[1:3] + (FILES[:1] if with_video else ())
        return (isinstance(summary, dict) and summary.get("clip") == self.entry.shown
                and summary.get("run") == self.key and all((self.dir / name).is_file() for name in files))

    def write(self, run, names: dict[int, str], with_video: bool, bar: tqdm) -> dict:
        """Iterate ``run`` (a :class:`~tiling.video.VideoRun`), writing the video, the tracks and the CSV
        frame by frame (no frame is kept), then the summary, last. Returns the summary as written."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = {name: self.dir / f".tmp-{name}" for name in FILES}
        try:
            with contextlib.ExitStack() as stack:
                mot = stack.enter_context(MotWriter(tmp["tracks.txt"]))
                csv = stack.enter_context(DetectionsCsvWriter(tmp["detections.csv"], names))
                video = (stack.enter_context(AnnotatedVideoWriter(tmp["annotated.mp4"], run.info.fps / run.stride,
                                                                  run.info.size)) if with_video else None)
                for result, frame in run.with_frames():
                    if video is not None:
                        video.write(frame, result.detections)
                    mot.add(result)
                    csv.add(result)
                    bar.update(1)
            summary = {"clip": self.entry.shown, "run": self.key, **run.summary().to_dict()}
            for name in FILES[:3] if with_video else FILES[1:3]:
                tmp[name].replace(self.dir / name)
        finally:
            for path in tmp.values():
                path.unlink(missing_ok=True)
        write_atomic(self.dir / "summary.json", json.dumps(summary, indent=1).encode("utf-8"))
        return summary


def clip_settings(args):
    """The specs for a clip: as for photos, but ``--tile-size auto``, chosen per photo, is refused."""
    tiles, infer, merge = settings(args)
    if tiles.auto:
        raise CliError("--tile-size auto is chosen per photo; a clip needs a tile size in pixels (e.g. --tile-size 640)")
    return tiles, infer, merge


def predict_videos(args) -> int:
    """``patchwise predict`` on a clip or a folder of clips; exit code 1 when no clip has outputs."""
    tiles, infer, merge = clip_settings(args)
    track, stride = track_spec(args), _stride(args)
    _refuse_image_options(args)
    runtime_options(args.runtime, args.precision)
    root, clips = find_clips(args.source)
    run = entries(root, clips)
    infos = {}
    if len(run) == 1:  # a lone bad clip is reported before the model loads
        infos[run[0].path] = _probe(run[0])
    key = sha256_of(repr((run_key(tiles, infer, merge, args.model, args.precision, calibration=args.calibration),
                          track, stride)).encode("utf-8"))[:16]
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot write to {display_name(str(out))}: {exc.strerror}") from None
    folders = [ClipFolder(out, entry, key) for entry in run]
    todo = [f for f in folders if not f.is_done(not args.no_images)]
    model = load(args.model, args.precision, args.calibration, runtime=args.runtime) if todo else None
    failures = objects = 0
    for folder in todo:
        try:
            info = infos.get(folder.entry.path) or _probe(folder.entry)
            clip_run = predict_video(info.path, model, tiles, infer, merge, track, stride=stride)
            with tqdm(total=math.ceil(info.frames / stride), desc=folder.entry.shown, unit="frame",
                      file=sys.stderr) as bar:
                summary = folder.write(clip_run, dict(model.names), not args.no_images, bar)
        except (VideoError, CliError) as exc:
            tqdm.write(f"skipped {folder.entry.shown}: {display_name(str(exc))}", file=sys.stderr)
            failures += 1
            continue
        objects += int(summary.get("unique_total", 0))
    notes = [f"{len(folders) - len(todo)} done before" if len(folders) > len(todo) else "",
             f"{failures} skipped" if failures else ""]
    notes = [n for n in notes if n]
    done = len(run) - failures
    print(f"{done} clip{'' if done == 1 else 's'}, {objects} unique objects tracked in this run -> "
          f"{display_name(str(out))}"
          + (f" ({', '.join(notes)})" if notes else ""))
    return 1 if failures == len(run) else 0


def _probe(entry: Entry):
    try:
        return probe_clip(entry.path)
    except VideoError as exc:
        raise CliError(display_name(str(exc))) from None


def evaluate_video(args) -> int:
    """``patchwise evaluate`` on one clip with MOT ground truth: MOTA, IDF1 and HOTA, full frame vs tiles,
    with the same model and tracker."""
    tiles, infer, merge = clip_settings(args)
    track, stride = track_spec(args), _stride(args)
    runtime_options(args.runtime, args.precision)
    root, clips = find_clips(args.source)
    if len(clips) != 1:
        raise CliError(f"evaluate takes one clip and its --labels MOT file; {display_name(args.source)} holds "
                       f"{len(clips)}")
    info = _probe(entries(root, clips)[0])
    labels = Path(args.labels)
    if not labels.is_file():
        raise CliError(f"--labels {display_name(args.labels)}: no such file (a clip's labels are one MOT Challenge "
                       "text file: frame,id,x,y,w,h,...)")
    try:
        read_mot(labels, ground_truth=True)
    except MotError as exc:
        raise CliError(f"--labels {display_name(str(exc))}") from None
    model = load(args.model, args.precision, args.calibration, runtime=args.runtime)
    rows = []
    for mode, full_frame in (("full frame", True), ("tiles", False)):
        with tqdm(total=math.ceil(info.frames / stride), desc=mode, unit="frame", file=sys.stderr) as bar:
            frames = []
            for result in predict_video(info.path, model, tiles, infer, merge, track, stride=stride,
                                        full_frame=full_frame):
                frames.append(result)
                bar.update(1)
        scores = evaluate_tracks(labels, frames)
        rows.append({"mode": mode, "MOTA": scores.mota, "IDF1": scores.idf1, "HOTA": scores.hota,
                     "tracks": len({int(t) for f in frames for t in f.detections.data["track_id"] if t >= 0})})
    print(f"{display_name(str(clips[0].name))}: {info.frames} frames at {info.fps:g} fps, every {stride}; tracker "
          f"{track.tracker.value}")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def video_flags(args: argparse.Namespace) -> Sequence[str]:
    """The tracking options given a value other than their default (for an image run, which refuses them)."""
    defaults = {name: getattr(TrackSpec(), name) for name in TRACK_FLAGS}
    shown = [TRACK_FLAGS[n] for n, v in defaults.items() if getattr(args, n, v) != v]
    return shown + ([flag_of("stride")] if getattr(args, "stride", 1) != 1 else [])
