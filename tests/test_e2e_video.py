"""The page's Video mode in a real browser: the bundled clip, full-frame and tiled tracks as two videos the
browser decodes, their unique-object counts, the ground truth's scores, and a slider that re-tracks
without running the model again.

One streamlit server for the module (test_e2e's fixture); each test opens its own session.
"""
from __future__ import annotations

import os

import pytest
import test_e2e
from test_e2e import CHROMIUM, DET_WEIGHTS, OUT, uploader_input, wait_idle

browser, server = test_e2e.browser, test_e2e.server  # its fixtures: one chromium, one server for this module

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed"),
    pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present"),
]


@pytest.fixture
def video_page(browser, server):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(300_000)
    page.goto(server)
    wait_idle(page)
    page.get_by_test_id("stSidebar").get_by_text("Video", exact=True).click()
    wait_idle(page, timeout=600_000)
    page.get_by_test_id("stMain").locator("video").nth(1).wait_for()
    yield page
    context.close()


def counts(page) -> list[int]:
    return [int(v) for v in page.get_by_test_id("stMain").get_by_test_id("stMetricValue").all_inner_texts()]


def test_the_bundled_clip_shows_two_playable_videos_and_the_counts(video_page):
    page = video_page
    main = page.get_by_test_id("stMain")
    assert main.locator("video").count() == 2
    for k in range(2):  # the browser decodes each: an H.264 stream it plays, at the clip's size
        main.locator("video").nth(k).evaluate(
            "v => v.readyState >= 1 || new Promise(r => v.addEventListener('loadedmetadata', r, {once: true}))")
        assert main.locator("video").nth(k).evaluate("v => [v.videoWidth, v.videoHeight]") == [1920, 1080]
    full, tiled = counts(page)
    assert tiled >= 40  # the clip holds 54 objects, about 50 at a time
    assert main.get_by_text("Ground truth: 54 objects").count() == 1
    scores = main.get_by_text("MOTA").all_inner_texts()
    assert len(scores) >= 2
    mota = [float(text.split("MOTA")[1].split()[0]) for text in scores[-2:]]
    assert mota[1] > mota[0] + 0.3  # tiles track what the full frame misses
    assert main.get_by_test_id("stVegaLiteChart").count() + main.locator("canvas").count() >= 1  # objects per frame
    page.screenshot(path=str(OUT / "video-mode.png"), full_page=True)


def test_the_confidence_slider_retracks_without_the_model(video_page):
    page = video_page
    before = counts(page)
    thumb = page.get_by_test_id("stSidebar").get_by_test_id("stSlider").filter(has_text="Confidence").get_by_role(
        "slider")
    thumb.focus()
    for _ in range(40):
        page.keyboard.press("ArrowRight")  # 0.25 -> 0.65
    wait_idle(page)
    main = page.get_by_test_id("stMain")
    main.locator("video").nth(1).wait_for()
    after = counts(page)
    assert after != before and after[1] < before[1]
    # re-merged and re-tracked from the kept raw detections, on both sides
    assert main.get_by_text("from the cache (no model call)").count() == 2


def test_an_uploaded_clip_is_tracked_and_a_broken_one_is_one_message(video_page, tmp_path):
    from scripts.make_clip import write_clip

    page = video_page
    main = page.get_by_test_id("stMain")
    broken = tmp_path / "holiday.mp4"
    broken.write_text("this is not a video")
    uploader_input(page, "Your own clip").set_input_files(str(broken))
    wait_idle(page)
    error = main.get_by_test_id("stAlert").filter(has_text="holiday.mp4")
    error.wait_for()
    assert "not a video" in error.inner_text() and "patchwise-clip-" not in error.inner_text()
    assert main.locator("video").count() == 0
    write_clip(tmp_path / "mine.mp4", seed=5, width=480, height=288, seconds=0.5, fps=10, pan=1)
    uploader_input(page, "Your own clip").set_input_files(str(tmp_path / "mine.mp4"))
    wait_idle(page)
    main.locator("video").nth(1).wait_for()
    assert main.get_by_text("mine.mp4: 480x288, 5 frames").count() == 1
    assert main.get_by_text("Ground truth").count() == 0  # an upload has none
