"""The Streamlit page, driven headless with AppTest."""
import io

import cv2
import numpy as np
import pytest
import torch

import tiling
from conftest import DET_WEIGHTS, ROOT
from ui.views import CLASS_MAP, SCORES, STEPS, TABLE, ZOOM
from test_imageio import bomb_png
from test_models import Payload

pytestmark = pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present")
APP = str(ROOT / "app.py")


def new_app(view: str | None = None):
    """The page; ``view`` opens one of the lazy tabs (only the open tab's content runs)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=300)
    if view is not None:
        at.session_state["view"] = view
    return at


def shown(elements) -> str:
    """The text of some elements as a reader sees it (the page escapes markdown in names and messages)."""
    return " ".join(e.value for e in elements).replace("\\", "")


def png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    return buf.tobytes()


@pytest.fixture
def count_calls(monkeypatch):
    """Batches the model ran, whether through ``predict`` or the pipelined ``predict_batches``."""
    calls = {"n": 0}
    original, original_batches = tiling.UltralyticsModel.predict, tiling.UltralyticsModel.predict_batches

    def counting(self, *args, **kwargs):
        calls["n"] += 1
        return original(self, *args, **kwargs)

    def counting_batches(self, *args, **kwargs):
        for results in original_batches(self, *args, **kwargs):
            calls["n"] += 1
            yield results

    monkeypatch.setattr(tiling.UltralyticsModel, "predict", counting)
    monkeypatch.setattr(tiling.UltralyticsModel, "predict_batches", counting_batches)
    return calls


def small_scene():
    from scripts.scenes import render_scene

    image, _ = render_scene(900, 700, seed=11, n_objects=40)
    return image


@pytest.mark.slow
def test_default_page_shows_both_results_and_a_table():
    at = new_app(TABLE).run()
    assert not at.exception
    assert not at.error
    captions = [c for im in at.image for c in im.proto.imgs for c in [c.caption]]
    assert any(c.startswith("Whole image") for c in captions) and any("tiles" in c for c in captions)
    assert len(at.dataframe) >= 1 and len(at.dataframe[0].value) > 50
    full, tiled = (int(m.value) for m in at.metric[:2])
    assert tiled > 2 * max(full, 1)  # the point of the demo, on the default sample
    assert {"CSV", "JSON", "COCO JSON", "YOLO txt"} <= {d.label for d in at.get("download_button")}
    assert at.selectbox(key="image_choice").value == "lesson-2400x1600.jpg"  # the lesson sample, upright boxes


@pytest.mark.slow
def test_only_the_open_view_is_drawn_and_the_zoom_keeps_its_place():
    at = new_app().run()
    captions = lambda: [c.caption for im in at.image for c in im.proto.imgs]  # noqa: E731
    assert not at.exception and len(at.dataframe) == 0  # the table's tab is closed: it did not run
    assert any(c.startswith("Patch-based, same region") for c in captions())
    assert not any("tiles of" in c for c in captions())
    at.slider(key="zoom_x").set_value(321).run()
    at.session_state["view"] = STEPS
    at.run()
    assert any("tiles of" in c for c in captions()) and not any("same region" in c for c in captions())
    at.session_state["view"] = ZOOM
    at.run()
    assert not at.exception and at.slider(key="zoom_x").value == 321


@pytest.mark.slow
def test_confidence_slider_re_merges_without_the_model(count_calls):
    at = new_app(TABLE)
    at.run()
    before_rows = len(at.dataframe[0].value)
    calls = count_calls["n"]
    at.slider(key="conf").set_value(0.6).run()
    assert not at.exception
    assert count_calls["n"] == calls  # no model call: re-merged from the cached raw detections
    assert len(at.dataframe[0].value) < before_rows
    at.radio(key="method").set_value("nmm").run()
    at.radio(key="metric").set_value("iou").run()
    at.checkbox(key="class_agnostic").check().run()
    at.multiselect(key="class_filter").select("car").run()
    assert count_calls["n"] == calls
    assert set(at.dataframe[0].value["class"]) == {"car"}
    at.slider(key="tile_size").set_value(480).run()  # a new tile size does run the model
    assert count_calls["n"] > calls and not at.exception
    calls = count_calls["n"]
    at.checkbox(key="offset_grid").check().run()  # so does the second grid
    assert count_calls["n"] > calls and not at.exception


@pytest.mark.slow
def test_uploading_an_image_and_a_model():
    at = new_app()
    at.run()
    at.file_uploader(key="image_upload").upload("scene.png", png(small_scene()), "image/png").run()
    assert not at.exception and not at.error
    assert any("scene.png" in c.caption for im in at.image for c in im.proto.imgs)
    at.selectbox(key="model_choice").set_value("Upload my own model").run()
    at.file_uploader(key="model_upload").upload("mine.pt", DET_WEIGHTS.read_bytes(), "application/octet-stream").run()
    assert not at.exception and not at.error
    assert "detect" in " ".join(c.value for c in at.sidebar.caption)


@pytest.mark.slow
def test_several_images_choose_and_export_all():
    at = new_app(TABLE)
    at.run()
    scene = small_scene()
    up = at.file_uploader(key="image_upload")
    up.upload("a.png", png(scene), "image/png")
    up.upload("b.png", png(scene[:400, :500]), "image/png")
    at.run()
    assert at.selectbox(key="image_choice").options == ["a.png", "b.png"]
    at.selectbox(key="image_choice").set_value("b.png").run()
    at.button(key="export_all").click().run()
    assert not at.exception
    assert "Download all (zip)" in [d.label for d in at.get("download_button")]


def bad_images():
    one = png(np.zeros((1, 1, 3), np.uint8))
    good = png(small_scene())
    return [
        ("text.jpg", b"just some text, not a picture", "not an image"),
        ("cut.png", good[: len(good) // 3], "truncated|damaged"),
        ("huge.png", bomb_png(30000, 30000), "megapixels|too large"),
        ("empty.png", b"", "empty"),
    ], one


@pytest.mark.parametrize("name, data, message", bad_images()[0])
def test_bad_images_get_a_message_and_the_page_keeps_working(name, data, message):
    at = new_app(TABLE)
    at.run()
    at.file_uploader(key="image_upload").upload(name, data, "image/png").run()
    assert not at.exception
    errors = shown(at.error)
    assert name in errors
    import re

    assert re.search(message, errors)
    assert len(at.dataframe) >= 1  # the samples are still shown


def test_tiny_and_empty_images_work():
    at = new_app()
    at.run()
    at.file_uploader(key="image_upload").upload("dot.png", bad_images()[1], "image/png").run()
    assert not at.exception and not at.error
    at = new_app()
    at.run()
    at.file_uploader(key="image_upload").upload("black.png", png(np.zeros((500, 700, 3), np.uint8)), "image/png").run()
    assert not at.exception and not at.error
    assert [m.value for m in at.metric[:2]] == ["0", "0"]


@pytest.mark.slow
def test_bad_models_are_refused_with_a_message(tmp_path):
    marker = tmp_path / "pwned"
    evil = io.BytesIO()
    torch.save({"model": Payload(marker)}, evil)
    state = io.BytesIO()
    torch.save({"w": torch.zeros(1)}, state)
    for name, data, message in [
        ("evil.pt", evil.getvalue(), "refused"),
        ("weights.pt", state.getvalue(), "state_dict"),
        ("junk.pt", b"not a checkpoint", "not a PyTorch checkpoint"),
    ]:
        at = new_app(TABLE)
        at.run()
        at.selectbox(key="model_choice").set_value("Upload my own model").run()
        at.file_uploader(key="model_upload").upload(name, data, "application/octet-stream").run()
        assert not at.exception
        banner = shown(at.main.error)  # above the results, not low in the sidebar
        assert message in banner and "bundled demo detector instead" in banner
        assert "/tmp" not in banner and "patchwise-" not in banner  # no private temporary path
        assert len(at.dataframe) >= 1  # the bundled detector still shows results
    assert not marker.exists()


@pytest.mark.slow
def test_official_name_offline_is_explained():
    at = new_app()
    at.run()
    at.selectbox(key="model_choice").set_value("yolo11n.pt").run()
    assert not at.exception
    assert "downloads are off here" in shown(at.main.error)


def test_too_many_tiles_is_refused_with_the_count():
    at = new_app()
    at.run()
    at.slider(key="tile_size").set_value(128).run()
    at.slider(key="overlap").set_value(0.85).run()
    assert not at.exception
    assert "tiles" in shown(at.error) and "limit" in shown(at.error)


def test_export_bytes(tmp_path):
    """AppTest cannot read a download's bytes: check what the buttons are given, directly."""
    import contextlib
    import json
    import zipfile

    from pycocotools.coco import COCO

    from ui.resources import ImageItem
    from ui.table_view import export_zip

    image = small_scene()
    det = tiling.Detections(xyxy=np.array([[10, 10, 40, 30]], np.float32), confidence=np.array([0.9]),
                            class_id=np.array([1]), names={1: "truck"})
    item = ImageItem("x.png", "k", (image.shape[1], image.shape[0]), png(image))
    steps = []
    data = export_zip({"x.png": (item, det, det)}, progress=lambda done, total: steps.append((done, total)))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        assert {"detections.csv", "detections.json", "coco.json", "coco_results.json", "images.json", "labels/x.txt",
                "annotated/x_patches.jpg", "annotated/x_full.jpg"} <= names
        assert zf.read("labels/x.txt").decode().startswith("1 0.0")
        assert "truck" in zf.read("detections.csv").decode()
        assert json.loads(zf.read("images.json")) == [{"id": 1, "file_name": "x.png", "height": 700, "width": 900}]
        coco_path = tmp_path / "coco.json"
        coco_path.write_bytes(zf.read("coco.json"))
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(coco_path))
    assert len(coco.getAnnIds()) == 1 and coco.loadCats(2)[0]["name"] == "truck"
    assert steps == [(1, 1)]
    with zipfile.ZipFile(io.BytesIO(export_zip({"x.png": (item, det, det)}, png=True))) as zf:
        assert "annotated/x_patches.png" in zf.namelist()


