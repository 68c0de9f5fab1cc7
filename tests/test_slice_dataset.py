"""tiling.slice_dataset: exact clipping of every label kind, the visibility rule over random boxes, no
source image in two splits, one-line refusals, a sliced set Ultralytics reads, and the real VisDrone photos."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

import tiling
from tiling.cli import main
from tiling.dataset import DatasetError, Kind, LabelledObject, SliceSpec, clip_object, clip_ring, slice_dataset
from tiling.dataset.clip import object_area, ring_area
from tiling.dataset.slice import slice_image_objects
from tiling.dataset.sources import open_source
from tiling.dataset.splits import group_key
from tiling.dataset.writer import join_rings

ROOT = Path(__file__).resolve().parent.parent
VISDRONE = ROOT.parent / "shared" / "real-visdrone" / "val"
NAMES = {0: "car", 1: "truck", 2: "plane"}


def _dataset(root: Path, images: dict[str, list[str]], yaml_extra: str = "", size=(480, 360),
             splits: str = "train: images/train\nval: images/val\n") -> Path:
    """A YOLO dataset: ``images`` maps 'split/stem' to label rows; grey images of ``size`` (w, h)."""
    for key, rows in images.items():
        split, stem = key.split("/")
        img = np.full((size[1], size[0], 3), 90, np.uint8)
        cv2.circle(img, (size[0] // 2, size[1] // 2), 40, (200, 60, 30), -1)
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / split / f"{stem}.jpg"), img)
        (root / "labels" / split / f"{stem}.txt").write_text("".join(r + "\n" for r in rows))
    names = "".join(f"  {k}: {v}\n" for k, v in NAMES.items())
    (root / "data.yaml").write_text(f"{splits}{yaml_extra}names:\n{names}")
    return root / "data.yaml"


# exact clipping, one test per label kind
def _star(rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    """A concave star-shaped polygon: every ray from the centre crosses it once."""
    n = int(rng.integers(5, 14))
    angles = (np.arange(n) + rng.uniform(0.0, 0.8, n)) * 2 * np.pi / n  # gaps under 90 degrees
    radii = rng.uniform(0.5, 1.0, n) * r  # so the outline stays over 0.35 r from the centre
    return np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)])


def test_polygon_clipping_matches_shapely_holes_kept():
    shapely = pytest.importorskip("shapely")
    from shapely.geometry import Polygon, box

    rng = np.random.default_rng(1)
    window = (100.0, 80.0, 300.0, 240.0)
    checked = 0
    for _ in range(300):
        cx, cy = rng.uniform(60, 340), rng.uniform(40, 280)
        hole = None
        r = rng.uniform(20, 90)
        outer = _star(rng, cx, cy, r)
        if rng.random() < 0.5:  # a hole: a small opposite-wound ring inside the outline's core
            hole = _star(rng, cx, cy, 0.3 * r)[::-1]
        ring = outer if hole is None else join_rings([outer, hole])
        expected = Polygon(outer, [] if hole is None else [hole]).intersection(box(*window))
        clipped = clip_ring(ring, window)
        assert abs(abs(ring_area(clipped)) - expected.area) < 1e-6 * max(1.0, expected.area)
        if expected.area > 0:
            assert np.allclose(clipped.min(0), expected.bounds[:2]) and np.allclose(clipped.max(0), expected.bounds[2:])
            c = clip_object(LabelledObject(0, Kind.POLYGON, [ring]), window)
            assert c is not None and abs(c.fraction - expected.area / Polygon(outer, [] if hole is None else [hole]).area) < 1e-9
            checked += 1
    assert checked > 100
    assert shapely.__version__


def test_oriented_box_clipping_matches_intersect_convex_convex():
    rng = np.random.default_rng(2)
    window = (50.0, 50.0, 250.0, 200.0)
    tile = np.array([[50, 50], [250, 50], [250, 200], [50, 200]], np.float32)
    checked = 0
    for _ in range(300):
        rect = ((rng.uniform(20, 280), rng.uniform(20, 230)), (rng.uniform(5, 90), rng.uniform(5, 60)), rng.uniform(0, 180))
        corners = cv2.boxPoints(rect).astype(np.float64)
        obj = LabelledObject(1, Kind.OBB, [corners])
        area, _ = cv2.intersectConvexConvex(corners.astype(np.float32), tile)
        c = clip_object(obj, window)
        if area < 1e-3:
            assert c is None or c.fraction < 1e-4
            continue
        assert c is not None
        assert abs(c.fraction * object_area(obj) - area) < 1e-3 * max(1.0, area)
        inside = clip_ring(corners, window)  # the clipped polygon lies within the re-fitted rectangle
        refit = c.obj.rings[0].astype(np.float32) + np.float32(window[:2])
        assert len(c.obj.rings) == 1 and len(refit) == 4
        assert all(cv2.pointPolygonTest(refit, (float(x), float(y)), True) >= -1e-3 for x, y in inside)
        checked += 1
    assert checked > 100


def test_box_clipping_and_keypoints_outside_become_invisible():
    ring = np.array([[90.0, 10.0], [130.0, 10.0], [130.0, 50.0], [90.0, 50.0]])
    kpts = np.array([[95.0, 20.0, 2.0], [120.0, 30.0, 2.0], [99.0, 40.0, 1.0]])
    c = clip_object(LabelledObject(0, Kind.POSE, [ring], kpts), (0.0, 0.0, 100.0, 100.0))
    assert c is not None and c.cut and c.fraction == pytest.approx(10 / 40)
    assert c.obj.xyxy == (90.0, 10.0, 100.0, 50.0)
    assert c.obj.keypoints.tolist() == [[95.0, 20.0, 2.0], [0.0, 0.0, 0.0], [99.0, 40.0, 1.0]]
    shifted = clip_object(LabelledObject(0, Kind.BOX, [ring]), (80.0, 0.0, 200.0, 100.0))
    assert not shifted.cut and shifted.obj.xyxy == (10.0, 10.0, 50.0, 50.0)


def test_every_object_over_the_threshold_is_in_every_tile_holding_it_and_no_other():
    rng = np.random.default_rng(3)
    for trial in range(6):
        h, w = int(rng.integers(300, 900)), int(rng.integers(300, 900))
        x0, y0 = rng.uniform(0, w - 5, 60), rng.uniform(0, h - 5, 60)
        x1 = np.minimum(w, x0 + rng.uniform(2, 150, 60))
        y1 = np.minimum(h, y0 + rng.uniform(2, 150, 60))
        objects = [LabelledObject(0, Kind.BOX, [np.array([[a, b], [c, b], [c, d], [a, d]])]) for a, b, c, d in zip(x0, y0, x1, y1)]
        threshold = float(rng.choice([0.1, 0.5, 0.9]))
        spec = SliceSpec(tiles=tiling.TileSpec(tile_size=int(rng.choice([128, 256])), overlap=0.2), min_visibility=threshold)
        for tile, kept, dropped in slice_image_objects(objects, [object_area(o) for o in objects], (h, w), spec):
            ix0, iy0 = np.maximum(x0, tile.x0), np.maximum(y0, tile.y0)
            ix1, iy1 = np.minimum(x1, tile.x1), np.minimum(y1, tile.y1)
            inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
            frac = inter / ((x1 - x0) * (y1 - y0))
            expected = set(np.flatnonzero((inter > 0) & (frac >= threshold)))
            assert {i for i, _ in kept} == expected, (trial, tile)
            assert set(dropped) == set(np.flatnonzero((inter > 0) & (frac < threshold)))
            for i, c in kept:
                assert np.allclose(c.obj.xyxy, (ix0[i] - tile.x0, iy0[i] - tile.y0, ix1[i] - tile.x0, iy1[i] - tile.y0))
                assert c.fraction == pytest.approx(frac[i])


# the dataset end to end
def _rows_in(out: Path, split: str) -> dict[str, list[str]]:
    return {p.stem: p.read_text().split("\n")[:-1] for p in sorted((out / "labels" / split).glob("*.txt"))}


def test_slices_a_yolo_dataset_with_every_split_kept(tmp_path):
    src = _dataset(tmp_path / "src", {"train/a_1": ["0 0.5 0.5 0.2 0.2"], "val/b_1": ["1 0.1 0.1 0.1 0.1"]})
    report = slice_dataset(src, tmp_path / "out", tile_size=256, overlap=0.25, negatives=0.0)
    doc = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert doc["names"] == NAMES and doc["train"] == "images/train" and doc["val"] == "images/val"
    train, val = _rows_in(tmp_path / "out", "train"), _rows_in(tmp_path / "out", "val")
    assert all(k.startswith("a_1_") for k in train) and all(k.startswith("b_1_") for k in val)
    assert report.images == {"train": 1, "val": 1}
    assert report.tiles["val"]["labelled"] == 1 and report.tiles["val"]["negatives"] == 0
    assert (tmp_path / "out" / "contact_sheet.png").is_file()
    assert json.loads((tmp_path / "out" / "report.json").read_text())["objects"]["train"]["car"]["source"] == 1


def test_no_source_image_or_group_in_two_splits(tmp_path):
    images = {f"train/seq{g}_{i}": [f"{g % 3} 0.5 0.5 0.3 0.3"] for g in range(6) for i in range(3)}
    src = _dataset(tmp_path / "src", images, splits="train: images/train\n", size=(600, 400))
    for split_by in ("image", "group"):
        out = tmp_path / f"out-{split_by}"
        slice_dataset(src, out, tile_size=256, split_by=split_by, val_fraction=0.34, seed=5)
        owners: dict[str, set[str]] = {}
        for split in ("train", "val"):
            for p in (out / "images" / split).glob("*.jpg"):
                stem = p.stem.rsplit("_", 3)[0]
                owners.setdefault(stem if split_by == "image" else stem.split("_")[0], set()).add(split)
        assert all(len(s) == 1 for s in owners.values())
        assert {s for v in owners.values() for s in v} == {"train", "val"}
    assert group_key(open_source(src).images[0]) == "images/train/seq0"


def test_negatives_are_reproducible_and_a_share_of_the_empty_tiles(tmp_path):
    src = _dataset(tmp_path / "src", {f"train/e{i}": [] for i in range(8)} | {"val/v": ["0 0.5 0.5 0.1 0.1"]},
                   size=(1024, 1024))
    runs = [slice_dataset(src, tmp_path / f"o{k}", tile_size=128, overlap=0.0, negatives=0.25, seed=s)
            for k, s in enumerate((7, 7, 8))]
    listing = [sorted(p.name for p in (tmp_path / f"o{k}" / "images" / "train").glob("*")) for k in range(3)]
    assert listing[0] == listing[1] and listing[0] != listing[2]
    t = runs[0].tiles["train"]
    assert t["labelled"] == 0 and t["negatives"] + t["skipped"] == 8 * 64
    assert 0.18 < t["negatives"] / (8 * 64) < 0.32
    assert all(p.read_text() == "" for p in (tmp_path / "o0" / "labels" / "train").glob("*.txt"))


def test_label_kinds_are_written_clipped(tmp_path):
    obb = "2 0.45 0.10 0.60 0.10 0.60 0.30 0.45 0.30"  # a third of it left of x = 256 px (of 512), two right
    poly = "1 0.40 0.10 0.60 0.10 0.60 0.20 0.40 0.20"
    src = _dataset(tmp_path / "src", {"train/o": [obb], "train/p": [poly], "val/v": ["0 0.5 0.5 0.1 0.1"]},
                   size=(512, 512))
    slice_dataset(src, tmp_path / "out", tile_size=256, overlap=0.0, negatives=0.0, min_visibility=0.4)
    rows = _rows_in(tmp_path / "out", "train")
    assert "o_0_0_256x256" not in rows  # a third is under min_visibility: dropped, and the tile is empty
    right = np.array([float(v) for v in rows["o_256_0_256x256"][0].split()[1:]]).reshape(4, 2)
    assert right[:, 0].min() == pytest.approx(0.0) and right[:, 0].max() == pytest.approx(0.2)
    assert right[:, 1].min() == pytest.approx(0.2) and right[:, 1].max() == pytest.approx(0.6)
    left_poly = np.array([float(v) for v in rows["p_0_0_256x256"][0].split()[1:]]).reshape(-1, 2)
    assert left_poly[:, 0].min() == pytest.approx(0.8) and left_poly[:, 0].max() == pytest.approx(1.0)
    assert abs(ring_area(left_poly)) == pytest.approx(0.2 * 0.2)


def test_pose_rows_keep_the_keypoints_of_the_tile(tmp_path):
    row = "0 0.5 0.5 0.2 0.2 0.45 0.45 2 0.55 0.55 2"  # two keypoints either side of the 256 px cut
    src = _dataset(tmp_path / "src", {"train/k": [row], "val/v": [row]}, size=(512, 512),
                   yaml_extra="kpt_shape: [2, 3]\nflip_idx: [1, 0]\n")
    slice_dataset(src, tmp_path / "out", tile_size=256, overlap=0.0, negatives=0.0, min_visibility=0.25)
    doc = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert doc["kpt_shape"] == [2, 3] and doc["flip_idx"] == [1, 0]
    values = [float(v) for v in _rows_in(tmp_path / "out", "train")["k_0_0_256x256"][0].split()]
    assert len(values) == 11 and values[5:8] == pytest.approx([0.45 * 2, 0.45 * 2, 2]) and values[8:] == [0, 0, 0]


def test_coco_out_and_back(tmp_path):
    src = _dataset(tmp_path / "src", {"train/a": ["1 0.40 0.10 0.60 0.10 0.60 0.20 0.40 0.20"], "val/b": ["0 0.5 0.5 0.2 0.2"]})
    slice_dataset(src, tmp_path / "coco", tile_size=256, format="coco", negatives=0.0)
    doc = json.loads((tmp_path / "coco" / "annotations" / "train.json").read_text())
    assert {c["id"] for c in doc["categories"]} == {1, 2, 3}
    assert doc["annotations"] and all(a["category_id"] == 2 and a["segmentation"] for a in doc["annotations"])
    report = slice_dataset(tmp_path / "coco" / "annotations" / "train.json", tmp_path / "again", tile_size=1024,
                           val_fraction=0.0)  # the written json finds its tiles in images/ beside its folder
    assert sum(c["source"] for c in report.objects["train"].values()) == len(doc["annotations"])


@pytest.mark.parametrize("rows, yaml_extra, message", [
    (["0 0.5 0.5 1.4 0.2"], "", "label outside the image"),
    (["7 0.5 0.5 0.1 0.1"], "", "class 7 is not among the dataset's names"),
    (["0 0.5 0.5 0.1"], "", "3 values after the class"),
])
def test_bad_labels_are_one_line(tmp_path, rows, yaml_extra, message):
    src = _dataset(tmp_path / "src", {"train/a": rows, "val/b": []}, yaml_extra)
    with pytest.raises(DatasetError, match=message) as err:
        slice_dataset(src, tmp_path / "out")
    assert "\n" not in str(err.value) and "a.txt line 1" in str(err.value)


def test_bad_sources_are_one_line(tmp_path, capsys):
    src = _dataset(tmp_path / "src", {"train/a": [], "val/b": []}, splits="train: images/train\nval: images\n")
    with pytest.raises(DatasetError, match="a.jpg is named in both train and val"):
        slice_dataset(src, tmp_path / "out")
    (tmp_path / "src" / "list.txt").write_text("images/train/a.jpg\nimages/train/gone.jpg\n")
    src.write_text("train: list.txt\nnames: [car]\n")
    with pytest.raises(DatasetError, match="missing image .*gone.jpg"):
        slice_dataset(src, tmp_path / "out")
    src.write_text("train: images/train\nnames: [car]\n")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert main(["slice-dataset", str(src), "--out", str(tmp_path / "full")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("the output folder is not empty (use --overwrite to replace a previous run)")
    assert len(err.splitlines()) == 1
    assert main(["slice-dataset", str(src), "--out", str(tmp_path / "full"), "--overwrite", "--tile-size", "128"]) == 0
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine" and (tmp_path / "full" / "data.yaml").is_file()
    capsys.readouterr()
    assert main(["slice-dataset", str(src), "--out", str(tmp_path / "o2"), "--min-visibility", "0"]) == 2
    assert capsys.readouterr().err.strip() == "patchwise slice-dataset: error: --min-visibility must be above 0 (an object with nothing inside is no label)"
    (tmp_path / "src" / "images" / "train" / "a.jpg").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="images/train/a.jpg: ") as err:
        slice_dataset(src, tmp_path / "o3")
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_the_sliced_dataset_loads_in_ultralytics_offline(tmp_path, monkeypatch):
    """No training: Ultralytics' val reads the written data.yaml, images and labels as they are, offline."""
    weights = ROOT / "models" / "synth-yolo11n-det.pt"
    if not weights.is_file():
        pytest.skip("the demo detector is not in models/")
    from scripts.scenes import render_scene, write_scene
    from ultralytics import YOLO

    src = tmp_path / "src"
    for split, seed in (("train", 1), ("val", 2)):
        image, objects = render_scene(640, 480, seed=seed, n_objects=25)
        write_scene(src / "images" / split / f"scene{seed}.jpg", image, objects, labels="segment")
        (src / "labels" / split).mkdir(parents=True)
        (src / "images" / split / f"scene{seed}.txt").replace(src / "labels" / split / f"scene{seed}.txt")
    (src / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [car, truck, plane]\n")
    slice_dataset(src / "data.yaml", tmp_path / "tiles", tile_size=320, task="detect")
    connects = []

    def no_network(self, address):  # any download attempt is recorded and fails
        connects.append(address)
        raise OSError("offline test")

    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setattr("socket.socket.connect", no_network)
    metrics = YOLO(str(weights)).val(data=str(tmp_path / "tiles" / "data.yaml"), imgsz=320, batch=4, plots=False,
                                     device="cpu", workers=0, verbose=False, project=str(tmp_path / "runs"))
    assert not connects
    assert metrics.box.map50 > 0.5  # the labels sit where the demo detector finds the objects


@pytest.mark.slow
def test_real_visdrone_photos_slice_at_640_with_counts_conserved(tmp_path):
    """The 70 real photos (read where they lie, linked, never copied): every labelled object is in the
    report's source count, each one is kept in some 640 px tile, and each that fits in the 160 px overlap
    lies whole in one (74 of the 4,800 are larger: near cars and buses)."""
    if not (VISDRONE / "images").is_dir():
        pytest.skip("../shared/real-visdrone/val is not here")
    from tiling.dataset.yolo_rows import read_yolo_rows

    src = tmp_path / "visdrone"
    for sub in ("images", "labels"):
        (src / sub / "val").mkdir(parents=True)
    for image in sorted((VISDRONE / "images").glob("*.jpg")):
        os.symlink(image, src / "images" / "val" / image.name)
        os.symlink(VISDRONE / "labels_yolo" / f"{image.stem}.txt", src / "labels" / "val" / f"{image.stem}.txt")
    names = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}
    (src / "data.yaml").write_text(yaml.safe_dump({"val": "images/val", "names": names}))
    spec = SliceSpec(tiles=tiling.TileSpec(tile_size=640, overlap=0.25), negatives=1.0)
    report = slice_dataset(src / "data.yaml", tmp_path / "out", spec)
    source = sum(c["source"] for c in report.objects["val"].values())
    assert report.images["val"] == 70 and source == 4800
    labelled = sum(1 for p in (tmp_path / "out" / "labels" / "val").glob("*.txt") if p.stat().st_size)
    assert labelled == report.tiles["val"]["labelled"]
    fits = 0
    for image in sorted((src / "images" / "val").glob("*.jpg")):
        w, h = tiling.imageio.image_size(image)
        objects = read_yolo_rows(src / "labels" / "val" / f"{image.stem}.txt", w, h, names)
        whole, anywhere = set(), set()
        for _, kept, _ in slice_image_objects(objects, [object_area(o) for o in objects], (h, w), spec):
            whole |= {i for i, c in kept if not c.cut}
            anywhere |= {i for i, _ in kept}
        small = {i for i, o in enumerate(objects) if max(o.xyxy[2] - o.xyxy[0], o.xyxy[3] - o.xyxy[1]) <= 160}
        assert anywhere == set(range(len(objects))) and small <= whole, image.name
        fits += len(small)
    assert fits == 4800 - 74


