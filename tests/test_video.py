"""tiling.video: clips probed before decoding, bad clips refused in one line, tiles of consecutive frames
batched exactly as frame-by-frame runs, tracks, writers and scores. Clips are generated here."""
from __future__ import annotations

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest
from conftest import SAMPLES, SquareFinder

import tiling
from tiling.checks import SettingError
from tiling.video import (AnnotatedVideoWriter, ClipLimits, MotError, TrackSpec, Tracker, VideoError, evaluate_tracks,
                          iter_frames, predict_video, probe_clip, read_mot, retrack, summarize,
                          write_detections_csv, write_mot, write_summary_json)
from tiling.video.frames import frames_per_group
from tiling.video.hota import FramePairs, hota

av = pytest.importorskip("av")
SIZE = (320, 240)  # (w, h)


def squares_frame(i: int, size=SIZE) -> np.ndarray:
    """Frame ``i``: a blue square moving right, a green one moving down-left, a blue one standing still."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    for (x, y, c) in ((20 + 4 * i, 40, 0), (250 - 3 * i, 30 + 3 * i, 1), (150, 180, 0)):
        img[y:y + 24, x:x + 24, c] = 255
    return img


def write_clip(path, frames: int, size=SIZE, fps: float = 10, fourcc: str = "FFV1") -> str:
    """A clip of :func:`squares_frame` frames; FFV1 (lossless) by default, so each frame decodes exactly."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(squares_frame(i, size))
    writer.release()
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "squares.avi", 14)


# -- probing and bad input -------------------------------------------------------------------

def test_probe_counts_frames_and_reads_every_one(clip):
    info = probe_clip(clip)
    assert (info.width, info.height, info.frames, info.fps, info.seconds) == (320, 240, 14, 10.0, 1.4)
    frames = list(iter_frames(clip, stride=3))
    assert [i for i, _ in frames] == [0, 3, 6, 9, 12]
    assert all(f.shape == (240, 320, 3) and f.dtype == np.uint8 for _, f in frames)
    assert frames[1][1][40:64, 32:56, 0].mean() > 200  # the blue square, where frame 3 has it


@pytest.mark.parametrize("fourcc,suffix", [("mp4v", "mp4"), ("MJPG", "avi")])
def test_lossy_clips_read_too(tmp_path, fourcc, suffix):
    path = write_clip(tmp_path / f"squares.{suffix}", 5, fourcc=fourcc)
    assert probe_clip(path).frames == 5 and len(list(iter_frames(path))) == 5


def _one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_a_text_file_named_mp4_is_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n" * 50)
    with pytest.raises(VideoError) as e:
        probe_clip(path)
    assert "is not a video" in _one_line(e)


def test_a_playlist_named_mp4_reaches_no_other_file(tmp_path, clip):
    # FFmpeg picks its demuxer by content: a concat list would read any file it names.
    path = tmp_path / "list.mp4"
    path.write_text(f"ffconcat version 1.0\nfile '{clip}'\n")
    with pytest.raises(VideoError) as e:
        probe_clip(path)
    assert "not" in _one_line(e)


def test_frames_too_small_to_detect_in_are_refused(tmp_path):
    with pytest.raises(VideoError) as e:
        probe_clip(write_clip(tmp_path / "tiny.mkv", 3, size=(8, 8)))
    assert "too small" in _one_line(e) and "8x8" in _one_line(e)