@pytest.mark.skipif(not (ROOT / "models" / "synth-yolo11n-seg.pt").exists(), reason="bundled seg weights not present")
@pytest.mark.slow
def test_segmentation_model_masks_and_dense_class_map():
    at = new_app(TABLE)
    at.run()
    at.selectbox(key="model_choice").set_value("Demo segmenter (aerial)").run()
    assert not at.exception and not at.error
    assert "segment" in " ".join(c.value for c in at.sidebar.caption)
    assert "mask_area" in at.dataframe[0].value.columns
    at.session_state["view"] = CLASS_MAP
    at.run()
    at.button(key="dense_go").click().run()
    assert not at.exception
    assert any("Class map" in c.caption for im in at.image for c in im.proto.imgs)
    legend = " ".join(h.proto.body for h in at.get("html"))
    assert "car" in legend and "background:rgb(" in legend  # a legend in the pictures' colours
    assert any("pale grey: no object" in m.value for m in at.markdown)


@pytest.mark.slow
def test_runtime_switch_to_plain_pytorch():
    at = new_app()
    at.run()
    at.radio(key="runtime").set_value("Plain PyTorch").run()
    assert not at.exception and not at.error
    assert "runtime: **torch**" in " ".join(c.value for c in at.sidebar.caption)


def test_scores_on_the_default_sample_and_with_uploaded_labels():
    at = new_app(SCORES).run()
    frames = [d.value for d in at.dataframe]
    scores = next(f for f in frames if "mode" in getattr(f, "columns", []))
    overall = scores[scores["class"] == "all"].set_index("mode")
    # the lesson sample: patches find well over twice what the shrunk whole image finds (smaller tiles, more)
    assert overall.loc["patches", "recall"] > max(0.5, 2 * overall.loc["full image", "recall"])
    assert any("missed" in c.caption for im in at.image for c in im.proto.imgs)

    from scripts.scenes import render_scene, yolo_lines

    image, objects = render_scene(900, 700, seed=11, n_objects=40)
    at = new_app(SCORES)
    at.run()
    at.file_uploader(key="image_upload").upload("scene.png", png(image), "image/png")
    at.file_uploader(key="label_upload").upload("scene.txt", "\n".join(yolo_lines(objects, 900, 700)).encode(),
                                                "text/plain")
    at.run()
    assert not at.exception and not at.error
    frames = [d.value for d in at.dataframe]
    assert any("mode" in getattr(f, "columns", []) for f in frames)
    at.file_uploader(key="label_upload").upload("scene.txt", b"car 0.5 0.5", "text/plain").run()
    assert "could not be read" in shown(at.error)


