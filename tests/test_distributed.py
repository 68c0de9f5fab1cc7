"""Folder runs on Ray (`tiling.distributed`, `patchwise predict --engine ray`) and the output files both engines
share (`tiling.outputs`). One local Ray cluster serves the whole module."""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

import conftest
import tiling
from conftest import DET_WEIGHTS, ROOT, SAMPLES, SquareFinder, square_scene
from tiling.inputs import entries, list_images, run_key
from tiling.outputs import OutputFolder

try:  # the tests that start Ray need it; the others here run without the [ray] extra
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install 'patchwise[ray]')")

from tiling.distributed import ClusterSpec, predict_folder  # noqa: E402


def cli(*args):
    return subprocess.run([sys.executable, "-m", "tiling", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cluster():
    if ray is None:
        pytest.skip("Ray is not installed (pip install 'patchwise[ray]')")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    # The stand-in models live in the tests, which the workers cannot import: they travel by value.
    ray.cloudpickle.register_pickle_by_value(conftest)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


class KillOnce(SquareFinder):
    """SquareFinder that, on its actor's fifth call, has Ray kill that actor while it works (once per run:
    the marker file says it happened)."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    def __call__(self, images):
        if self.calls == 4:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                import time

                ray.kill(ray.get_runtime_context().current_actor, no_restart=False)
                time.sleep(60)  # the kill lands while this image is being worked on
        return super().__call__(images)


def scene_folder(folder: Path, n: int, big: int = 0, geotiff: bool = False) -> list[Path]:
    """``n`` small generated scenes and ``big`` large ones (cut into bands with small ``piece_tiles``); with
    ``geotiff`` one more large scene as a georeferenced GeoTIFF whose left 300 columns are nodata."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n + big):
        size = (1400, 1000) if k >= n else (600, 400)
        img, _ = square_scene(*size, n=40, seed=k)
        cv2.imwrite(str(folder / f"scene-{k:02d}.png"), img)
    if geotiff:
        img, _ = square_scene(1400, 1000, n=60, seed=99)
        img[img.sum(axis=2) == 0] = 40  # a grey ground, so that 0 can mean nodata
        img[:, :300] = 0
        write_geotiff(folder / "ortho.tif", img, nodata=0)
    return sorted(p for p in folder.iterdir() if p.suffix in (".png", ".tif"))


def write_geotiff(path: Path, bgr: np.ndarray, nodata=None) -> None:
    """``bgr`` as a georeferenced 3-band GeoTIFF (UTM 33N, half a metre per pixel)."""
    import rasterio
    from rasterio.transform import from_origin

    h, w = bgr.shape[:2]
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8", crs="EPSG:32633",
                       transform=from_origin(500_000, 4_000_000, 0.5, 0.5), nodata=nodata) as ds:
        ds.write(np.ascontiguousarray(np.moveaxis(bgr[..., ::-1], 2, 0)))


def expected_frame(path: Path, tiles) -> pd.DataFrame:
    """What the single-process pipeline finds on one image (``predict_raster`` for a raster), as the
    per-image JSON lists it, in a canonical row order."""
    model = tiling.CallableModel(SquareFinder())
    if path.suffix == ".tif":
        det = tiling.predict_raster(path, model, tiles).detections
    else:
        det = tiling.predict_tiled(tiling.read_image(path), model, tiles).detections
    frame = det.to_dataframe()
    frame.insert(0, "image", path.name)
    return canonical(frame)


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["x0", "y0", "x1", "y1", "class_id", "confidence"], kind="stable").reset_index(drop=True)


# -- outputs shared by both engines (no cluster) --------------------------------------------------------
def test_output_stems_never_collide_and_ids_follow_the_input_list(tmp_path):
    for name in ("a.jpg", "a.png", "A.webp", "b.jpg"):
        (tmp_path / name).write_bytes(b"x")
    root, images = list_images(tmp_path)
    run = entries(root, images)
    assert [e.stem for e in run] == ["A", "a-2", "a-3", "b"]  # tiling.names.unique_stems, as the page names them
    assert [e.image_id for e in run] == [1, 2, 3, 4]
    assert list_images(str(tmp_path / "*.png"))[1] == [tmp_path / "a.png"]


@pytest.mark.parametrize("source, message", [("nowhere/", "no such file or folder"),
                                             ("nowhere/*.jpg", "matches no images"),
                                             (["missing.jpg"], "no such file"), ([], "empty")])
def test_bad_sources_are_one_line(source, message):
    with pytest.raises(ValueError, match=message):
        list_images(source)


