"""Rasters read window by window: same answer as the whole image, map coordinates, bands, nodata, bad files."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")  # every test here writes or reads a raster (patchwise[geo])
from rasterio.transform import from_origin  # noqa: E402

import tiling
from conftest import DET_WEIGHTS, ROOT, SquareFinder, square_scene
from tiling.bands import BandSpec
from tiling.geojson import GeoJSONWriter, feature_collection
from tiling.raster import RasterSource, should_stream
from tiling.raster_open import RasterError
from tiling.streaming import predict_raster
from tiling.tiff_header import raster_size

ORIGIN, RES = (500_000.0, 4_000_000.0), 0.5  # UTM 33N metres, half a metre per pixel
UTM = "EPSG:32633"


def write_tif(path, bands: np.ndarray, crs=UTM, transform=None, **profile) -> str:
    """A tiled, compressed GeoTIFF of (B, H, W) ``bands``."""
    b, h, w = bands.shape
    if transform is None and crs is not None:
        transform = from_origin(*ORIGIN, RES, RES)
    kw = dict(driver="GTiff", width=w, height=h, count=b, dtype=bands.dtype, tiled=True, blockxsize=128,
              blockysize=128, compress="deflate", crs=crs, transform=transform)
    kw.update(profile)
    with rasterio.open(path, "w", **kw) as ds:
        ds.write(bands)
    return str(path)


def rgb_bands(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(bgr[..., ::-1], 2, 0))


def model_of(finder):
    return tiling.CallableModel(finder, finder.names, finder.task)


def canonical(det: tiling.Detections) -> tiling.Detections:
    order = np.lexsort((det.class_id, det.confidence, *det.xyxy.T[::-1]))
    return det[order]


class Recorder:
    """A model that finds nothing and keeps every tile it was shown."""

    names = {0: "thing"}

    def __init__(self):
        self.tiles = []

    def __call__(self, images):
        self.tiles.extend(im.copy() for im in images)
        return [tiling.Detections.empty(self.names) for _ in images]


@pytest.mark.parametrize("masks,method,edge,offset", [(False, "nms", "trim", False), (True, "nmm", "shift", False),
                                                      (True, "nms", "trim", True)])
def test_streamed_raster_equals_predict_tiled_on_the_whole_image(tmp_path, masks, method, edge, offset):
    image, _ = square_scene(1400, 1100, n=120, seed=5)
    path = write_tif(tmp_path / "scene.tif", rgb_bands(image))
    settings = dict(tile_size=200, overlap=0.2, edge=edge, offset_grid=offset, batch_size=2, method=method, conf=0.3)
    whole = tiling.predict_tiled(image, model_of(SquareFinder(masks=masks)), **settings).detections
    finder = SquareFinder(masks=masks)
    streamed = predict_raster(path, model_of(finder), **settings)
    a, b = canonical(whole), canonical(streamed.detections)
    assert len(a) == len(b) > 100
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    np.testing.assert_array_equal(a.confidence, b.confidence)
    np.testing.assert_array_equal(a.class_id, b.class_id)
    if masks:
        np.testing.assert_array_equal(a.mask_boxes, b.mask_boxes)
        assert all(np.array_equal(m, n) for m, n in zip(a.masks, b.masks))
    assert finder.images_seen == streamed.tiles == len(tiling.plan_tiles((1100, 1400), tile_size=200, overlap=0.2,
                                                                         offset_grid=offset))
    assert np.all(np.diff(streamed.detections.confidence) <= 0)  # sorted by confidence, as predict_tiled's


def squares_at_map_points(points, size_m=10.0, shape=(600, 800)):
    """A black raster with a blue square (size_m wide) centred on each map point; its expected map boxes."""
    h, w = shape
    image = np.zeros((h, w, 3), np.uint8)
    boxes = []
    for x, y in points:
        col0, row0 = round((x - size_m / 2 - ORIGIN[0]) / RES), round((ORIGIN[1] - (y + size_m / 2)) / RES)
        n = round(size_m / RES)
        image[row0 : row0 + n, col0 : col0 + n, 0] = 255
        boxes.append((ORIGIN[0] + col0 * RES, ORIGIN[1] - (row0 + n) * RES, ORIGIN[0] + (col0 + n) * RES,
                      ORIGIN[1] - row0 * RES))
    return image, np.array(boxes)


def polygon_bounds(feature) -> np.ndarray:
    ring = np.array(feature["geometry"]["coordinates"][0])
    return np.r_[ring.min(axis=0), ring.max(axis=0)]


def test_objects_at_known_map_coordinates_come_back_there(tmp_path):
    points = [(500_060.0, 3_999_900.0), (500_250.5, 3_999_780.0), (500_331.0, 3_999_730.25)]
    image, expected = squares_at_map_points(points)
    path = write_tif(tmp_path / "map.tif", rgb_bands(image))
    pred = predict_raster(path, model_of(SquareFinder()), tile_size=256, overlap=0.25)
    fc = feature_collection(pred.detections, pred.georef)
    assert fc["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32633" and "note" not in fc
    got = np.array(sorted(polygon_bounds(f).tolist() for f in fc["features"]))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected[np.argsort(expected[:, 0])], atol=RES / 2)
    assert {f["properties"]["class"] for f in fc["features"]} == {"blue"}
    assert all(f["properties"]["confidence"] == pytest.approx(0.8) for f in fc["features"])
    # EPSG:4326: the same places, in longitude/latitude (checked back in metres)
    wgs = feature_collection(pred.detections, pred.georef, to_wgs84=True)
    assert "crs" not in wgs
    from rasterio.warp import transform as warp

    for feature in wgs["features"]:
        lon, lat = np.array(feature["geometry"]["coordinates"][0]).T
        xs, ys = warp("EPSG:4326", UTM, lon.tolist(), lat.tolist())
        box = np.r_[min(xs), min(ys), max(xs), max(ys)]
        assert np.abs(expected - box).max(axis=1).min() < RES / 2
        assert -90 < lat.min() and lat.max() < 90


def test_mask_polygons_cover_the_mask_pixels_exactly(tmp_path):
    image, _ = squares_at_map_points([(500_100.0, 3_999_850.0)], size_m=8.0)
    image[380:384, 380:390, 1] = 255  # and a green bar
    path = write_tif(tmp_path / "seg.tif", rgb_bands(image))
    pred = predict_raster(path, model_of(SquareFinder(masks=True)), tile_size=256)
    fc = feature_collection(pred.detections, pred.georef)
    for feature, mask in zip(fc["features"], pred.detections.masks):
        ring = np.array(feature["geometry"]["coordinates"][0])
        x, y = ring[:, 0], ring[:, 1]
        area = 0.5 * np.sum(x[:-1] * y[1:] - x[1:] * y[:-1])
        assert area == pytest.approx(mask.sum() * RES * RES)  # positive: counter-clockwise outer ring


def test_without_georeferencing_results_are_pixels_with_a_note(tmp_path):
    image, _ = square_scene(500, 400, n=8, seed=2)
    path = write_tif(tmp_path / "plain.tif", rgb_bands(image), crs=None)
    pred = predict_raster(path, model_of(SquareFinder()), tile_size=256)
    fc = feature_collection(pred.detections, pred.georef)
    assert "no georeferencing" in fc["note"] and "crs" not in fc
    np.testing.assert_allclose(sorted(polygon_bounds(f).tolist() for f in fc["features"]),
                               sorted(pred.detections.xyxy.tolist()))
    with pytest.raises(RasterError, match="no georeferencing"):
        feature_collection(pred.detections, pred.georef, to_wgs84=True)


def test_a_transform_without_a_crs_is_kept_in_map_units_and_refused_for_wgs84(tmp_path):
    image, _ = square_scene(300, 300, n=3, seed=1)
    path = write_tif(tmp_path / "nocrs.tif", rgb_bands(image), crs=None, transform=from_origin(*ORIGIN, RES, RES))
    with RasterSource(path) as src:
        assert "no known coordinate reference system" in src.georef.note
        with pytest.raises(RasterError, match="coordinate reference system is unknown"):
            src.georef.check_wgs84(src.label)


def test_all_nodata_tiles_are_not_run_and_boxes_on_nodata_are_dropped(tmp_path):
    image, _ = square_scene(1000, 600, n=20, seed=4)
    bands = np.maximum(rgb_bands(image), 40)  # a grey ground: black is the nodata value
    bands[:, :, 560:] = 0  # the right part is nodata
    path = write_tif(tmp_path / "nodata.tif", bands, nodata=0)

    class CornerBox:
        """A box at each tile's top-right corner: on nodata in tiles that reach into it."""

        names, task, calls = {0: "x"}, "detect", 0

        def __call__(self, images):
            self.images = getattr(self, "images", 0) + len(images)
            return [tiling.Detections(xyxy=[[im.shape[1] - 30, 0, im.shape[1], 30]], confidence=[0.9], names=self.names)
                    for im in images]

    model = CornerBox()
    tiles = tiling.plan_tiles((600, 1000), tile_size=256, overlap=0.25)
    run = [t for t in tiles if t.x0 < 560]
    pred = predict_raster(path, tiling.CallableModel(model, model.names), tile_size=256, overlap=0.25)
    assert model.images == len(run) < len(tiles)
    assert pred.tiles_skipped == len(tiles) - len(run)
    reaching = [t for t in run if t.x1 > 560 + 15]  # the corner box lies mostly on nodata there
    assert pred.boxes_in_nodata == len(reaching) > 0
    assert (pred.detections.xyxy[:, 2] <= 560 + 15).all()