def test_hostile_upload_names_become_safe_unique_names_and_zip_entries():
    import zipfile

    at = new_app(TABLE)
    at.run()
    scene = png(small_scene()[:300, :400])
    up = at.file_uploader(key="image_upload")
    # AppTest hands names to the widget directly; a NUL is taken out where real uploads are stored (below).
    for name in ("dup.png", "dup.png", "same.png", "same.jpg", "../x.png", "/etc/x.png", "a\nb\tc.png", "nul.png"):
        up.upload(name, scene, "image/png")
    at.run()
    assert not at.exception and not at.error
    options = at.selectbox(key="image_choice").options
    assert options == ["dup.png", "dup-2.png", "same.png", "same-2.jpg", "x.png", "x-2.png", "a_b_c.png", "nul.png"]
    at.button(key="export_all").click().run()
    assert not at.exception
    from ui.table_view import export_zip  # the button's bytes: the same function over the same items

    items = [__import__("ui.resources", fromlist=["x"]).ImageItem(n, str(i), (400, 300), scene)
             for i, n in enumerate(options)]
    empty = tiling.Detections.empty()
    with zipfile.ZipFile(io.BytesIO(export_zip({it.name: (it, empty, empty) for it in items}))) as zf:
        entries = zf.namelist()
    assert len(entries) == len(set(entries))
    assert len([e for e in entries if e.startswith("labels/")]) == len(options)
    assert not any(".." in e or e.startswith("/") or "\n" in e or "\t" in e for e in entries)