def test_a_rerun_skips_what_is_complete_and_redoes_what_is_not(tmp_path):
    paths = scene_folder(tmp_path / "in", 2)
    folder = OutputFolder(tmp_path / "out")
    folder.prepare()
    run = entries(tmp_path / "in", paths)
    image = tiling.read_image(paths[0])
    det = tiling.predict_tiled(image, tiling.CallableModel(SquareFinder()), tile_size=256).detections
    folder.write(run[0], det, image.shape, image)
    assert folder.is_done(run[0]) and not folder.is_done(run[1])
    folder.image_path(run[0]).unlink()  # an annotated picture lost: that image is done again
    assert not folder.is_done(run[0])
    assert OutputFolder(tmp_path / "out", with_images=False).is_done(run[0])
    assert not list((tmp_path / "out").rglob(".tmp-*"))  # every file was moved into place whole
    n_images, n_objects = folder.assemble(run, SquareFinder.names)
    assert (n_images, n_objects) == (1, len(det))


def test_a_rerun_with_other_settings_or_another_model_does_the_images_again(tmp_path):
    paths = scene_folder(tmp_path / "in", 1)
    model = tmp_path / "m.pt"
    model.write_bytes(b"weights one")
    specs = tiling.settings.split_settings(tile_size=256)
    key = run_key(*specs, model)
    assert key == run_key(*specs, str(model)) == run_key(*tiling.settings.split_settings(tile_size=256), model)
    entry = entries(tmp_path / "in", paths)[0]
    blank = np.zeros((400, 600, 3), np.uint8)
    OutputFolder(tmp_path / "out", key=key).write(entry, tiling.Detections.empty(), blank.shape, blank)
    assert OutputFolder(tmp_path / "out", key=key).is_done(entry)
    other_tiles = tiling.settings.split_settings(tile_size=320)
    assert not OutputFolder(tmp_path / "out", key=run_key(*other_tiles, model)).is_done(entry)
    assert not OutputFolder(tmp_path / "out", key=run_key(*specs, model, precision="int8")).is_done(entry)
    model.write_bytes(b"weights two")  # the same file name, other weights
    assert not OutputFolder(tmp_path / "out", key=run_key(*specs, model)).is_done(entry)


def test_cluster_settings_are_checked():
    with pytest.raises(ValueError, match="actors must be between 1"):
        ClusterSpec(actors=0)
    with pytest.raises(ValueError, match="cpus_per_actor must be a number"):
        ClusterSpec(cpus_per_actor="2")
    with pytest.raises(TypeError, match="unknown setting actor; the settings are actors, address"):
        predict_folder("x/", "m.pt", "o/", actor=2)


@pytest.mark.slow
def test_an_openvino_folder_travels_to_the_workers_zipped():
    from tiling.distributed.shipping import shipped_model

    folder = DET_WEIGHTS.parent / "synth-yolo11n-det_int8_openvino_model"
    if not folder.is_dir():
        pytest.skip("bundled OpenVINO export not present")
    data, label = shipped_model(folder)
    assert isinstance(data, bytes) and label == folder.name
    shipped, local = tiling.load_model(data, name=label), tiling.load_model(folder)
    assert shipped.runtime == local.runtime and shipped.names == local.names
    image = tiling.read_image(SAMPLES / "depot-2400x1800.jpg")[:640, :640]
    a, b = (tiling.predict_tiled(image, m, tile_size=640).detections for m in (shipped, local))
    assert len(a) > 5 and np.array_equal(a.xyxy, b.xyxy)


@pytest.mark.slow
def test_cli_ray_options_are_checked_before_any_cluster_starts(tmp_path):
    out = cli("predict", SAMPLES, "--model", DET_WEIGHTS, "--out", tmp_path / "o", "--engine", "ray", "--actors", "0")
    assert out.returncode == 2 and "--actors must be between 1" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cluster_options_reach_the_cluster_spec_and_are_refused_without_the_ray_engine(tmp_path):
    from argparse import Namespace

    from tiling.cli_commands import CliError, cluster_spec

    args = Namespace(engine="ray", ray_address="head:6379", actors=3, cpus_per_actor=2.0, gpus_per_actor=0.5,
                     io_actors=4)
    assert cluster_spec(args) == ClusterSpec(address="head:6379", actors=3, cpus_per_actor=2.0, gpus_per_actor=0.5,
                                             io_actors=4)
    unset = dict(ray_address=None, actors=None, cpus_per_actor=None, gpus_per_actor=None, io_actors=None)
    assert cluster_spec(Namespace(engine="ray", **unset)) == ClusterSpec()
    with pytest.raises(CliError, match=r"--cpus-per-actor must be in \[0, 1024\]"):
        cluster_spec(Namespace(engine="ray", **dict(unset, cpus_per_actor=-1.0)))
    with pytest.raises(CliError, match="--io-actors must be between 1"):
        cluster_spec(Namespace(engine="ray", **dict(unset, io_actors=0)))
    out = cli("predict", SAMPLES, "--model", DET_WEIGHTS, "--out", tmp_path / "o", "--actors", "4",
              "--gpus-per-actor", "1")
    assert out.returncode == 2 and "--actors, --gpus-per-actor are for --engine ray" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # refused before anything was written