def test_band_rules_grey_rgb_four_bands_and_16_bit(tmp_path):
    h, w = 64, 96
    rgb = np.stack([np.full((h, w), v, np.uint8) for v in (200, 100, 50)])
    cases = {
        "grey": (rgb[:1], BandSpec(), (200, 200, 200)),
        "rgb": (rgb, BandSpec(), (50, 100, 200)),  # R, G, B bands become B, G, R channels
        "rgbn": (np.concatenate([rgb, np.full((1, h, w), 7, np.uint8)]), BandSpec(), (50, 100, 200)),
        "false colour": (np.concatenate([rgb, np.full((1, h, w), 7, np.uint8)]), BandSpec(bands=(4, 1, 2)),
                         (100, 200, 7)),
    }
    for name, (bands, spec, bgr) in cases.items():
        path = write_tif(tmp_path / f"{name}.tif", bands)
        rec = Recorder()
        predict_raster(path, tiling.CallableModel(rec, rec.names), tile_size=128, bands=spec)
        assert rec.tiles and all((t.reshape(-1, 3) == bgr).all() for t in rec.tiles), name
    # 16-bit: a ramp from 1000 to 5000 is stretched from its 2nd to its 98th percentile onto 0-255
    ramp = np.tile(np.linspace(1000, 5000, w).astype(np.uint16), (h, 1))
    path = write_tif(tmp_path / "deep.tif", np.stack([ramp] * 3))
    rec = Recorder()
    with RasterSource(path) as src:
        assert "percentile stretch" in src.bands_note
        lo, hi = np.percentile(ramp, [2, 98])
        np.testing.assert_allclose(src.ranges, [[lo, hi]] * 3, rtol=0.02)
    predict_raster(path, tiling.CallableModel(rec, rec.names), tile_size=128)
    tile = rec.tiles[0][..., 0].astype(int)
    assert tile[:, 0].max() == 0 and tile[:, -1].min() == 255 and (np.diff(tile[0]) >= 0).all()
    rec = Recorder()
    predict_raster(path, tiling.CallableModel(rec, rec.names), tile_size=128, bands=BandSpec(stretch="none"))
    assert (rec.tiles[0] == 255).all()  # values above 255, clipped