def test_a_session_has_a_pixel_budget_and_the_shown_image_is_not_decoded_again(monkeypatch):
    from ui import resources as res

    monkeypatch.setattr(res, "SESSION_PIXELS", 3 * 900 * 700)
    at = new_app()
    at.run()
    up = at.file_uploader(key="image_upload")
    scene = small_scene()
    for k in range(5):
        up.upload(f"s{k}.png", png(np.roll(scene, k, axis=1)), "image/png")
    at.run()
    assert not at.exception
    errors = shown(at.error)
    assert "s3.png was not opened" in errors and "s4.png was not opened" in errors and "limit per visitor" in errors
    assert at.selectbox(key="image_choice").options == ["s0.png", "s1.png", "s2.png"]
    decodes = []
    real = tiling.read_image
    monkeypatch.setattr(tiling, "read_image", lambda *a, **k: decodes.append(1) or real(*a, **k))
    at.slider(key="conf").set_value(0.5).run()
    assert not at.exception and decodes == []


def test_markdown_in_class_names_is_shown_as_text(monkeypatch):
    from ui import resources as res

    original = res.load_bundled

    def renamed(path, runtime="auto"):
        model = original(path, runtime)  # the shared cached model: renamed for this test only
        monkeypatch.setattr(model, "names", {**model.names, 0: "**bold** [link](http://x)"})
        return model

    monkeypatch.setattr(res, "load_bundled", renamed)
    at = new_app()
    at.run()
    caption = " ".join(c.value for c in at.sidebar.caption)
    assert r"\*\*bold\*\* \[link\](http" in caption


def test_a_label_file_that_matches_no_image_is_named_and_one_label_pairs_with_one_image():
    from scripts.scenes import render_scene, yolo_lines

    image, objects = render_scene(900, 700, seed=11, n_objects=40)
    lines = "\n".join(yolo_lines(objects, 900, 700)).encode()
    at = new_app(SCORES)
    at.run()
    at.file_uploader(key="image_upload").upload("scene.png", png(image), "image/png")
    at.file_uploader(key="label_upload").upload("other-name.txt", lines, "text/plain")
    at.run()
    assert not at.exception and not at.error  # one label file, one image: paired whatever the names
    assert any("mode" in getattr(d.value, "columns", []) for d in at.dataframe)
    up = at.file_uploader(key="image_upload")
    up.upload("scene.png", png(image), "image/png")
    up.upload("second.png", png(image[:300, :300]), "image/png")
    at.run()
    assert "other-name.txt matched no image" in shown(at.error)


@pytest.mark.parametrize("content", [b"/etc/passwd", b"x" * 5000, b"[]", b"[[[[" * 50000])
def test_an_uploaded_coco_file_is_content_never_a_path(content):
    at = new_app()
    at.run()
    at.file_uploader(key="label_upload").upload("gt.json", content, "application/json").run()
    assert not at.exception
    errors = shown(at.error)
    assert "gt.json" in errors and "could not be read" in errors and "root:" not in errors