@pytest.mark.slow
def test_without_ray_the_engine_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from tiling.cli import main; "
            f"sys.exit(main(['predict', {str(SAMPLES)!r}, '--model', {str(DET_WEIGHTS)!r}, '--out', "
            f"{str(tmp_path / 'o')!r}, '--engine', 'ray']))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "pip install 'patchwise[ray]'" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


# -- on the cluster ------------------------------------------------------------------------------------
@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
@pytest.mark.slow
def test_ray_engine_writes_exactly_what_the_single_process_cli_writes(tmp_path, cluster):
    sample = tiling.read_image(SAMPLES / "depot-2400x1800.jpg")
    src = tmp_path / "in"
    src.mkdir()
    for k in range(20):  # 20 crops of a bundled scene, each a few 320 px tiles
        y, x = divmod(k, 5)
        cv2.imwrite(str(src / f"crop-{k:02d}.png"), sample[y * 400 : y * 400 + 360, x * 460 : x * 460 + 480])
    write_geotiff(src / "ortho.tif", sample[1000:1400, 1200:1800])  # read window by window by both engines
    common = ["--model", DET_WEIGHTS, "--tile-size", 320, "--overlap", 0.2]
    with ThreadPoolExecutor(2) as pool:  # both at once: each spends most of its time starting up
        local = pool.submit(cli, "predict", src, *common, "--out", tmp_path / "local")
        on_ray = pool.submit(cli, "predict", src, *common, "--out", tmp_path / "ray", "--engine", "ray",
                             "--ray-address", cluster, "--actors", 2, "--io-actors", 2)
        local, on_ray = local.result(), on_ray.result()
    assert local.returncode == 0, local.stderr
    assert on_ray.returncode == 0, on_ray.stderr
    assert on_ray.stdout.split(" -> ")[0] == local.stdout.split(" -> ")[0]  # "21 images, N objects"
    a, b = files_of(tmp_path / "local"), files_of(tmp_path / "ray")
    assert sorted(a) == sorted(b) and len([n for n in a if n.startswith("json/")]) == 21
    assert json.loads(a["json/ortho.json"])["run"] and "geojson/ortho.geojson" in a
    assert [n for n in a if a[n] != b[n]] == []  # every file, byte for byte: labels, JSON, GeoJSON, CSV, COCO, pictures
    assert sum(len(json.loads(a[n])["detections"]) for n in a if n.startswith("json/")) > 20


@pytest.mark.slow
def test_a_killed_actor_is_restarted_and_every_image_finishes(tmp_path, cluster):
    paths = scene_folder(tmp_path / "in", 17, big=2, geotiff=True)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a picture")
    tiles = tiling.TileSpec(tile_size=256, overlap=0.2)
    lines = []
    run = predict_folder(tmp_path / "in", KillOnce(str(tmp_path / "killed")), tmp_path / "out", tiles,
                         cluster=ClusterSpec(actors=2, piece_tiles=8), log=lines.append)
    assert (tmp_path / "killed").exists()  # an actor really was killed mid-run
    assert run.images == 21 and run.written == 20 and list(run.failed) == ["broken.png"]
    assert lines == [f"skipped broken.png: {run.failed['broken.png']}"] and "not an image" in lines[0]
    folder = OutputFolder(tmp_path / "out", key=run_key(*tiling.settings.split_settings(tiles), KillOnce("")))
    for entry in entries(tmp_path / "in", paths):
        assert folder.is_done(entry)
        record = json.loads(folder.json_path(entry).read_text())
        found = canonical(pd.DataFrame(record["detections"], columns=record["columns"]))
        expected = expected_frame(entry.path, tiles)  # the big scenes and the raster went to the actors in bands
        assert len(expected) > 5
        pd.testing.assert_frame_equal(found, expected, check_dtype=False, check_like=True)
    ortho = next(e for e in entries(tmp_path / "in", paths) if e.rel == "ortho.tif")
    geo = json.loads(folder.geojson_path(ortho).read_text())
    assert len(geo["features"]) == len(expected_frame(ortho.path, tiles)) and "32633" in json.dumps(geo["crs"])
    assert not (tmp_path / "out" / "geojson" / "scene-00.geojson").exists()  # photos get none
    coco = json.loads((tmp_path / "out" / "coco_results.json").read_text())
    assert len(coco) == run.objects == sum(len(expected_frame(p, tiles)) for p in paths)
    assert {r["image_id"] for r in coco} == set(range(2, 22))  # broken.png is image 1 and has no results
    assert run.objects > 500

    # A rerun does only what is missing and leaves every finished file as it was.
    lost = folder.json_path(entries(tmp_path / "in", paths)[3])
    lost.unlink()
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file() and p != lost}
    csv_before = (tmp_path / "out" / "detections.csv").read_bytes()
    again = predict_folder(tmp_path / "in", KillOnce(str(tmp_path / "killed")), tmp_path / "out", tiles,
                           cluster=ClusterSpec(actors=1))  # the same model and settings: the same run
    assert (again.done_before, again.written, list(again.failed)) == (19, 1, ["broken.png"])
    assert lost.exists() and (tmp_path / "out" / "detections.csv").read_bytes() == csv_before
    changed = sorted(p.name for p, t in before.items() if p.stat().st_mtime_ns != t and p.parent.name != "out")
    assert changed == [f"{lost.stem}.jpg", f"{lost.stem}.txt"]  # that image's own files, nothing else