def test_band_spec_is_validated():
    for bad, match in [(dict(bands=(1, 2)), "one band"), (dict(bands=(0,)), "band number"),
                       (dict(bands="123"), "band numbers"), (dict(stretch="log"), "stretch"),
                       (dict(percentiles=(98, 2)), "below")]:
        with pytest.raises(ValueError, match=match):
            BandSpec(**bad)


def test_bad_rasters_get_one_clear_line(tmp_path):
    good = write_tif(tmp_path / "good.tif", np.zeros((3, 300, 300), np.uint8) + 9)
    data = open(good, "rb").read()
    (tmp_path / "truncated.tif").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    (tmp_path / "notes.txt").write_text("not a raster")
    (tmp_path / "folder.tif").mkdir()
    from scipy.io import netcdf_file

    container = netcdf_file(tmp_path / "container.nc", "w")  # 0 bands of its own, two subdatasets
    container.createDimension("y", 4)
    container.createDimension("x", 5)
    for name in ("red", "nir"):
        container.createVariable(name, "f4", ("y", "x"))[:] = np.ones((4, 5))
    container.close()
    write_tif(tmp_path / "twenty.tif", np.zeros((20, 16, 16), np.uint8))
    cases = {"truncated.tif": "truncated or damaged", "noise.tif": "not a raster GDAL can read",
             "notes.txt": "not a raster GDAL can read", "folder.tif": "is a folder",
             "container.nc": "has no bands: it holds 2 subdatasets",
             "twenty.tif": "has 20 bands; choose one", "missing.tif": "no such file", "missing.vrt": "no such file"}
    for name, match in cases.items():
        with pytest.raises(RasterError, match=match) as info:
            RasterSource(tmp_path / name)
        assert "\n" not in str(info.value), name
    with pytest.raises(RasterError, match="band 5 does not exist"):
        RasterSource(good, BandSpec(bands=(5, 1, 2)))
    with RasterSource(tmp_path / "twenty.tif", BandSpec(bands=(20, 10, 1))) as src:  # chosen: usable
        assert src.read(tiling.Tile(0, 0, 16, 16))[0].shape == (16, 16, 3)


