"""`patchwise predict clip.mp4` and `patchwise evaluate clip.mp4 --labels gt.txt`: the files a clip gets, reruns
that skip finished clips, folders of clips, the scores table, and one line for every bad input (before
the model loads). Clips are tiny ones from scripts/make_clip.py (3-4 frames of 320x192), so a run is seconds."""
import json
import shutil

import pandas as pd
import pytest

from conftest import DET_WEIGHTS, SAMPLES
from scripts.make_clip import gt_path, write_clip
from tiling import cli, probe_clip
from tiling.cli_video import is_video

needs_weights = pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A folder of two tiny clips with their MOT ground truth."""
    folder = tmp_path_factory.mktemp("clips")
    write_clip(folder / "a.mp4", seed=3, width=320, height=192, seconds=0.3, fps=10, pan=1)
    write_clip(folder / "b.mp4", seed=4, width=320, height=192, seconds=0.4, fps=10, pan=0)
    return folder


def patchwise(capsys, *args) -> tuple[int, str, str]:
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def error_line(capsys, *args) -> str:
    """The one stderr line of a refused command (exit code 2)."""
    code, _, err = patchwise(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    return lines[0]


@needs_weights
@pytest.mark.slow
def test_predict_writes_a_folder_per_clip_and_a_rerun_skips_it(clips, tmp_path, capsys):
    out = tmp_path / "o"
    code, stdout, err = patchwise(capsys, "predict", clips / "a.mp4", "--model", DET_WEIGHTS, "--out", out)
    assert code == 0, err
    assert stdout.startswith("1 clip,") and "frame" in err  # the closing line; the frames bar
    folder = out / "a"
    assert sorted(p.name for p in folder.iterdir()) == ["annotated.mp4", "detections.csv", "summary.json", "tracks.txt"]
    assert probe_clip(folder / "annotated.mp4").frames == 3
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["clip"] == "a.mp4" and summary["frames"] == 3 and len(summary["counts_per_frame"]) == 3
    csv = pd.read_csv(folder / "detections.csv")
    assert {"frame", "track_id", "class", "x0", "y1"} <= set(csv.columns)
    assert set(csv["frame"]) <= {1, 2, 3} and len(csv) == sum(summary["counts_per_frame"])
    for line in (folder / "tracks.txt").read_text().splitlines():
        frame, track = line.split(",")[:2]
        assert 1 <= int(frame) <= 3 and int(track) >= 1
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    code, stdout, _ = patchwise(capsys, "predict", clips / "a.mp4", "--model", DET_WEIGHTS, "--out", out)
    assert code == 0 and "1 done before" in stdout
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps  # nothing written again
    code, stdout, _ = patchwise(capsys, "predict", clips / "a.mp4", "--model", DET_WEIGHTS, "--out", out,
                                "--tracker", "none")
    assert code == 0 and "done before" not in stdout  # other settings: the clip is done again
    assert json.loads((folder / "summary.json").read_text())["tracked"] is False


@needs_weights
@pytest.mark.slow
def test_a_folder_of_clips_with_a_bad_one_skips_it_in_one_line(clips, tmp_path, capsys):
    folder = tmp_path / "clips"
    shutil.copytree(clips, folder)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    code, stdout, err = patchwise(capsys, "predict", folder, "--model", DET_WEIGHTS, "--out", tmp_path / "o",
                                  "--stride", 2, "--no-images")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a", "b"]
    assert not (tmp_path / "o" / "b" / "annotated.mp4").exists()  # --no-images: no video
    assert json.loads((tmp_path / "o" / "b" / "summary.json").read_text())["frames"] == 2  # frames 0 and 2 of 4
    skipped = [line for line in err.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and "broken.mp4" in skipped[0] and "Traceback" not in err
    assert "1 skipped" in stdout


@needs_weights
@pytest.mark.slow
def test_evaluate_prints_mota_idf1_hota_for_both_modes(clips, capsys):
    code, stdout, err = patchwise(capsys, "evaluate", clips / "b.mp4", "--labels", gt_path(clips / "b.mp4"),
                                  "--model", DET_WEIGHTS)
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in stdout.splitlines() if line.strip().startswith(("full", "tiles"))}
    assert set(rows) == {"full", "tiles"}
    header = next(line.split() for line in stdout.splitlines() if "MOTA" in line)
    assert header[:4] == ["mode", "MOTA", "IDF1", "HOTA"]
    for row in rows.values():
        values = [float(v) for v in row[-4:-1]]  # MOTA, IDF1, HOTA (MOTA may be negative)
        assert all(v <= 1.0 for v in values) and all(0.0 <= v for v in values[1:])


def test_bad_clips_and_options_get_one_line_before_the_model_loads(clips, tmp_path, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    model = ["--model", "no-such-model.pt"]  # never loaded: each input is refused first
    assert "is not a video" in error_line(capsys, "predict", text, *model)
    assert "no such file" in error_line(capsys, "predict", tmp_path / "missing.mp4", *model)
    assert "--stride must be" in error_line(capsys, "predict", clips / "a.mp4", "--stride", 0, *model)
    assert "--track-low-thresh must not exceed" in error_line(
        capsys, "predict", clips / "a.mp4", "--track-low-thresh", 0.9, *model)
    assert "--track-camera-motion needs the botsort tracker" in error_line(
        capsys, "predict", clips / "a.mp4", "--track-camera-motion", *model)
    assert "--engine ray is for images" in error_line(capsys, "predict", clips / "a.mp4", "--engine", "ray", *model)
    assert "--tracker is for video clips" in error_line(
        capsys, "predict", SAMPLES / "depot-2400x1800.jpg", "--tracker", "botsort", *model)
    assert "invalid choice" in error_line(capsys, "predict", clips / "a.mp4", "--tracker", "sort", *model)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in error_line(capsys, "predict", empty, *model)  # no clips either: an image run's message


def test_evaluate_refuses_bad_labels_in_one_line(clips, tmp_path, capsys):
    model = ["--model", "no-such-model.pt"]
    assert "--labels" in error_line(capsys, "evaluate", clips / "a.mp4", "--labels", tmp_path / "gt.txt", *model)
    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,10,10,5,5,1,0,1\nframe,id,x\n")
    assert "line 2" in error_line(capsys, "evaluate", clips / "a.mp4", "--labels", bad, *model)
    assert "one clip" in error_line(capsys, "evaluate", clips, "--labels", bad, *model)


def test_a_folder_is_a_video_run_only_when_it_holds_clips_and_no_images(clips, tmp_path):
    assert is_video(str(clips / "a.mp4")) and is_video(str(clips))
    assert not is_video(str(SAMPLES / "depot-2400x1800.jpg"))
    mixed = tmp_path / "mixed"
    shutil.copytree(clips, mixed)
    shutil.copy(SAMPLES / "depot-2400x1800.jpg", mixed)
    assert not is_video(str(mixed))  # images present: the folder run it always was


@pytest.mark.slow
def test_the_bundled_clip_and_its_truth_are_what_make_clip_writes(tmp_path):
    from scripts.make_clip import BUNDLED

    bundled = SAMPLES / "clips" / "roads-1920x1080.mp4"
    frames, objects = write_clip(tmp_path / "roads.mp4", **BUNDLED)
    assert gt_path(tmp_path / "roads.mp4").read_text() == gt_path(bundled).read_text()  # the encoder's bytes may vary
    info = probe_clip(bundled)
    assert (info.width, info.height, info.frames, info.fps) == (1920, 1080, frames, 10.0) and objects == 54
    assert bundled.stat().st_size < 3_000_000
