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


@pytest.mark.slow
def test_help_texts_are_complete():
    for args in (["--help"], ["predict", "--help"], ["evaluate", "--help"]):
        out = run(*args)
        assert out.returncode == 0
    text = run("predict", "--help").stdout
    for option in ("--model", "--tile-size", "--overlap", "--edge", "--max-tiles", "--conf", "--iou", "--classes",
                   "--max-det", "--batch-size", "--imgsz", "--include-full", "--method", "--metric", "--threshold",
                   "--class-agnostic", "--out"):
        assert option in text
    assert "--labels" in run("evaluate", "--help").stdout


@needs_weights
@pytest.mark.slow
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
    assert "optimized for this CPU the first time" in out.stderr  # a slow first export is not silent


@needs_weights
@pytest.mark.slow
def test_evaluate_matches_the_labels_classes_to_the_model_s_by_name(tmp_path):
    """YOLO labels named by a data.yaml beside them: 'car' is scored, 'person' is named and left out."""
    import shutil

    shutil.copy(SAMPLES / "depot-2400x1800.jpg", tmp_path)
    rows = (SAMPLES / "depot-2400x1800.txt").read_text().splitlines()
    (tmp_path / "depot-2400x1800.txt").write_text("\n".join(r for r in rows if r.split()[0] in "01") + "\n")
    (tmp_path / "data.yaml").write_text("names: [person, car]\n")  # the sample's cars are class 1 here
    out = run("evaluate", tmp_path, "--labels", tmp_path, "--model", DET_WEIGHTS, "--tile-size", 1280)
    assert out.returncode == 0, out.stderr
    assert "the labels use classes person, car; the model knows car, truck, plane" in out.stderr
    assert "'car' is scored, 'person' is not" in out.stderr
    cars = sum(r.split()[0] == "1" for r in rows)
    assert f"1 images, {cars} labelled objects" in out.stdout
    classes = {line.split()[2 if line.strip().startswith("full") else 1] for line in out.stdout.splitlines()
               if line.strip().startswith(("full image", "patches"))}
    assert classes == {"all", "car"}  # nothing scored against classes the labels do not know


@needs_weights
@pytest.mark.slow
def test_evaluate_prints_the_comparison(tmp_path):
    import shutil

    for suffix in (".jpg", ".txt"):
        shutil.copy(SAMPLES / f"depot-2400x1800{suffix}", tmp_path)
    out = run("evaluate", tmp_path, "--labels", tmp_path, "--model", DET_WEIGHTS, "--tile-size", 640)
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
        (["predict", SAMPLES, "--model", "m.pt", "--method", "avg"], "invalid choice"),
        (["predict", SAMPLES, "--model", "m.pt", "--imgsz", "0"], "--imgsz must be between 32 and 4096"),
        (["predict", SAMPLES, "--model", "m.pt", "--imgsz", "-5"], "--imgsz must be between 32 and 4096"),
        (["predict", SAMPLES, "--model", "m.pt", "--max-det", "-1"], "--max-det must be between 1"),
        (["predict", SAMPLES, "--model", "m.pt", "--tile-size", "0"], "--tile-size must be between 1"),
        (["predict", SAMPLES, "--model", "m.pt", "--classes", "1.7"], "expected class ids"),
        (["predict", SAMPLES, "--model", "m.pt", "--threshold", "nan"], "--threshold must be a number"),
    ],
)
@pytest.mark.slow
def test_bad_paths_and_options_exit_2_with_one_line(args, message):
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


@needs_weights
@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_is_written_readably(tmp_path):
    import os
    import shutil

    folder = tmp_path / "in"
    folder.mkdir()
    odd = os.path.join(os.fsencode(folder), b"caf\xe9-scene.jpg")  # Latin-1 bytes: not UTF-8
    shutil.copy(SAMPLES / "depot-2400x1800.jpg", odd)
    out = run("predict", folder, "--model", DET_WEIGHTS, "--out", tmp_path / "o", "--no-images")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    frame = pd.read_csv(tmp_path / "o" / "detections.csv")
    assert set(frame["image"]) == {"caf\ufffd-scene.jpg"} and len(frame) > 100