def test_a_nul_in_an_upload_name_is_taken_out_where_streamlit_stores_the_file():
    import inspect

    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec
    from streamlit.web.server.starlette import starlette_routes

    from ui import upload_names

    upload_names.install()
    upload_names.install()  # twice: wrapped once
    manager = MemoryUploadedFileManager("/upload")
    manager.add_file("session", UploadedFileRec("id1", "nul\x00.png", "image/png", b"data"))
    (stored,) = manager.get_files("session", ["id1"])
    assert stored.name == "nul.png"
    assert "upload_mgr.add_file(" in inspect.getsource(starlette_routes)  # the route real uploads take


@pytest.mark.slow
def test_the_tile_size_sweep_charts_every_size_once_and_marks_the_current_one(count_calls):
    from ui.sweep_view import SWEEP

    at = new_app(SWEEP).run()
    assert not at.exception and len(at.dataframe) == 0  # nothing runs before the click
    at.button(key="sweep_go").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["tile size"]) == ["whole image", "1280 px", "960 px", "640 px", "480 px", "320 px"]
    assert "ap50" in table.columns  # the default sample has labels
    ap50 = table.set_index("tile size")["ap50"]  # the lesson sample: tiles find what the shrunk whole image cannot
    assert ap50["640 px"] > max(0.5, 2 * ap50["whole image"])
    calls = count_calls["n"]
    at.slider(key="conf").set_value(0.3).run()  # another setting: a new sweep only on request
    at.button(key="sweep_go").click().run()
    at.slider(key="conf").set_value(0.25).run()
    at.button(key="sweep_go").click().run()
    assert not at.exception and count_calls["n"] > calls
    ran = count_calls["n"]
    at.button(key="sweep_go").click().run()  # the same settings again: from the cache
    assert count_calls["n"] == ran


def test_controls_that_re_run_the_model_are_marked_and_the_others_are_not():
    from ui.sidebar import RERUNS

    at = new_app().run()
    marked = {w.key for w in [*at.slider, *at.checkbox, *at.select_slider] if RERUNS in w.label}
    assert {"tile_size", "overlap", "offset_grid", "batch_size", "iou", "imgsz", "include_full"} <= marked
    assert not marked & {"conf", "threshold", "class_agnostic", "show_grid"}
    assert any(RERUNS in c.value and "re-merge instantly" in c.value for c in at.sidebar.caption)
    assert any("s for this image)" in c.value for c in at.run().sidebar.caption)  # what the run took


def test_scores_explain_a_full_pass_that_found_nothing_and_show_dashes_not_none():
    at = new_app(SCORES).run()
    at.file_uploader(key="image_upload").upload("black.png", png(np.zeros((500, 700, 3), np.uint8)), "image/png")
    at.file_uploader(key="label_upload").upload("black.txt", b"0 0.5 0.5 0.1 0.1\n1 0.2 0.2 0.05 0.05\n", "text/plain")
    at.run()
    assert not at.exception and not at.error
    assert any("found none of the 2 labelled objects" in i.value for i in at.info)


def test_a_rerun_from_the_cache_says_so_instead_of_repeating_the_old_time():
    at = new_app().run()
    at.slider(key="conf").set_value(0.3).run()  # re-merged: the tiles' result comes from the cache
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Shown from memory") and "took" in c for c in captions), captions


@pytest.mark.skipif(not (ROOT / "models" / "synth-yolo11n-obb.pt").exists(), reason="OBB demo model not present")
@pytest.mark.slow
def test_each_demo_model_opens_on_a_sample_of_its_kind():
    """The OBB demo opens on the apron (the detector's default page opens on an upright sample: above)."""
    at = new_app()
    at.session_state["runtime"] = "Plain PyTorch"  # no 8-bit copy to make for the OBB demo
    at.session_state["model_choice"] = "Demo oriented boxes (aerial)"
    at.session_state["tile_size"], at.session_state["overlap"] = 1280, 0.0  # few tiles: this is about the list
    at.run()
    assert not at.exception and at.selectbox(key="image_choice").value == "apron-3200x2400.jpg"