def test_a_raster_slices_window_by_window_with_its_geojson(tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    from tiling.dataset.slice import slice_raster

    w, h = 1500, 1100
    transform = from_origin(500_000.0, 4_000_000.0, 0.5, 0.5)  # UTM 33N, 0.5 m pixels
    pixels = np.full((3, h, w), 80, np.uint8)
    with rasterio.open(tmp_path / "ortho.tif", "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=transform, tiled=True, blockxsize=256, blockysize=256) as ds:
        ds.write(pixels)

    def ring(x0, y0, x1, y1):  # pixel box -> map coordinates, closed
        pts = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
        return [[transform.c + x * transform.a, transform.f + y * transform.e] for x, y in pts]

    features = [
        {"type": "Feature", "properties": {"class": "roof"},  # 100 x 100 px with a 40 x 40 px hole, cut at x = 512
         "geometry": {"type": "Polygon", "coordinates": [ring(450, 100, 550, 200), ring(480, 130, 520, 170)[::-1]]}},
        {"type": "Feature", "properties": {"class": "car"}, "geometry": {"type": "Polygon", "coordinates": [ring(900, 700, 920, 712)]}},
    ]
    geojson = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
               "features": features}
    (tmp_path / "objects.geojson").write_text(json.dumps(geojson))
    report = slice_raster(tmp_path / "ortho.tif", tmp_path / "objects.geojson", tmp_path / "out",
                          tile_size=512, overlap=0.25, negatives=0.0, min_visibility=0.3)
    assert report.names == {0: "car", 1: "roof"} and report.images == {"train": 1}
    rows = _rows_in(tmp_path / "out", "train")
    roof_left = np.array([float(v) for v in rows["ortho_0_0_512x512"][0].split()[1:]]).reshape(-1, 2) * 512
    assert rows["ortho_0_0_512x512"][0].startswith("1 ")
    assert abs(ring_area(roof_left)) == pytest.approx(62 * 100 - 32 * 40, abs=0.5)  # the hole's left part is out
    car = [r for k, r in rows.items() if r and r[0].startswith("0 ")]
    assert car and all(len(r[0].split()) == 9 for r in car)  # a rectangle polygon, 4 corners
    with pytest.raises(DatasetError, match="label outside the raster"):
        features[1]["geometry"]["coordinates"] = [ring(1490, 700, 1700, 712)]
        (tmp_path / "objects.geojson").write_text(json.dumps(geojson))
        slice_raster(tmp_path / "ortho.tif", tmp_path / "objects.geojson", tmp_path / "o2")


def _coco(tmp_path: Path, annotations: list[dict], images: list[str] = ("a.jpg",)) -> Path:
    (tmp_path / "images").mkdir(parents=True, exist_ok=True)
    for name in images:
        cv2.imwrite(str(tmp_path / "images" / name), np.full((200, 300, 3), 90, np.uint8))
    doc = {"images": [{"id": i + 1, "file_name": n, "width": 300, "height": 200} for i, n in enumerate(images)],
           "annotations": annotations, "categories": [{"id": 3, "name": "car"}, {"id": 8, "name": "truck"}]}
    (tmp_path / "labels.json").write_text(json.dumps(doc))
    return tmp_path / "labels.json"


@pytest.mark.parametrize("annotation, images, message", [
    ({"id": 1, "image_id": 1, "category_id": 5, "bbox": [10, 10, 20, 20]}, ("a.jpg",), "category_id 5 is not among"),
    ({"id": 1, "image_id": 1, "category_id": 3, "bbox": [290, 10, 40, 20]}, ("a.jpg",), "label outside the image"),
    ({"id": 1, "image_id": 2, "category_id": 3, "bbox": [10, 10, 20, 20]}, ("a.jpg", "a.jpg"), "a.jpg is listed twice"),
])
def test_bad_coco_sources_are_one_line(tmp_path, annotation, images, message):
    src = _coco(tmp_path / "src", [annotation], list(images))
    with pytest.raises(DatasetError, match=message) as err:
        slice_dataset(src, tmp_path / "out")
    assert "\n" not in str(err.value)


def test_a_coco_source_is_split_by_group_and_keeps_its_category_ids(tmp_path):
    names = [f"seq{g}_{i}.jpg" for g in range(4) for i in range(2)]
    anns = [{"id": k + 1, "image_id": k + 1, "category_id": 8, "bbox": [100, 50, 30, 20], "iscrowd": 0}
            for k in range(len(names))] + [{"id": 99, "image_id": 1, "category_id": 3, "bbox": [0, 0, 300, 200], "iscrowd": 1}]
    src = _coco(tmp_path / "src", anns, names)
    report = slice_dataset(src, tmp_path / "out", tile_size=128, split_by="group", val_fraction=0.25, format="coco")
    assert report.images == {"train": 6, "val": 2}  # one sequence of two frames in val, never split
    val = json.loads((tmp_path / "out" / "annotations" / "val.json").read_text())
    assert len({Path(im["file_name"]).name.split("_")[0] for im in val["images"]}) == 1
    assert {a["category_id"] for a in val["annotations"]} == {8}  # the crowd region is no label
    assert [c["id"] for c in val["categories"]] == [3, 8]


def test_a_raster_without_objects_is_one_line(tmp_path, capsys):
    assert main(["slice-dataset", str(tmp_path / "ortho.tif"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip().endswith("a raster needs --objects (a GeoJSON or COCO json of its objects)")