@pytest.mark.slow
def test_a_model_that_cannot_load_is_one_error_before_any_work(tmp_path, cluster):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    scene_folder(tmp_path / "in", 1)
    with pytest.raises(tiling.ModelError, match="bad.pt"):
        predict_folder(tmp_path / "in", tmp_path / "bad.pt", tmp_path / "out")
    assert not list((tmp_path / "out" / "json").iterdir())


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
@pytest.mark.slow
def test_an_8_bit_run_is_calibrated_once_from_tiles_sent_with_the_model(tmp_path, cluster, monkeypatch):
    """Weights without a shipped 8-bit copy: the driver cuts calibration tiles from the run's images, the
    worker that checks the model makes the copy, the actor finds it; the driver never quantizes."""
    pytest.importorskip("nncf")
    from ultralytics import YOLO

    from tiling.models import calibration, quantize
    from tiling.models.bundled import BundledAssets
    from tiling.util import sha256_of_file

    weights = tmp_path / "resaved.pt"
    YOLO(str(DET_WEIGHTS)).save(str(weights))  # the same network in other bytes: no copy ships for it
    assert BundledAssets(DET_WEIGHTS.parent, SAMPLES).copy_for(sha256_of_file(weights)) is None
    (tmp_path / "in").mkdir()
    image = np.ascontiguousarray(tiling.read_image(SAMPLES / "depot-2400x1800.jpg")[:640, :1280])
    cv2.imwrite(str(tmp_path / "in" / "piece.png"), image)
    monkeypatch.setattr(calibration, "CALIBRATION_TILES", 6)  # the tiles are cut here, so this is what is sent
    monkeypatch.setattr(calibration, "HELD_OUT_TILES", 3)
    run = predict_folder(tmp_path / "in", weights, tmp_path / "out", tile_size=640, precision="int8",
                         with_images=False, cluster=ClusterSpec(address=cluster, actors=1))
    assert (run.written, run.failed) == (1, {})

    def refuse(*args, **kwargs):
        raise AssertionError("the copy must come from the workers' cache")

    monkeypatch.setattr(quantize, "quantize_ir", refuse)
    local = tiling.load_model(weights, precision="int8", calibration=[tmp_path / "in" / "piece.png"])
    assert local.agreement is not None  # the copy the check worker made, found by the same key
    record = json.loads((tmp_path / "out" / "json" / "piece.json").read_text())
    expected = tiling.predict_tiled(image, local, tile_size=640).detections
    assert len(record["detections"]) == len(expected) > 5