# "The code for this": the recipe the page shows, as Python and as a patchwise line.
def recipe(**changes):
    from tiling.models.runtimes import Precision, Runtime
    from ui.code_view import Recipe

    base = dict(image="samples/a.jpg", model="models/synth-yolo11n-det.pt", runtime=Runtime.AUTO,
                precision=Precision.INT8, tiles=tiling.TileSpec(max_tiles=2000), infer=tiling.InferSpec(conf=0.05),
                merge=tiling.MergeSpec(), shipped_int8=True)
    return Recipe(**{**base, **changes})


def test_the_code_for_this_names_only_the_settings_that_differ_from_the_defaults():
    from tiling.models.runtimes import Precision, Runtime
    from ui.code_view import cli_args, python_code

    code = python_code(recipe())
    assert "tiling.TileSpec(max_tiles=2000)" in code and "tiling.MergeSpec()" in code
    assert "precision='int8', bundled=BundledAssets.beside('models/synth-yolo11n-det.pt')" in code
    compile(code, "snippet", "exec")
    changed = recipe(tiles=tiling.TileSpec(tile_size=320, overlap=0.2, offset_grid=True),
                     infer=tiling.InferSpec(conf=0.05, batch_size=4, include_full=False),
                     merge=tiling.MergeSpec(conf=0.4, method="nmm", metric="ios", class_agnostic=True, classes=(0, 2)),
                     runtime=Runtime.TORCH, precision=Precision.FP32, shipped_int8=False)
    args = cli_args(changed)
    assert args[:4] == ["predict", "samples/a.jpg", "--model", "models/synth-yolo11n-det.pt"]
    line = " ".join(args)
    for part in ("--tile-size 320", "--overlap 0.2", "--offset-grid", "--batch-size 4", "--no-include-full",
                 "--conf 0.4", "--method nmm", "--metric ios", "--class-agnostic", "--classes 0,2", "--runtime torch"):
        assert part in line
    assert line.count("--conf") == 1 and "--precision" not in line and "--max-tiles" not in line
    from tiling.cli import build_parser
    from tiling.cli_specs import settings

    tiles, infer, merge = settings(build_parser().parse_args(args))  # the CLI reads back the page's specs
    assert (tiles, merge) == (changed.tiles, changed.merge) and infer.batch_size == 4 and not infer.include_full
    own = python_code(recipe(image="my photo.jpg", model="mine.pt", shipped_int8=False))
    assert "calibration=['my photo.jpg']" in own and "BundledAssets" not in own