def test_which_files_stream_and_the_upload_size_of_a_tiff(tmp_path):
    image, _ = square_scene(200, 150, n=2, seed=0)
    geo = write_tif(tmp_path / "geo.tif", rgb_bands(image))
    plain = write_tif(tmp_path / "plain.tif", rgb_bands(image), crs=None)
    import cv2

    cv2.imwrite(str(tmp_path / "photo.png"), image)
    assert should_stream(geo) and not should_stream(plain) and not should_stream(tmp_path / "photo.png")
    assert should_stream(plain, max_pixels=100)  # too large to decode whole
    deep = write_tif(tmp_path / "deep.tif", np.zeros((4, 50, 70), np.uint16), crs=None)
    assert raster_size(open(deep, "rb").read()) == (70, 50)  # Pillow cannot open this one
    assert raster_size(b"\x89PNG....") is None and raster_size(b"II*\x00broken") is None


def vrt_of(source: str, size: int) -> str:
    """A VRT whose one band is band 1 of ``source``, a file anywhere or a URL."""
    return (f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><VRTRasterBand dataType="Byte" band="1">'
            f'<SimpleSource><SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>1</SourceBand>'
            "</SimpleSource></VRTRasterBand></VRTDataset>")


def test_a_vrt_naming_another_file_is_refused_and_read_only_when_allowed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    secret = write_tif(elsewhere / "secret.tif", np.full((1, 32, 32), 77, np.uint8), crs=None)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "pointer.vrt").write_text(vrt_of(secret, 32))
    (inputs / "disguised.tif").write_text(vrt_of(secret, 32))  # a VRT under a GeoTIFF's name
    for name, match in (("pointer.vrt", "pointer.vrt is a VRT"), ("disguised.tif", "disguised.tif is a VRT")):
        assert should_stream(inputs / name)  # it takes the raster path, whose opener says why it refuses
        with pytest.raises(RasterError, match=match) as info:
            RasterSource(inputs / name)
        assert "--allow-vrt" in str(info.value) and "\n" not in str(info.value)
        with RasterSource(inputs / name, allow_vrt=True) as src:
            image, valid = src.read(tiling.Tile(0, 0, 32, 32))
        assert (image == 77).all() and valid is None
    (inputs / "wms.tif").write_text("<GDAL_WMS><Service name='TMS'/></GDAL_WMS>")  # another description
    with pytest.raises(RasterError, match="XML or JSON"):
        RasterSource(inputs / "wms.tif")


def test_the_driver_gdal_chose_is_checked_after_opening(tmp_path, monkeypatch):
    secret = write_tif(tmp_path / "secret.tif", np.full((1, 16, 16), 5, np.uint8), crs=None)
    (tmp_path / "pointer.vrt").write_text(vrt_of(secret, 16))
    monkeypatch.setattr("tiling.raster_open.pointer_reason", lambda path: None)  # past the name and byte checks
    with pytest.raises(RasterError, match="GDAL's VRT driver"):
        RasterSource(tmp_path / "pointer.vrt")