@needs_weights
@pytest.mark.slow
def test_evaluate_with_hostile_yolo_labels_says_which_file_and_goes_on(tmp_path):
    import shutil

    hostile = {"a": ("0 0.5 0.5 0.1 inf\n", "inf"), "c": ("1e308 0.5 0.5 0.1 0.1\n", "class"),
               "d": ("0 nan 0.5 0.1 0.1\n", "nan")}
    for stem, (content, _) in hostile.items():
        shutil.copy(SAMPLES / "depot-2400x1800.jpg", tmp_path / f"{stem}.jpg")
        (tmp_path / f"{stem}.txt").write_text(content)
    shutil.copy(SAMPLES / "depot-2400x1800.jpg", tmp_path / "b.jpg")
    shutil.copy(SAMPLES / "depot-2400x1800.txt", tmp_path / "b.txt")
    out = run("evaluate", tmp_path, "--labels", tmp_path, "--model", DET_WEIGHTS)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    for stem, (_, message) in hostile.items():  # each bad file named, with what is wrong in it
        skipped = [line for line in out.stderr.splitlines() if line.startswith(f"skipped {stem}.jpg")]
        assert len(skipped) == 1 and f"{stem}.txt" in skipped[0] and message in skipped[0].lower(), out.stderr
    assert "1 images" in out.stdout


def test_evaluate_with_a_broken_coco_file_is_one_line_before_the_model_loads(tmp_path):
    (tmp_path / "gt.json").write_text("[[[[[[[[" * 20000)
    out = run("evaluate", SAMPLES, "--labels", tmp_path / "gt.json", "--model", "never-loaded.pt")
    assert out.returncode == 2 and "gt.json" in out.stderr and "Traceback" not in out.stderr


def test_the_parser_has_an_option_for_every_spec_field_with_its_default():
    from dataclasses import fields

    from tiling.cli import build_parser
    from tiling.cli_specs import HELP, SPECS

    parser = build_parser()
    for command in (["predict", "x.jpg"], ["evaluate", "x.jpg", "--labels", "l"]):
        args = parser.parse_args([*command, "--model", "m.pt"])
        for cls in SPECS:
            spec = cls()
            for f in fields(cls):
                assert f.name in HELP, f"no help text for {cls.__name__}.{f.name}"
                assert getattr(args, f.name) == getattr(spec, f.name), f.name
    flags = {s for action in parser._subparsers._group_actions[0].choices["predict"]._actions
             for s in action.option_strings}
    assert {"--" + f.name.replace("_", "-") for cls in SPECS for f in fields(cls)} <= flags


def test_auto_tile_size_levels_and_the_merge_methods_by_option(capsys):
    from tiling.cli import build_parser
    from tiling.cli_specs import settings

    parser = build_parser()
    args = parser.parse_args(["predict", "x.jpg", "--model", "m.pt", "--tile-size", "auto", "--method", "soft",
                              "--no-include-full"])
    tiles, infer, merge = settings(args)
    assert tiles.auto and merge.method == "soft" and not infer.include_full
    tiles, _, _ = settings(parser.parse_args(["predict", "x.jpg", "--model", "m.pt", "--levels", "320"]))
    assert tiles.levels == (320,) and tiles.count((765, 1360)) > tiling_count_one(640)
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "x.jpg", "--model", "m.pt", "--tile-size", "big"])
    assert "expected a whole number or auto, got 'big'" in capsys.readouterr().err


def tiling_count_one(size: int) -> int:
    import tiling

    return tiling.TileSpec(tile_size=size).count((765, 1360))