def find_bars(images):
    """A stand-in oriented-box model: every white blob as its minimum-area rotated rectangle."""
    out = []
    for im in images:
        contours, _ = cv2.findContours((im[..., 0] > 128).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        rows = [[cx, cy, w + 1, h + 1, np.radians(deg)] for (cx, cy), (w, h), deg in map(cv2.minAreaRect, contours)]
        conf = 0.5 + 0.4 * np.arange(len(rows)) / max(1, len(rows))  # no ties: one order in both engines
        out.append(tiling.Detections.from_obb(np.array(rows, np.float32).reshape(-1, 5), conf, np.zeros(len(rows)),
                                              {0: "bar"}, clip=im.shape[1::-1]))
    return out


def bar_scene(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = np.zeros((500, 700, 3), np.uint8)
    for cx, cy in zip(range(60, 700, 110), rng.integers(60, 440, 6)):
        pts = cv2.boxPoints(((float(cx), float(cy)), (70.0, 18.0), float(rng.uniform(0, 180))))
        cv2.fillPoly(img, [np.round(pts).astype(np.int32)], (255, 255, 255))
    cv2.imwrite(str(path), img)


@pytest.mark.slow
def test_oriented_boxes_get_dota_files_and_angles_in_both_engines(tmp_path, cluster):
    (tmp_path / "in").mkdir()
    for k in range(2):
        bar_scene(tmp_path / "in" / f"bars-{k}.png", k)
    model = tiling.CallableModel(find_bars, names={0: "bar"}, task="obb")
    tiles = tiling.TileSpec(tile_size=256, overlap=0.25)
    predict_folder(tmp_path / "in", model, tmp_path / "ray", tiles, with_images=False,
                   cluster=ClusterSpec(address=cluster, actors=1))
    folder = OutputFolder(tmp_path / "local", with_images=False, key=run_key(*tiling.settings.split_settings(tiles),
                                                                              model))
    folder.prepare()
    run = entries(*list_images(tmp_path / "in"))
    for entry in run:
        image = tiling.read_image(entry.path)
        folder.write(entry, tiling.predict_tiled(image, model, tiles).detections, image.shape, image)
    folder.assemble(run, model.names)
    a, b = files_of(tmp_path / "local"), files_of(tmp_path / "ray")
    assert sorted(a) == sorted(b) and [n for n in a if a[n] != b[n]] == []
    dota = a["dota/bars-0.txt"].decode().splitlines()
    assert len(dota) == 6 and all(len(line.split()) == 11 and line.split()[8] == "bar" for line in dota)
    frame = pd.read_csv(tmp_path / "ray" / "detections.csv")
    assert {"angle_deg", "cx", "cy", "obb_w", "obb_h"} <= set(frame.columns) and len(frame) == 12
    assert frame["angle_deg"].abs().max() > 5  # the angles, not upright boxes
    assert folder.is_done(run[0])
    folder.dota_path(run[0]).unlink()  # an oriented-box image without its DOTA file is done again
    assert not folder.is_done(run[0])


# -- the pipeline's stages in this process (no cluster) -------------------------------------------------
def _bands_in_process(path: Path, tmp_path: Path, tiles, piece_tiles: int, **reading) -> tuple[list, dict]:
    """The Ray pipeline's cut, detect and finish stages for one image, run here: its band items and its JSON."""
    import pickle

    from tiling.distributed.cut import cut
    from tiling.distributed.detect import Detect
    from tiling.distributed.items import Reading
    from tiling.distributed.shipping import Shipment
    from tiling.distributed.write import finish_bands

    infer, merge = tiling.InferSpec(include_full=False), tiling.MergeSpec()  # a full pass keeps an image whole
    run = entries(path.parent, [path])
    folder = OutputFolder(tmp_path / "out", with_images=False)
    folder.prepare()
    rows = list(cut({"item": pickle.dumps(run[0])}, tiles, infer, piece_tiles, Reading(**reading)))
    items = [pickle.loads(r["item"]) for r in rows]
    actor = Detect(Shipment(SquareFinder(), "squares", {}), 0, tiles, infer, merge)
    done = [actor._one(pickle.loads(r["item"])) for r in rows]
    result = finish_bands(done, folder, tiles, infer, merge, Reading(**reading))
    assert not result.error, result.error
    return items, json.loads(folder.json_path(run[0]).read_text())


def test_offset_grid_bands_are_a_few_tile_rows_tall_and_merge_as_predict_tiled(tmp_path):
    img, _ = square_scene(300, 1600, n=40, seed=3)
    cv2.imwrite(str(tmp_path / "tall.png"), img)
    tiles = tiling.TileSpec(tile_size=128, offset_grid=True)
    items, record = _bands_in_process(tmp_path / "tall.png", tmp_path, tiles, piece_tiles=6)
    assert len(items) > 10
    assert max(i.image.shape[0] for i in items) <= 2 * 128  # a band is its rows, never the whole image
    assert sorted(k for i in items for k in i.tiles) == list(range(len(tiles.plan(img.shape))))
    expected = tiling.predict_tiled(img, tiling.CallableModel(SquareFinder()), tiles, include_full=False).detections
    got = np.array([[d["x0"], d["y0"], d["x1"], d["y1"]] for d in record["detections"]])
    assert len(expected) > 20 and np.allclose(got, expected.xyxy.round(1), atol=0.06)


def test_raster_bands_drop_nodata_boxes_and_merge_as_predict_raster(tmp_path):
    pytest.importorskip("rasterio")
    img, _ = square_scene(700, 900, n=50, seed=5)
    img[img.sum(axis=2) == 0] = 40
    img[:, :200] = 0
    write_geotiff(tmp_path / "ortho.tif", img, nodata=0)
    tiles = tiling.TileSpec(tile_size=128, offset_grid=True)
    items, record = _bands_in_process(tmp_path / "ortho.tif", tmp_path, tiles, piece_tiles=12)
    assert len(items) > 3 and all(i.raster for i in items)
    got = canonical(pd.DataFrame(record["detections"]))
    want = expected_frame(tmp_path / "ortho.tif", tiles)
    assert 20 < len(want) and (want["x1"] > 200).all()  # boxes on nodata are gone, as in predict_raster
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)


class NothingOriented:
    """An oriented-box stand-in model that finds nothing."""

    names, task = {0: "plane"}, "obb"

    def __call__(self, images):
        return [tiling.Detections.empty(self.names, with_obb=True) for _ in images]


def test_an_empty_result_keeps_the_columns_of_its_model_kind_in_every_engine(tmp_path):
    pytest.importorskip("rasterio")
    img = np.full((300, 400, 3), 40, np.uint8)
    write_geotiff(tmp_path / "empty.tif", img)
    model = tiling.CallableModel(NothingOriented())
    streamed = tiling.predict_raster(tmp_path / "empty.tif", model, tile_size=128).detections
    tiled = tiling.predict_tiled(img, model, tile_size=128).detections
    for det in (streamed, tiled):
        assert det.has_obb and "angle_deg" in det.to_dataframe().columns
    from tiling.distributed.detect import band_detections
    from tiling.distributed.items import Item

    item = Item(entries(tmp_path, [tmp_path / "empty.tif"])[0], shape=(300, 400), tiles=(0, 1), image=img)
    assert band_detections(item, model, tiling.TileSpec(tile_size=128), tiling.InferSpec()).has_obb


def test_the_csv_header_is_every_images_columns_and_rows_stay_aligned(tmp_path):
    paths = scene_folder(tmp_path / "in", 2)
    run = entries(tmp_path / "in", paths)
    folder = OutputFolder(tmp_path / "out", with_images=False)
    folder.prepare()
    upright = tiling.Detections(np.array([[10, 10, 30, 30]]), np.array([0.9]), np.array([0]), names={0: "plane"})
    oriented = tiling.Detections.from_obb(np.array([[50, 60, 20, 10, 0.5]]), np.array([0.8]), np.array([0]),
                                          names={0: "plane"})
    folder.write(run[0], upright, (400, 600))
    folder.write(run[1], oriented, (400, 600))
    assert folder.assemble(run, {0: "plane"}) == (2, 2)
    frame = pd.read_csv(tmp_path / "out" / "detections.csv")
    columns = list(frame.columns)
    assert columns.index("height") + 1 == columns.index("cx") and columns[-1] == "angle_deg"
    assert frame["angle_deg"].isna().tolist() == [True, False]
    assert frame["confidence"].tolist() == [0.9, 0.8] and frame["cx"].tolist()[1] == 50.0


def test_the_run_key_follows_an_openvino_exports_weights_and_the_8_bit_calibration(tmp_path):
    specs = tiling.settings.split_settings(tile_size=256)
    export = tmp_path / "m_openvino_model"
    export.mkdir()
    (export / "m.xml").write_text("<net/>")
    (export / "m.bin").write_bytes(b"weights one")
    before = run_key(*specs, export / "m.xml"), run_key(*specs, export)
    (export / "m.bin").write_bytes(b"weights two")  # the same graph, other weights
    assert run_key(*specs, export / "m.xml") != before[0] and run_key(*specs, export) != before[1]
    assert run_key(*specs, export / "m.xml") == run_key(*specs, export)
    model = tmp_path / "m.pt"
    model.write_bytes(b"weights")
    calib = []
    for k in range(2):
        (tmp_path / f"calib{k}").mkdir()
        cv2.imwrite(str(tmp_path / f"calib{k}" / "a.png"), np.full((64, 64, 3), 60 * k, np.uint8))
        calib.append(tmp_path / f"calib{k}")
    int8 = [run_key(*specs, model, "int8", calibration=c) for c in calib]
    assert int8[0] != int8[1] and int8[0] == run_key(*specs, model, "int8", calibration=str(calib[0]))
    assert run_key(*specs, model, "fp32", calibration=calib[0]) == run_key(*specs, model, "fp32", calibration=calib[1])
    assert run_key(*specs, model, "int8", calibration=tmp_path / "nowhere")  # reported where the model loads


def test_coco_categories_name_the_keypoints_of_a_pose_run(tmp_path):
    paths = scene_folder(tmp_path / "in", 1)
    run = entries(tmp_path / "in", paths)
    folder = OutputFolder(tmp_path / "out", with_images=False)
    folder.prepare()
    points = np.array([[[12, 14, 0.9], [20, 22, 0.8], [25, 28, 0.7]]])
    person = tiling.Detections(np.array([[10, 10, 30, 30]]), np.array([0.9]), np.array([0]), names={0: "person"},
                               keypoints=points)
    folder.write(run[0], person, (400, 600))
    folder.assemble(run, {0: "person"})
    category = json.loads((tmp_path / "out" / "coco_images.json").read_text())["categories"][0]
    assert category["keypoints"] == ["kp0", "kp1", "kp2"] and category["skeleton"] == []
    folder.write(run[0], person[[]], (400, 600))  # a pose model that found nothing still has its points
    folder.assemble(run, {0: "person"})
    assert json.loads((tmp_path / "out" / "coco_images.json").read_text())["categories"][0] == category
    folder.write(run[0], tiling.Detections.empty({0: "person"}), (400, 600))
    folder.assemble(run, {0: "person"})
    assert "keypoints" not in json.loads((tmp_path / "out" / "coco_images.json").read_text())["categories"][0]


def test_a_raster_that_cannot_be_reprojected_fails_when_it_is_cut_before_any_model_runs(tmp_path):
    pytest.importorskip("rasterio")
    import pickle

    from tiling.distributed.cut import cut
    from tiling.distributed.items import Reading

    import rasterio
    from rasterio.transform import from_origin

    img, _ = square_scene(400, 300, n=5, seed=1)
    with rasterio.open(tmp_path / "nocrs.tif", "w", driver="GTiff", width=400, height=300, count=3, dtype="uint8",
                       transform=from_origin(1000, 2000, 0.5, 0.5)) as ds:  # a pixel grid, but no CRS
        ds.write(np.ascontiguousarray(np.moveaxis(img, 2, 0)))
    run = entries(tmp_path, [tmp_path / "nocrs.tif"])
    items = [pickle.loads(r["item"]) for r in cut({"item": pickle.dumps(run[0])}, tiling.TileSpec(tile_size=128),
                                                 tiling.InferSpec(), 2, Reading(wgs84=True))]
    assert len(items) == 1 and "cannot be reprojected to EPSG:4326" in items[0].error and items[0].image is None
    assert len(list(cut({"item": pickle.dumps(run[0])}, tiling.TileSpec(tile_size=128), tiling.InferSpec(), 2,
                         Reading()))) > 1  # in its own CRS it runs


def test_the_library_and_the_cli_list_the_same_images_rasters_included(tmp_path):
    from tiling.cli_common import CliError, find_images

    for name in ("a.jpg", "b.jp2", "c.vrt", "d.img", "e.tif", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    root, images = list_images(tmp_path)
    assert [p.name for p in images] == ["a.jpg", "b.jp2", "c.vrt", "d.img", "e.tif"]
    assert find_images(str(tmp_path)) == (root, images)
    with pytest.raises(ValueError, match="is not an image .* nor a raster GDAL reads"):
        list_images(tmp_path / "notes.txt")
    with pytest.raises(CliError, match="no such file or folder"):
        find_images(str(tmp_path / "nowhere"))


def test_every_engine_refuses_a_merge_conf_below_the_models(tmp_path):
    specs = tiling.InferSpec(conf=0.3), tiling.MergeSpec(conf=0.2)
    model = tiling.CallableModel(SquareFinder())
    image = np.zeros((64, 64, 3), np.uint8)
    calls = [lambda: tiling.predict_tiled(image, model, None, *specs),
             lambda: tiling.predict_raster(tmp_path / "never-read.tif", model, None, *specs),
             lambda: predict_folder(tmp_path / "never-read", model, tmp_path / "o", None, *specs)]
    for call in calls:
        with pytest.raises(ValueError, match="the merge conf 0.2 is below the 0.3 the model runs at"):
            call()


@pytest.mark.slow
def test_the_model_and_the_calibration_tiles_go_to_the_workers_once_by_reference(cluster):
    from tiling.distributed.shipping import fetched, ship
    from tiling.models.calibration import Calibration

    tile = np.full((640, 640, 3), 7, np.uint8)
    calibration = Calibration((), "digest", "1 image", ((tile,) * 4, (tile,)))
    shipment = ship(b"weights" * 1000, "m.pt", {"runtime": "auto", "precision": "int8", "calibration": calibration})
    assert isinstance(shipment.source, ray.ObjectRef) and isinstance(shipment.options["calibration"], ray.ObjectRef)
    assert shipment.options["runtime"] == "auto" and shipment.label == "m.pt"
    source, options = ray.get(ray.remote(num_cpus=0)(fetched).remote(shipment))  # on a worker
    assert source == b"weights" * 1000 and options["calibration"].digest == "digest"
    assert np.array_equal(options["calibration"].tiles[0][3], tile)
    assert fetched(ship("yolo11n.pt", "yolo11n.pt", {"precision": "fp32"})) == ("yolo11n.pt", {"precision": "fp32"})


@needs_ray
def test_ray_datas_console_shows_only_problems_during_a_run_and_is_restored_after():
    import logging

    import ray.data  # noqa: F401  (configures its console handler)

    from tiling.distributed.folder import _quiet_console

    console = next(h for h in logging.getLogger("ray.data").handlers
                   if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler))

    def shown(level: int, text: str) -> bool:
        return bool(console.filter(logging.LogRecord("ray.data.x", level, __file__, 1, text, None, None)))

    undo = _quiet_console()
    try:
        assert not shown(logging.INFO, "Starting execution of Dataset")
        assert not shown(logging.WARNING, "Progress bars disabled. To enable, set ...")
        assert shown(logging.WARNING, "No available node to schedule the actor pool")
    finally:
        undo()
    assert shown(logging.INFO, "Starting execution of Dataset")  # the caller's own setup is back


@pytest.mark.slow
def test_images_given_by_uri_are_read_by_the_workers_and_give_the_files_paths_give(tmp_path, cluster):
    """A folder's URI (here file://, read through pyarrow's filesystems as s3:// or gs:// are) lists and
    reads like the folder: the same files, in both engines; a URI in a list that cannot be read fails alone."""
    scene_folder(tmp_path / "in" / "sub", 3, big=1)  # the big scene goes to the actors in bands
    tiles = tiling.TileSpec(tile_size=256, overlap=0.2)
    spec = ClusterSpec(address=cluster, actors=1, piece_tiles=8)
    by_path = predict_folder(tmp_path / "in", SquareFinder(), tmp_path / "paths", tiles, cluster=spec)
    uri = (tmp_path / "in").as_uri()
    by_uri = predict_folder(uri, SquareFinder(), tmp_path / "uris", tiles, cluster=spec)
    assert (by_uri.written, by_uri.failed) == (by_path.written, {}) == (4, {})
    assert files_of(tmp_path / "uris") == files_of(tmp_path / "paths")  # names relative to the folder, as for paths
    local = cli("predict", uri, "--model", DET_WEIGHTS, "--tile-size", 256, "--out", tmp_path / "cli", "--no-images")
    assert local.returncode == 0 and "4 images" in local.stdout, local.stderr

    listed = [f"{uri}/sub/scene-00.png", f"{uri}/sub/missing.png"]
    lines = []
    run = predict_folder(listed, SquareFinder(), tmp_path / "list", tiles, cluster=spec, log=lines.append)
    assert run.written == 1 and list(run.failed) == ["missing.png"] and "no such file" in run.failed["missing.png"]
    assert lines == [f"skipped missing.png: {run.failed['missing.png']}"]


@pytest.mark.parametrize("source, message", [("nope://bucket/x", "cannot be opened"),
                                             (["file:///a.png", "b.png"], "either all paths or all URIs"),
                                             (["s3://bucket/a.png", "gs://bucket/b.png"], "one scheme")])
def test_bad_uris_are_one_line(source, message):
    with pytest.raises(ValueError, match=message):
        list_images(source)


@pytest.mark.slow
def test_evaluate_refuses_a_uri_in_one_line(tmp_path):
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), np.zeros((64, 64, 3), np.uint8))
    out = cli("evaluate", (tmp_path / "in").as_uri(), "--labels", tmp_path, "--model", "never-loaded.pt")
    assert out.returncode == 2 and "copy them here first" in out.stderr and "Traceback" not in out.stderr


