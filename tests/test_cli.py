"""`python -m tiling predict|evaluate` on the bundled samples."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import DET_WEIGHTS, ROOT, SAMPLES

needs_weights = pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "tiling", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_help_texts_are_complete():
    for args in (["--help"], ["predict", "--help"], ["evaluate", "--help"]):
        out = run(*args)
        assert out.returncode == 0
    text = run("predict", "--help").stdout
    for option in ("--model", "--tile", "--overlap", "--conf", "--merge", "--metric", "--merge-threshold", "--out",
                   "--class-agnostic", "--include-full", "--batch"):
        assert option in text
    assert "--labels" in run("evaluate", "--help").stdout


@needs_weights
def test_predict_writes_every_format(tmp_path):
    out = run("predict", SAMPLES / "depot-2400x1800.jpg", "--model", DET_WEIGHTS, "--out", tmp_path / "o")
    assert out.returncode == 0, out.stderr
    o = tmp_path / "o"
    frame = pd.read_csv(o / "detections.csv")
    assert len(frame) > 100 and set(frame["image"]) == {"depot-2400x1800.jpg"}
    coco = json.loads((o / "coco_results.json").read_text())
    assert len(coco) == len(frame) and {"bbox", "score", "category_id", "image_id"} <= set(coco[0])
    assert len((o / "labels" / "depot-2400x1800.txt").read_text().splitlines()) == len(frame)
    assert (o / "annotated" / "depot-2400x1800.jpg").stat().st_size > 10_000
    assert "images" in out.stderr  # the tqdm progress bar


@needs_weights
def test_evaluate_prints_the_comparison(tmp_path):
    import shutil

    for suffix in (".jpg", ".txt"):
        shutil.copy(SAMPLES / f"depot-2400x1800{suffix}", tmp_path)
    out = run("evaluate", tmp_path, "--labels", tmp_path, "--model", DET_WEIGHTS, "--tile", 640)
    assert out.returncode == 0, out.stderr
    table = {}
    for line in out.stdout.splitlines():
        tokens = line.split()
        if line.strip().startswith("full image"):
            table[("full", tokens[2])] = tokens[3:]
        elif line.strip().startswith("patches"):
            table[("patches", tokens[1])] = tokens[2:]
    full_recall, patch_recall = float(table[("full", "all")][1]), float(table[("patches", "all")][1])
    assert patch_recall > 0.8 and full_recall < 0.4


@pytest.mark.parametrize(
    "args, message",
    [
        (["predict", "nowhere/", "--model", "m.pt"], "no such file or folder"),
        (["predict", SAMPLES, "--model", "missing.pt"], "no such file"),
        (["predict", SAMPLES, "--model", "m.pt", "--conf", "2"], "--conf must be in"),
        (["predict", SAMPLES, "--model", "m.pt", "--overlap", "0.95"], "--overlap"),
        (["evaluate", SAMPLES, "--model", "m.pt"], "--labels"),
        (["predict", SAMPLES, "--model", "m.pt", "--merge", "avg"], "invalid choice"),
    ],
)
def test_bad_paths_and_options_exit_2_with_one_line(args, message):
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