@pytest.mark.slow
def test_the_code_for_this_run_as_shown_prints_the_page_s_count():
    """The Python snippet and the CLI line the page shows for its default sample give the page's count."""
    import shlex
    import subprocess
    import sys

    at = new_app()
    at.session_state["tile_size"] = 960  # fewer tiles: this test is about the recipe, not the speed
    at.run()
    assert not at.exception
    count = int(at.metric[1].value)
    python, cli = (c.value for c in at.code[:2])
    out = subprocess.run([sys.executable, "-c", python], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == f"{count} objects"
    args = shlex.split(cli)
    assert args[0] == "patchwise" and "--tile-size" in args
    args[args.index("--out") + 1] = str(ROOT / "test-results" / "code-for-this")
    out = subprocess.run([sys.executable, "-m", "tiling", *args[1:], "--no-images"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"1 images, {count} objects" in out.stdout


@pytest.mark.slow
def test_choosing_upload_my_own_model_or_a_refused_upload_moves_no_number():
    at = new_app()
    at.run()
    before = [m.value for m in at.metric[:2]]
    assert at.radio(key="runtime").value == "Fast: 8-bit numbers"
    at.selectbox(key="model_choice").set_value("Upload my own model").run()
    assert not at.exception
    assert [m.value for m in at.metric[:2]] == before  # still the bundled model, at the same speed
    assert at.radio(key="runtime").value == "Fast: 8-bit numbers"
    at.file_uploader(key="model_upload").upload("junk.pt", b"not a checkpoint", "application/octet-stream").run()
    assert "bundled demo detector instead" in shown(at.main.error)
    assert [m.value for m in at.metric[:2]] == before and at.radio(key="runtime").value == "Fast: 8-bit numbers"


@pytest.mark.slow
def test_the_speed_caption_follows_the_speed_that_runs():
    at = new_app()
    at.run()
    assert any(c.value.startswith("Fast uses 8-bit numbers") for c in at.sidebar.caption)
    at.radio(key="runtime").set_value("Full precision").run()
    assert not at.exception and at.radio(key="runtime").value == "Full precision"
    assert not any("8-bit" in c.value for c in at.sidebar.caption)
    at.selectbox(key="model_choice").set_value("Upload my own model").run()
    assert at.radio(key="runtime").value == "Full precision"  # the visitor's own pick stays


def test_a_demo_model_on_an_uploaded_photo_says_what_it_knows_and_offers_a_coco_model():
    at = new_app()
    at.run()
    assert not any("demo model knows only" in w.value for w in at.warning)  # its own sample: no hint
    at.file_uploader(key="image_upload").upload("photo.png", png(small_scene()), "image/png").run()
    assert not at.exception
    hint = shown(at.main.warning)
    assert "The demo model knows only car, truck and plane in generated aerial scenes" in hint
    assert "PATCHWISE_WEIGHTS_DIR" in hint and "Space" in hint and "offline" in hint  # none is on this host


def test_labels_of_other_classes_are_named_and_not_scored_silently():
    image = small_scene()
    doc = ('{"images": [{"id": 1, "file_name": "scene.png", "width": 900, "height": 700}],'
           '"categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],'
           '"annotations": [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},'
           '{"image_id": 1, "category_id": 3, "bbox": [100, 100, 20, 12]}]}')
    at = new_app(SCORES)
    at.run()
    at.file_uploader(key="image_upload").upload("scene.png", png(image), "image/png")
    at.file_uploader(key="label_upload").upload("gt.json", doc.encode(), "application/json")
    at.run()
    assert not at.exception and not at.error
    text = shown(at.main.warning)
    assert "gt.json: the labels use classes person, car; the model knows car, truck, plane" in text
    assert "'car' is scored, 'person' is not" in text
    at.file_uploader(key="label_upload").upload("scene.txt", b"0 0.5 0.5 0.1 0.1\n5 0.2 0.2 0.05 0.05\n",
                                                "text/plain").run()
    assert "class numbers only" in shown(at.main.warning) and "class 5 is not in this model" in shown(at.main.warning)
    labels = at.file_uploader(key="label_upload")
    labels.upload("scene.txt", b"0 0.5 0.5 0.1 0.1\n5 0.2 0.2 0.05 0.05\n", "text/plain")
    labels.upload("data.yaml", b"names: [car, person, x, y, z, bus]\n", "text/yaml").run()
    assert "'car' is scored, 'bus' is not" in shown(at.main.warning)


def test_with_a_coco_model_on_this_host_the_hint_offers_it_and_the_samples_say_no_photo_ships(monkeypatch):
    from ui import resources as res

    available = res.official_availability
    monkeypatch.setattr(res, "official_availability",
                        lambda name: (True, "on this host") if name == "yolo11n.pt" else available(name))
    monkeypatch.setattr(res, "load_official", lambda name, choice, items=None: (  # a stand-in: the demo detector
        res.load_bundled(res.BUNDLED_MODELS["Demo detector (aerial)"], choice), None))
    at = new_app()
    at.run()
    at.file_uploader(key="image_upload").upload("photo.png", png(small_scene()), "image/png").run()
    assert "choose **yolo11n.pt** (COCO: 80 everyday classes) under 1. Model" in shown(at.main.warning)
    at.button(key="use_coco").click().run()
    assert not at.exception and at.selectbox(key="model_choice").value == "yolo11n.pt"
    assert not any("demo model knows only" in w.value for w in at.warning)  # a COCO model runs now
    at = new_app()
    at.session_state["model_choice"] = "yolo11n.pt"
    at.run()
    assert any("no real photo ships with Patchwise" in i.value for i in at.main.info)


@pytest.mark.slow
def test_auto_tile_size_says_why_it_chose():
    at = new_app()
    at.run()
    at.toggle(key="auto_tile").set_value(True).run()
    assert not at.exception
    auto = next(c.value for c in at.sidebar.caption if c.value.startswith("Auto:"))
    assert " px tiles, " in auto and "Why: " in auto and "objects in 320 px tiles" in auto  # its training size