def test_a_clip_needs_a_tile_size_in_pixels(clip):
    with pytest.raises(ValueError, match="tile_size 'auto' is chosen per photo; a clip needs a tile size"):
        predict_video(clip, SquareFinder(), tile_size="auto")


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_still_image_named_mp4_is_not_a_video(tmp_path, suffix):
    ok, data = cv2.imencode(suffix, squares_frame(0))
    (tmp_path / "photo.mp4").write_bytes(data.tobytes())
    with pytest.raises(VideoError) as e:
        probe_clip(tmp_path / "photo.mp4")
    assert "is a still image" in _one_line(e)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        probe_clip(tmp_path / "gone.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(VideoError, match="is empty"):
        probe_clip(tmp_path / "empty.mp4")


def test_a_truncated_mp4_is_refused_at_probe_time(tmp_path):
    data = open(write_clip(tmp_path / "whole.mp4", 20, fourcc="mp4v"), "rb").read()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end
    with pytest.raises(VideoError) as e:
        probe_clip(tmp_path / "cut.mp4")
    assert "corrupt or truncated" in _one_line(e)


def test_a_truncated_avi_stops_with_one_line(tmp_path):
    data = open(write_clip(tmp_path / "whole.avi", 20), "rb").read()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError) as e:
        for _ in iter_frames(tmp_path / "cut.avi"):
            pass
    assert "truncated" in _one_line(e)


@pytest.mark.parametrize("fourcc,suffix", [("FFV1", "avi"), ("MJPG", "avi"), ("mp4v", "mp4")])
def test_a_clip_with_zero_frames(tmp_path, fourcc, suffix):
    path = write_clip(tmp_path / f"zero.{suffix}", 0, fourcc=fourcc)
    with pytest.raises(VideoError) as e:
        probe_clip(path)
    assert "no video frames" in _one_line(e)


def test_an_audio_only_file(tmp_path):
    path = str(tmp_path / "sound.m4a")
    with av.open(path, "w") as out:
        stream = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    with pytest.raises(VideoError) as e:
        probe_clip(path)
    assert "only audio" in _one_line(e)


