"""The page as a class meets it, in a real browser at 1440x900: the hint when a demo model looks at a
photo, labels of other classes named instead of scored silently, counts that stay put when "Upload my own
model" is chosen, and "The code for this" run in a subprocess giving the page's count.

One streamlit server for the module (test_e2e's fixture); each test opens its own session.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import test_e2e
from test_e2e import CHROMIUM, DET_WEIGHTS, ROOT, uploader_input, wait_idle
from test_e2e_teaching import DESKTOP, main_alert, open_page, png, top_of_pictures

browser, server = test_e2e.browser, test_e2e.server  # its fixtures: one chromium, one server for this module

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed"),
    pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present"),
]
REAL = ROOT.parent / "shared" / "real-visdrone" / "images"  # real photos, read from there, never copied here


@pytest.fixture
def desktop(browser, server):
    page = open_page(browser, server, DESKTOP)
    yield page
    page.context.close()


def counts(page) -> list[str]:
    return page.get_by_test_id("stMain").get_by_test_id("stMetricValue").all_inner_texts()[:2]


def speed(page) -> str:
    radio = page.get_by_test_id("stSidebar").get_by_test_id("stRadio").filter(has_text="Speed")
    return radio.locator("label:has(input:checked)").inner_text().strip()


def a_photo() -> dict:
    """A real photo when the shared folder has one (a class's case), else a generated picture."""
    photos = sorted(REAL.glob("*.jpg")) if REAL.is_dir() else []
    if photos:
        return {"name": photos[0].name, "mimeType": "image/jpeg", "buffer": photos[0].read_bytes()}
    return {"name": "photo.png", "mimeType": "image/png", "buffer": png(7)}


def test_a_demo_model_on_an_uploaded_photo_says_so_above_the_results(desktop):
    page = desktop
    assert page.get_by_test_id("stMain").get_by_text("The demo model knows only").count() == 0  # its own sample
    uploader_input(page, "Upload images").set_input_files(files=[a_photo()])
    wait_idle(page)
    hint = main_alert(page, "The demo model knows only")
    text = hint.inner_text()
    assert "car, truck and plane" in text and "generated aerial scenes" in text
    assert "COCO" in text and ("PATCHWISE_WEIGHTS_DIR" in text or "under 1. Model" in text), text
    assert hint.bounding_box()["y"] + hint.bounding_box()["height"] <= top_of_pictures(page)


def test_labels_of_other_classes_are_named_with_what_to_do(desktop):
    page = desktop
    uploader_input(page, "Upload images").set_input_files(
        files=[{"name": "street.png", "mimeType": "image/png", "buffer": png(3)}])
    wait_idle(page)
    doc = {"images": [{"id": 1, "file_name": "street.png", "width": 640, "height": 480}],
           "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
           "annotations": [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 40]},
                           {"image_id": 1, "category_id": 3, "bbox": [100, 100, 24, 14]}]}
    uploader_input(page, "Ground-truth labels").set_input_files(
        files=[{"name": "street.json", "mimeType": "application/json", "buffer": json.dumps(doc).encode()}])
    wait_idle(page)
    text = main_alert(page, "street.json").inner_text()
    assert "the labels use classes person, car; the model knows car, truck, plane" in text, text
    assert "'car' is scored, 'person' is not" in text and "Choose a model that knows person" in text


def test_choosing_upload_my_own_model_keeps_the_counts_and_the_speed(desktop):
    page = desktop
    before, fast = counts(page), speed(page)
    assert fast.startswith("Fast")
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Model").click()
    page.get_by_role("option").filter(has_text="Upload my own model").click()
    wait_idle(page)
    page.get_by_test_id("stSidebar").get_by_text("the bundled detector is used meanwhile").wait_for()
    assert counts(page) == before and speed(page) == fast
    captions = page.get_by_test_id("stSidebar").get_by_test_id("stCaptionContainer").all_inner_texts()
    assert any(c.startswith("Fast uses 8-bit numbers") for c in captions)  # true: the 8-bit copy runs


def test_the_code_for_this_run_in_a_subprocess_gives_the_page_s_count(desktop, tmp_path: Path):
    page = desktop
    count = int(counts(page)[1])
    page.get_by_test_id("stExpander").filter(has_text="The code for this").locator("summary").click()
    blocks = page.get_by_test_id("stCode")
    blocks.nth(1).wait_for()
    python, cli = (blocks.nth(i).locator("code").inner_text() for i in range(2))
    assert "tiling.predict_tiled" in python and cli.startswith("patchwise predict samples/")
    out = subprocess.run([sys.executable, "-c", python], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == f"{count} objects"
    assert f"{count} objects" in page.get_by_test_id("stExpander").filter(has_text="The code for this").inner_text()