def test_spec_options_reach_the_specs_by_name():
    from tiling.cli import build_parser
    from tiling.cli_specs import settings

    args = build_parser().parse_args(["predict", "x.jpg", "--model", "m.pt", "--tile-size", "320", "--overlap", "0.1",
                                      "--edge", "shift", "--conf", "0.4", "--classes", "2,0", "--method", "nmm",
                                      "--threshold", "0.6", "--class-agnostic", "--include-full", "--max-tiles", "7"])
    tiles, infer, merge = settings(args)
    assert (tiles.tile_size, tiles.overlap, tiles.edge, tiles.max_tiles) == (320, 0.1, "shift", 7)
    assert (infer.conf, infer.classes, infer.include_full) == (0.4, (0, 2), True)
    assert (merge.conf, merge.classes, merge.method, merge.threshold, merge.class_agnostic) == (
        0.4, (0, 2), "nmm", 0.6, True)


@pytest.mark.parametrize("option, value, message", [
    ("--overlap", "2", "--overlap must be in [0, 0.9), got 2"),
    ("--threshold", "1.5", "--threshold must be in [0, 1], got 1.5"),
    ("--batch-size", "0", "--batch-size must be between 1 and"),
    ("--max-tiles", "0", "--max-tiles must be between 1 and"),
    ("--iou", "-1", "--iou must be in [0, 1]"),
    ("--classes", "-3", "--classes must be between 0 and"),
    ("--bands", "1,2", "--bands must be one band (grey) or three"),
    ("--bands", "0", "--bands must be between 1 and"),
])
def test_a_bad_value_names_its_option(option, value, message, capsys, tmp_path):
    from tiling.cli import main

    (tmp_path / "a.jpg").write_bytes(b"never read: the options are refused first")
    assert main(["predict", str(tmp_path), "--model", "never-loaded.pt", "--out", str(tmp_path / "o"),
                 option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"patchwise predict: error: {message}"), err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_the_cli_modules_import_downwards_only():
    """No cycle among the CLI's modules, none imports the parser's module (cli.py, the top), and no import
    inside a function (which would hide a cycle)."""
    import ast
    from graphlib import TopologicalSorter

    graph = {}
    for path in sorted((ROOT / "tiling").glob("cli*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = [n for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))]
                assert not inner, f"{path.stem}.{node.name} imports inside the function"
        used = {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.level == 1 and n.module}
        graph[path.stem] = {m for m in used if m.startswith("cli")}
    assert {"cli", "cli_common", "cli_specs", "cli_commands", "cli_raster"} <= set(graph)
    assert not any("cli" in deps for deps in graph.values())
    order = list(TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert order[-1] == "cli" and order.index("cli_common") < order.index("cli_specs")


@pytest.mark.slow
def test_the_cli_takes_a_zipped_openvino_folder_as_the_page_does(tmp_path):
    """The page accepts an OpenVINO folder zipped; so does --model, with the folder's own answer."""
    import zipfile

    folder = ROOT / "models" / "synth-yolo11n-det_int8_openvino_model"
    with zipfile.ZipFile(tmp_path / "export.zip", "w") as zf:
        for name in ("model.xml", "model.bin", "metadata.yaml"):
            zf.write(folder / name, name)
    image = tmp_path / "in" / "scene.jpg"
    image.parent.mkdir()
    image.write_bytes((ROOT / "samples" / "airfield-4000x3000.jpg").read_bytes())
    zipped = run("predict", image, "--model", tmp_path / "export.zip", "--out", tmp_path / "z")
    direct = run("predict", image, "--model", folder / "model.xml", "--out", tmp_path / "d")
    assert zipped.returncode == 0, zipped.stderr
    assert direct.returncode == 0, direct.stderr
    assert (tmp_path / "z" / "detections.csv").read_text() == (tmp_path / "d" / "detections.csv").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("content, words", [(b"not a zip", "is not a readable zip archive"),
                                            ({"model.xml": b"<net/>", "run.py": b"x"}, "may hold only")])
def test_a_zip_the_page_would_refuse_is_refused_before_loading_is_said(tmp_path, content, words):
    import zipfile

    bad = tmp_path / "model.zip"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        with zipfile.ZipFile(bad, "w") as zf:
            for name, data in content.items():
                zf.writestr(name, data)
    out = run("predict", SAMPLES / "depot-2400x1800.jpg", "--model", bad, "--out", tmp_path / "out")
    assert out.returncode == 2 and words in out.stderr and "loading" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