def test_a_variable_frame_rate_is_refused_before_decoding(tmp_path):
    path = str(tmp_path / "vfr.mp4")
    with av.open(path, "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(12):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="bgr24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            t += 100 if i % 3 else 350
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(VideoError) as e:
        probe_clip(path)
    assert "variable frame rate" in _one_line(e)


@pytest.mark.parametrize("limit,words", [
    (dict(max_frames=10), "frame count 14"), (dict(max_pixels=100 * 100), "resolution"),
    (dict(max_bytes=1000), "file size"), (dict(max_seconds=1.0), "duration"),
    (dict(max_decode_bytes=320 * 240 * 3 * 4), "decoding"),
])
def test_limits_are_checked_before_decoding(clip, limit, words):
    with pytest.raises(VideoError) as e:
        probe_clip(clip, ClipLimits(**limit))
    text = _one_line(e)
    assert words in text and "past the limit" in text


def test_limits_and_settings_are_checked():
    with pytest.raises(SettingError, match="max_frames"):
        ClipLimits(max_frames=0)
    with pytest.raises(SettingError, match="tracker must be one of bytetrack, botsort, none"):
        Tracker.from_value("sort")
    assert Tracker.from_value("BoTSORT") is Tracker.BOTSORT
    with pytest.raises(SettingError, match="low_thresh"):
        TrackSpec(low_thresh=0.5, high_thresh=0.3)
    with pytest.raises(SettingError, match="camera_motion needs the botsort"):
        TrackSpec(camera_motion=True)


# -- the run: tiles, batching, tracking ----------------------------------------------------------

RUN = dict(tile_size=96, overlap=0.25, conf=0.25, batch_size=4)


def test_frames_share_batches_only_as_far_as_they_fill_them():
    assert frames_per_group(12, 8) == 2 and frames_per_group(6, 4) == 2 and frames_per_group(8, 8) == 1
    assert frames_per_group(1, 8) == 8 and frames_per_group(7, 64) == 8  # at most 8 frames held


@pytest.mark.parametrize("include_full", [False, True])
def test_batched_frames_equal_frame_by_frame_predict_tiled(clip, include_full):
    model = tiling.as_model(SquareFinder(partial_conf=0.9))
    run = predict_video(clip, model, include_full=include_full, **RUN)
    assert run.group > 1  # tiles of several frames do share batches here
    results = list(run)
    frames = dict(iter_frames(clip))
    assert [r.index for r in results] == list(range(14))
    for r in results:
        alone = tiling.predict_tiled(frames[r.index], model, include_full=include_full, **RUN)
        for mine, theirs in ((r.raw, alone.raw), (r.detections, alone.detections)):
            np.testing.assert_array_equal(mine.xyxy, theirs.xyxy)
            np.testing.assert_array_equal(mine.confidence, theirs.confidence)
            np.testing.assert_array_equal(mine.class_id, theirs.class_id)
            for key in ("tile_index", "truncated", "source"):
                np.testing.assert_array_equal(mine.data[key], theirs.data[key])
    assert any((r.raw.data["truncated"]).any() for r in results)  # squares crossed tile edges


def test_a_moving_object_keeps_one_track_id(clip):
    results = list(predict_video(clip, SquareFinder(), **RUN))
    ids_per_square = {0: set(), 1: set(), 2: set()}
    for r in results:
        det = r.detections
        assert len(det) == 3 and det.data["track_id"].dtype == np.int64
        for k in range(3):
            x0, y0 = det.xyxy[k, :2]
            square = 2 if (x0, y0) == (150, 180) else int(det.class_id[k] == 1)
            ids_per_square[square].add(int(det.data["track_id"][k]))
    assert all(len(ids) == 1 for ids in ids_per_square.values())
    assert len(set.union(*ids_per_square.values())) == 3 and -1 not in set.union(*ids_per_square.values())


def test_summary_counts_unique_objects_and_track_lengths(clip):
    run = predict_video(clip, SquareFinder(), stride=2, **RUN)
    with pytest.raises(RuntimeError, match="once the run"):
        run.summary()
    done = []
    results = list(predict_video(clip, SquareFinder(), stride=2, progress=lambda d, t: done.append((d, t)), **RUN))
    assert done[-1] == (7, 7) and len(done) == 7
    list(run)
    summary = run.summary()
    assert summary.unique_per_class == {"blue": 2, "green": 1}
    assert summary.counts_per_frame == [3] * 7 and summary.frames == 7 and summary.stride == 2
    assert sorted(summary.track_lengths.values()) == [7, 7, 7]
    assert summarize(results, 10.0, 2) == summary
    with pytest.raises(RuntimeError, match="iterated once"):
        list(run)


@pytest.mark.parametrize("track", [TrackSpec(), TrackSpec(tracker="botsort", camera_motion=True)])
def test_trackers_use_neither_the_network_nor_the_disk(clip, tmp_path, monkeypatch, track):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the tracker opened a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.chdir(tmp_path)
    results = list(predict_video(clip, SquareFinder(), track=track, **RUN))
    assert len({int(t) for r in results for t in r.detections.data["track_id"]}) == 3
    assert list(tmp_path.iterdir()) == []


def test_no_tracker_leaves_ids_at_minus_one_and_counts_the_busiest_frame(clip):
    run = predict_video(clip, SquareFinder(), track=TrackSpec(tracker="none"), **RUN)
    assert all((r.detections.data["track_id"] == -1).all() for r in run)
    assert run.summary().unique_per_class == {"blue": 2, "green": 1} and not run.summary().tracked


def test_retrack_remerges_kept_raw_detections_without_the_model(clip):
    model = SquareFinder(partial_conf=0.3)
    results = list(predict_video(clip, model, conf=0.2, tile_size=96, overlap=0.25, batch_size=4))
    calls = model.calls
    same = retrack(results, tiling.MergeSpec(conf=0.2))
    assert model.calls == calls
    for a, b in zip(results, same):
        np.testing.assert_array_equal(a.detections.xyxy, b.detections.xyxy)
        np.testing.assert_array_equal(a.detections.data["track_id"], b.detections.data["track_id"])
    blue = retrack(results, conf=0.2, classes=[0])
    assert all(len(r.detections) == 2 and (r.detections.class_id == 0).all() for r in blue)
    botsort = retrack(results, conf=0.2, tracker="botsort")
    assert {int(t) for r in botsort for t in r.detections.data["track_id"]} == {1, 2, 3}
    with pytest.raises(ValueError, match="camera_motion needs the frames"):
        retrack(results, tracker="botsort", camera_motion=True)


def test_full_frame_runs_the_ordinary_pass(clip):
    model = tiling.as_model(SquareFinder())
    results = list(predict_video(clip, model, full_frame=True, imgsz=320, **RUN))
    frame = dict(iter_frames(clip))[4]
    expected = tiling.predict_full(frame, model, imgsz=320, conf=0.25)
    np.testing.assert_array_equal(results[4].detections.xyxy, expected.xyxy)
    assert results[4].full_frame and (results[4].raw.data["source"] == "full").all()


def test_settings_are_refused_before_the_clip_is_read(clip):
    with pytest.raises(SettingError, match="stride"):
        predict_video(clip, SquareFinder(), stride=0)
    with pytest.raises(TypeError, match="unknown setting"):
        predict_video(clip, SquareFinder(), tile_sise=96)


# -- writers ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tracked(clip):
    return list(predict_video(clip, SquareFinder(), stride=2, **RUN))


def test_mot_file_round_trip(tracked, tmp_path):
    path = write_mot(tracked, tmp_path / "tracks.txt")
    lines = path.read_text().splitlines()
    assert len(lines) == 21
    first = lines[0].split(",")
    assert len(first) == 10 and first[0] == "1" and first[7:] == ["-1", "-1", "-1"]
    assert {line.split(",")[0] for line in lines} == {"1", "3", "5", "7", "9", "11", "13"}  # 1-based, stride 2
    back = read_mot(path)
    assert len(back) == 21 and set(back.track_id.tolist()) == {1, 2, 3}
    ids, boxes = back.at(1)
    assert len(ids) == 3 and (boxes[:, 2:] > 0).all()


def test_read_mot_refuses_a_bad_line(tmp_path):
    (tmp_path / "bad.txt").write_text("1,1,10,10,5,5,1,-1,-1,-1\n2,x,10,10,5,5\n")
    with pytest.raises(MotError, match="line 2"):
        read_mot(tmp_path / "bad.txt")
    (tmp_path / "zero.txt").write_text("0,1,10,10,5,5,1\n")
    with pytest.raises(MotError, match="line 1: the frame must be"):
        read_mot(tmp_path / "zero.txt")


def test_csv_and_summary_json(tracked, tmp_path):
    import pandas as pd

    table = pd.read_csv(write_detections_csv(tracked, tmp_path / "detections.csv"))
    assert list(table.columns) == ["frame", "seconds", "track_id", "class_id", "class", "confidence",
                                   "x0", "y0", "x1", "y1"]
    assert len(table) == 21 and set(table["class"]) == {"blue", "green"} and (table["track_id"] >= 1).all()
    assert table["seconds"].max() == pytest.approx(1.2)
    data = json.loads(write_summary_json(summarize(tracked, 10.0, 2), tmp_path / "summary.json").read_text())
    assert data["unique_per_class"] == {"blue": 2, "green": 1} and data["unique_total"] == 3
    assert data["counts_per_frame"] == [3] * 7 and set(data["track_lengths"]) == {"1", "2", "3"}


@pytest.mark.parametrize("suffix,codec", [("mp4", "h264"), ("webm", "vp9")])
def test_annotated_video_plays_in_a_browser_codec(clip, tmp_path, suffix, codec):
    path = tmp_path / f"tracks.{suffix}"
    run = predict_video(clip, SquareFinder(), **RUN)
    with AnnotatedVideoWriter(path, run.info.fps, (321, 241)) as video:  # odd sizes lose a row and a column
        for result, frame in run.with_frames():
            video.write(cv2.copyMakeBorder(frame, 0, 1, 0, 1, cv2.BORDER_CONSTANT), result.detections)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == codec and stream.codec_context.pix_fmt == "yuv420p"
        decoded = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    assert len(decoded) == 14 and decoded[0].shape == (240, 320, 3)
    assert probe_clip(path).frames == 14  # the encoder's reordered (B-frame) timestamps are a constant rate
    assert decoded[0].sum() > squares_frame(0).sum()  # boxes and labels drawn over the squares
    if suffix == "mp4":
        head = path.read_bytes()[:64]
        assert head.index(b"moov") < 64  # the index first: playback starts before the download ends


def test_annotated_video_refuses_another_format(tmp_path):
    with pytest.raises(ValueError, match="video format must be one of"):
        AnnotatedVideoWriter(tmp_path / "out.avi", 10, SIZE)


# -- scores ----------------------------------------------------------------------------------

def test_perfect_tracks_score_one(tracked, tmp_path):
    gt = write_mot(tracked, tmp_path / "gt.txt")
    scores = evaluate_tracks(gt, tracked)
    assert scores.mota == pytest.approx(1.0) and scores.idf1 == pytest.approx(1.0)
    assert scores.hota == pytest.approx(1.0) and scores.switches == 0 and scores.frames == 7
    assert scores.gt_tracks == 3 and scores.gt_boxes == 21


def test_an_identity_switch_and_a_miss_are_counted(tmp_path):
    gt = tmp_path / "gt.txt"
    gt.write_text("".join(f"{f},1,{10 * f},10,20,20,1,-1,-1,-1\n" for f in range(1, 11)))
    tracks = tmp_path / "tracks.txt"
    lines = [f"{f},{1 if f <= 5 else 7},{10 * f},10,20,20,0.9,-1,-1,-1\n" for f in range(1, 11) if f != 8]
    tracks.write_text("".join(lines))
    scores = evaluate_tracks(gt, tracks)
    assert scores.misses == 1 and scores.switches == 1 and scores.false_positives == 0
    assert scores.mota == pytest.approx(1 - 2 / 10)
    assert scores.idf1 == pytest.approx(2 * 5 / (10 + 9))  # the best id covers 5 of 10 truth and 9 tracker boxes
    assert 0 < scores.hota < 1


def test_hota_equals_trackevals_on_a_random_case():
    """Reference from TrackEval 1.3.0's metrics.HOTA().eval_sequence on this very input (mean over alpha)."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(30):
        g = np.sort(rng.choice(6, rng.integers(0, 7), replace=False))
        r = np.sort(rng.choice(8, rng.integers(0, 9), replace=False))
        frames.append(FramePairs(g, r, rng.random((len(g), len(r))) * (rng.random((len(g), len(r))) < 0.4)))
    scores = hota(frames, 6, 8)
    assert scores.hota == pytest.approx(0.12560034446672624, abs=1e-12)
    assert scores.deta == pytest.approx(0.20943803288686164, abs=1e-12)
    assert scores.assa == pytest.approx(0.07729395281319892, abs=1e-12)


# -- the bundled detector on the bundled clip ---------------------------------------------------

BUNDLED_CLIP = SAMPLES / "clips" / "roads-1920x1080.mp4"


@pytest.mark.slow
def test_bundled_detector_batches_equal_predict_tiled_on_the_sample_clip(det_model):
    if not BUNDLED_CLIP.exists():
        pytest.skip("the sample clip is not present")
    settings = dict(tile_size=640, overlap=0.25, conf=0.25, batch_size=12)
    run = predict_video(BUNDLED_CLIP, det_model, **settings)
    assert run.group == 3  # 8 tiles a frame: 3 frames fill two batches of 12
    for result, frame in run.with_frames():
        alone = tiling.predict_tiled(frame, det_model, **settings)
        assert len(result.raw) == len(alone.raw) and len(result.detections) == len(alone.detections)
        np.testing.assert_allclose(result.detections.xyxy, alone.detections.xyxy, atol=1e-3)
        np.testing.assert_array_equal(result.detections.class_id, alone.detections.class_id)
        if result.index == 5:
            break


@pytest.mark.slow
def test_memory_does_not_grow_with_the_clip(tmp_path):
    import tracemalloc

    def peak(frames: int) -> int:
        path = write_clip(tmp_path / f"long{frames}.avi", frames, size=(640, 480))
        tracemalloc.start()
        for _ in predict_video(path, SquareFinder(), **dict(RUN, tile_size=160)):
            pass
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return top

    short, long = peak(20), peak(200)
    assert long < short * 1.1 + 200_000  # ten times the frames: the same peak, less a few numbers per frame