def test_uris_in_different_buckets_are_named_below_their_common_root():
    from tiling.uris import common_root, relative

    uris = ["s3://one/survey/a.jpg", "s3://two/b.jpg?versionId=3"]
    root = common_root(uris)
    assert root == "s3:/" and [relative(u, root) for u in uris] == ["one/survey/a.jpg", "two/b.jpg"]
    assert common_root(["s3://one/x/a.jpg", "s3://one/x/y/b.jpg"]) == "s3://one/x"


def test_uri_names_with_spaces_hashes_and_percents_are_listed_read_and_named_as_they_are(tmp_path):
    from tiling.uris import read_input

    folder = tmp_path / "a b"
    folder.mkdir()
    names = ["x y#1.png", "p%41.png", "plain.png"]
    for k, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((40, 60, 3), k * 50, np.uint8))
    root, uris = list_images(folder.as_uri())
    assert sorted(e.rel for e in entries(root, uris)) == sorted(names)  # output names as the files are named
    for uri, name in zip(uris, sorted(names)):
        assert read_input(uri)[0, 0, 0] == names.index(name) * 50  # each URI reads its own file


def test_uris_without_pyarrow_are_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.fs", None)  # as where the [ray] extra is not installed
    with pytest.raises(ValueError, match="reading URIs needs pyarrow"):
        list_images("s3://bucket/survey/")