def test_gdal_virtual_paths_are_refused_before_gdal_sees_them(tmp_path, monkeypatch):
    import http.server
    import threading
    import zipfile

    requests = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (the standard library's name)
            requests.append(self.path)
            self.send_error(404)

        do_HEAD = do_GET  # noqa: N815

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/scene.tif"
    (tmp_path / "remote.vrt").write_text(vrt_of(f"/vsicurl/{url}", 16))
    opened = []
    real_open = rasterio.open
    monkeypatch.setattr(rasterio, "open", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    try:
        for path, match in ((f"/vsicurl/{url}", "GDAL virtual path"), (tmp_path / "remote.vrt", "is a VRT"),
                            (f"/vsizip/{tmp_path}/a.zip/a.tif", "GDAL virtual path"), ("vrt://" + url, "virtual")):
            with pytest.raises(RasterError, match=match):
                RasterSource(path)
        assert should_stream(tmp_path / "remote.vrt")  # listing a folder opens nothing either
    finally:
        server.shutdown()
    assert requests == [] and opened == []
    write_tif(tmp_path / "a.tif", np.full((1, 16, 16), 9, np.uint8), crs=None)
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        archive.write(tmp_path / "a.tif", "a.tif")
    with RasterSource(f"/vsizip/{tmp_path}/a.zip/a.tif", allow_vrt=True) as src:  # allowed: read as written
        assert src.shape == (16, 16) and (src.read(tiling.Tile(0, 0, 16, 16))[0] == 9).all()


def test_geojson_writer_leaves_nothing_behind_when_a_run_fails(tmp_path):
    image, _ = square_scene(300, 300, n=4, seed=3)
    path = write_tif(tmp_path / "a.tif", rgb_bands(image))
    out = tmp_path / "a.geojson"
    out.write_text("earlier result")
    with RasterSource(path) as src, pytest.raises(RuntimeError):
        with GeoJSONWriter(out, src.georef) as writer:
            writer.write(predict_raster(src, model_of(SquareFinder()), tile_size=256).detections)
            raise RuntimeError("stopped")
    assert out.read_text() == "earlier result" and list(tmp_path.glob("*.part")) == []


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tiling", "predict", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_cli_refuses_bad_rasters_in_one_line_before_the_model_loads(tmp_path):
    write_tif(tmp_path / "twenty.tif", np.zeros((20, 16, 16), np.uint8))
    write_tif(tmp_path / "nocrs.tif", np.zeros((3, 16, 16), np.uint8), crs=None, transform=from_origin(0, 16, 1, 1))
    (tmp_path / "scan.jp2").write_text("not a raster")
    (tmp_path / "pointer.vrt").write_text(vrt_of(str(tmp_path / "nocrs.tif"), 16))
    for args, match in [(["twenty.tif"], "has 20 bands"), (["nocrs.tif", "--wgs84"], "unknown"),
                        (["scan.jp2"], "not a raster GDAL can read"), (["nocrs.tif", "--bands", "1,2"], "--bands"),
                        (["pointer.vrt"], "refused unless allow_vrt=True (--allow-vrt)")]:
        out = run_cli(tmp_path / args[0], *args[1:], "--model", DET_WEIGHTS, "--out", tmp_path / "o")
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and match in lines[0], out.stderr
        assert "loading" not in out.stderr


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
@pytest.mark.slow
def test_cli_streams_a_geotiff_and_writes_geojson_beside_the_usual_outputs(tmp_path, det_model):
    image = tiling.read_image(ROOT / "samples" / "depot-2400x1800.jpg")[:700, :1000]
    path = write_tif(tmp_path / "ortho.tif", rgb_bands(image), blockxsize=256, blockysize=256)
    out = run_cli(path, "--model", DET_WEIGHTS, "--out", tmp_path / "o", "--wgs84")
    assert out.returncode == 0, out.stderr
    assert "tile/s" in out.stderr and "EPSG:32633" in out.stderr  # the tiles bar and the CRS
    fc = json.loads((tmp_path / "o" / "geojson" / "ortho.geojson").read_text())
    expected = tiling.predict_tiled(image, det_model).detections
    assert len(fc["features"]) == len(expected) > 20
    lon, lat = np.array(fc["features"][0]["geometry"]["coordinates"][0]).T
    assert 14.9 < lon.min() < 15.1 and 36 < lat.min() < 36.2  # UTM 33N near its central meridian
    rows = (tmp_path / "o" / "detections.csv").read_text().splitlines()
    assert len(rows) == len(expected) + 1
    assert (tmp_path / "o" / "annotated" / "ortho.jpg").stat().st_size > 5_000


@pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
@pytest.mark.slow
def test_a_raster_rerun_keeps_its_files_for_the_same_settings_and_redoes_them_for_others(tmp_path, capsys):
    from tiling.cli import main

    image = tiling.read_image(ROOT / "samples" / "depot-2400x1800.jpg")[:400, :600]
    path = write_tif(tmp_path / "ortho.tif", rgb_bands(image))
    common = [path, "--model", DET_WEIGHTS, "--out", tmp_path / "o", "--no-images"]
    record = tmp_path / "o" / "json" / "ortho.json"
    summaries = []
    for size in (320, 320, 256):
        assert main(["predict", *map(str, common), "--tile-size", str(size)]) == 0
        summaries.append(capsys.readouterr().out)
        assert json.loads(record.read_text())["run"]  # the run's key, as the Ray engine writes it
    assert "done before" not in summaries[0] and "(1 done before)" in summaries[1]
    assert "done before" not in summaries[2]  # other tiles: the raster is done again


def test_the_page_refuses_a_tiff_too_large_or_only_gdal_reads_naming_the_cli(tmp_path):
    import cv2

    from ui.uploads import gather_uploads

    class Upload:
        def __init__(self, name: str, data: bytes):
            self.name, self.data, self.file_id, self.size = name, data, name, len(data)

        def getvalue(self) -> bytes:
            return self.data

    big = tmp_path / "big.tif"
    with rasterio.open(big, "w", driver="GTiff", width=12_000, height=10_000, count=3, dtype="uint8", tiled=True,
                       compress="deflate", crs=UTM, transform=from_origin(*ORIGIN, RES, RES)):
        pass  # blocks never written: a small file declaring 120 MP
    deep = write_tif(tmp_path / "deep.tif", np.zeros((4, 40, 50), np.uint16), crs=None)  # Pillow cannot open it
    ok, small = cv2.imencode(".tif", np.full((300, 400, 3), 70, np.uint8))
    uploads = [Upload("big.tif", open(big, "rb").read()), Upload("deep.tif", open(deep, "rb").read()),
               Upload("small.tif", small.tobytes())]
    gathered = gather_uploads(uploads)
    assert [item.name for item in gathered.items] == ["small.tif"]  # an ordinary TIFF still opens
    assert gathered.items[0].image.shape == (300, 400, 3)
    too_big, gdal_only = gathered.problems
    assert too_big.startswith("big.tif is 12000x10000") and "python -m tiling predict" in too_big
    assert gdal_only.startswith("deep.tif is a 50x40 raster") and "python -m tiling predict deep.tif" in gdal_only


def test_allow_vrt_reaches_the_streamed_run_and_the_ray_reader_stage(tmp_path):
    """predict_raster and the Ray engine's reader stage (cut, called here without Ray) refuse a VRT unless
    allowed, and read it when allowed."""
    import pickle

    from tiling.distributed.cut import cut
    from tiling.distributed.items import Reading
    from tiling.inputs import entries

    secret = write_tif(tmp_path / "secret.tif", np.full((1, 64, 64), 90, np.uint8), crs=None)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "pointer.vrt").write_text(vrt_of(secret, 64))
    model = tiling.CallableModel(lambda ims: [tiling.Detections.empty() for _ in ims])
    with pytest.raises(RasterError, match="pointer.vrt is a VRT"):
        tiling.predict_raster(tmp_path / "in" / "pointer.vrt", model, tile_size=32)
    assert tiling.predict_raster(tmp_path / "in" / "pointer.vrt", model, tile_size=32, allow_vrt=True).tiles == 9
    entry = entries(tmp_path / "in", [tmp_path / "in" / "pointer.vrt"])[0]
    row = {"item": pickle.dumps(entry)}
    specs = dict(tiles=tiling.TileSpec(tile_size=32), infer=tiling.InferSpec(), piece_tiles=4)
    refused = [pickle.loads(r["item"]) for r in cut(row, reading=Reading(), **specs)]
    assert len(refused) == 1 and "pointer.vrt is a VRT" in refused[0].error
    bands = [pickle.loads(r["item"]) for r in cut(row, reading=Reading(allow_vrt=True), **specs)]
    assert len(bands) > 1 and all(b.raster and not b.error and (b.image == 90).all() for b in bands)
