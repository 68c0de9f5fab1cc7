"""The teaching page in a real browser (desktop 1440x900 and a 412x915 phone): which controls re-run the
model and where the run's progress shows (in view wherever the page is scrolled), the model fallback
banner, the label-mismatch message, the tile-size sweep, the seam view (fewer boxes after merging than
before), the phone's results side by side and every tab under the pictures tappable on a phone.

One streamlit server for the module (test_e2e's fixture); each test opens its own session.
"""
from __future__ import annotations

import os
import re
import time

import cv2
import numpy as np
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
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 412, "height": 915}
REPLAY = "[role='img'][aria-label='replay icon']"  # how Streamlit draws ":material/replay:" in a label
RERUNS_MODEL = ("Tile size", "Overlap", "Batch size", "Model IoU", "Full-image size", "Also merge a full-image pass")
RE_MERGES = ("Confidence", "Merge threshold")
# Tab labels as drawn: the material icon's name, then the label ("zoom_in Zoom").
TABS = ("Zoom", "Seam", "What the model sees", "Step by step", "Detections", "Scores", "Which tile size?")


def open_page(browser, server, viewport, **options):
    context = browser.new_context(viewport=viewport, **options)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(server)
    wait_idle(page)
    page.get_by_test_id("stMain").get_by_test_id("stImage").nth(1).wait_for()
    return page


@pytest.fixture
def desktop(browser, server):
    page = open_page(browser, server, DESKTOP)
    yield page
    page.context.close()


@pytest.fixture
def phone(browser, server):
    page = open_page(browser, server, PHONE, has_touch=True, is_mobile=True)
    yield page
    page.context.close()


def top_of_pictures(page) -> float:
    """The top of the full-image and patch-based pictures in the main area."""
    return page.get_by_test_id("stMain").get_by_test_id("stImage").first.bounding_box()["y"]


def png(seed: int, size=(640, 480)) -> bytes:
    rng = np.random.default_rng(seed)
    image = np.full((size[1], size[0], 3), 110, np.uint8)
    for x, y in rng.integers(0, min(size) - 30, (25, 2)):
        cv2.rectangle(image, (int(x), int(y)), (int(x) + 24, int(y) + 14), rng.integers(0, 255, 3).tolist(), -1)
    return cv2.imencode(".png", image)[1].tobytes()


def sidebar_label(page, text: str):
    """The sidebar widget label that starts with ``text``."""
    return page.get_by_test_id("stSidebar").get_by_test_id("stWidgetLabel").filter(
        has_text=re.compile("^" + re.escape(text)))


def test_rerun_markers_and_the_progress_above_the_pictures(desktop):
    page = desktop
    for text in RERUNS_MODEL:
        label = sidebar_label(page, text)
        assert label.count() == 1, text
        assert label.locator(REPLAY).count() == 1, f"{text!r} re-runs the model but has no replay icon"
    for text in RE_MERGES:
        label = sidebar_label(page, text)
        assert label.count() == 1, text
        assert label.locator(REPLAY).count() == 0, f"{text!r} only re-merges but is marked as re-running the model"
    caption = page.get_by_test_id("stSidebar").get_by_test_id("stCaptionContainer").filter(has=page.locator(REPLAY))
    assert caption.count() == 1
    text = caption.inner_text()
    assert "re-runs the model on every tile" in text and "re-merge instantly" in text, text

    # Watch every progress bar the next run draws: its text, where it is, and where the pictures are then.
    page.evaluate("""() => {
        const seen = window.__progress = [];
        const look = () => {
            for (const bar of document.querySelectorAll("[data-testid='stProgress']")) {
                const picture = document.querySelector("[data-testid='stMain'] [data-testid='stImage']");
                seen.push({text: bar.innerText, inSidebar: !!bar.closest("[data-testid='stSidebar']"),
                           inMain: !!bar.closest("[data-testid='stMain']"), top: bar.getBoundingClientRect().top,
                           bottom: bar.getBoundingClientRect().bottom,
                           pictures: picture ? picture.getBoundingClientRect().top : null});
            }
        };
        new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true});
    }""")
    thumb = page.get_by_test_id("stSlider").filter(has_text="Tile size").get_by_role("slider")
    thumb.focus()
    page.keyboard.press("ArrowRight")  # 640 -> 672 px: new tiles, the model runs on each
    page.wait_for_function("window.__progress.length > 0", timeout=60_000)
    wait_idle(page)
    seen = page.evaluate("window.__progress")
    texts = {s["text"].strip() for s in seen}
    assert all(re.fullmatch(r"Running the model on \d+ tiles(, about \d+ s)?…|Tile \d+ of \d+, about \d+ s left", t)
               for t in texts if t), texts
    assert not any(s["inSidebar"] for s in seen), "the run's progress is drawn in the sidebar"
    assert all(s["inMain"] for s in seen), seen
    assert all(s["pictures"] is not None and s["bottom"] <= s["pictures"] for s in seen), \
        f"the progress bar is not above the pictures: {seen[:3]}"
    assert page.get_by_test_id("stProgress").count() == 0  # gone once the run is done


def main_alert(page, naming: str):
    """The first message in the main area that names ``naming``, once it is drawn."""
    alert = page.get_by_test_id("stMain").get_by_test_id("stAlert").filter(has_text=naming).first
    alert.wait_for(timeout=60_000)
    return alert


def test_an_unusable_model_upload_falls_back_with_a_banner_in_the_main_area(desktop):
    page = desktop
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Model").click()
    page.get_by_role("option").filter(has_text="Upload my own model").click()
    wait_idle(page)
    uploader_input(page, "Ultralytics model").set_input_files(
        files=[{"name": "junk.pt", "mimeType": "application/octet-stream", "buffer": b"not a checkpoint"}])
    wait_idle(page)
    banner = main_alert(page, "junk.pt")
    text = banner.inner_text()
    assert "not a PyTorch checkpoint" in text and "bundled demo detector instead" in text, text
    assert page.get_by_test_id("stMain").get_by_test_id("stImage").count() >= 2  # the demo detector's results
    assert banner.bounding_box()["y"] + banner.bounding_box()["height"] <= top_of_pictures(page)


def test_a_label_file_matching_no_image_is_named(desktop):
    page = desktop
    uploader_input(page, "Upload images").set_input_files(
        files=[{"name": name, "mimeType": "image/png", "buffer": png(i)} for i, name in
               enumerate(("first-field.png", "second-field.png"))])
    wait_idle(page)
    uploader_input(page, "Ground-truth labels").set_input_files(
        files=[{"name": "other.txt", "mimeType": "text/plain", "buffer": b"0 0.5 0.5 0.1 0.1\n"}])
    wait_idle(page)
    assert "other.txt matched no image" in main_alert(page, "other.txt").inner_text()
    pictures = page.get_by_test_id("stMain").get_by_test_id("stImage")
    assert pictures.count() >= 2
    assert "first-field.png" in pictures.first.inner_text()  # the first upload is shown, without labels


def test_the_tile_size_sweep_draws_a_chart_and_a_table(desktop):
    page = desktop
    # The smallest bundled sample (2400x1800, labelled): the sweep runs it at six tile sizes.
    page.get_by_test_id("stMain").get_by_test_id("stSelectbox").filter(has_text="Image").click()
    page.get_by_role("option").filter(has_text="depot").click()
    wait_idle(page)
    page.get_by_role("tab").filter(has_text="Which tile size?").click()
    wait_idle(page)
    page.get_by_test_id("stButton").filter(has_text="Run the sweep").click()
    wait_idle(page)
    chart = page.get_by_test_id("stMain").get_by_test_id("stVegaLiteChart")
    chart.first.wait_for(timeout=120_000)
    chart.first.locator("svg.marks, canvas").first.wait_for()
    page.wait_for_function("""() => [...document.querySelectorAll("[data-testid='stVegaLiteChart'] text")]
        .some(t => t.textContent === "640 px")""", timeout=30_000)  # the points are labelled by tile size
    table = page.get_by_test_id("stMain").get_by_test_id("stDataFrame").last
    table.wait_for()
    # The grid is a canvas; its cells are also in an accessible table inside it, filled once it has drawn.
    read = """e => [...e.querySelectorAll("[role='row']")].map(
        r => [...r.querySelectorAll("[role='gridcell'], [role='columnheader'], td, th")].map(c => c.textContent))"""
    page.wait_for_function(f"e => ({read})(e).some(r => r[0] === '640 px')", arg=table.element_handle(),
                           timeout=30_000)
    rows = table.evaluate(read)
    first_cells = [r[0] for r in rows if r]
    assert "640 px" in first_cells, rows
    assert {"whole image", "320 px", "1280 px"} <= set(first_cells), rows
    assert "ap50" in rows[0], rows[0]  # the sample has labels: AP50 is a column


def tab_at_point(page, tab) -> dict:
    """Scrolls ``tab`` into view; its centre, and what a finger there would touch."""
    tab.scroll_into_view_if_needed()
    time.sleep(0.3)
    box = tab.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    hit = tab.evaluate("""(tab, [x, y]) => {
        const el = document.elementFromPoint(x, y);
        const owner = el && el.closest("[data-testid]");
        return {inside: !!el && tab.contains(el), what: owner ? owner.dataset.testid : (el ? el.tagName : null)};
    }""", [x, y])
    return {"x": x, "y": y, **hit}


def touch_the_content_under_the_tabs(page):
    """A finger that has just read the open tab: touches its first element near the top, as a reader does.

    On a touch screen the last touch is the hover, so this shows the element's toolbar (Streamlit draws
    it above the element, towards the tab row).
    """
    panel = page.get_by_test_id("stMain").locator("[data-testid='stTabPanel'][role='tabpanel']").first
    first = panel.get_by_test_id("stElementContainer").first
    box = first.bounding_box()
    if box and box["height"] > 12:
        page.touchscreen.tap(box["x"] + box["width"] - 24, box["y"] + 8)  # the right end: where the toolbar is
        time.sleep(0.3)


def test_every_tab_under_the_pictures_can_be_tapped_on_a_phone(phone):
    page = phone
    tab_list = page.get_by_test_id("stMain").get_by_test_id("stTabs").first.get_by_role("tablist").first
    for name in [*TABS, *reversed(TABS[:-1])]:  # there and back: each tab after each other tab's content
        tab = tab_list.get_by_role("tab").filter(has_text=name)
        assert tab.count() == 1, name
        spot = tab_at_point(page, tab)
        assert spot["inside"], f"a tap on the {name!r} tab lands on {spot['what']}"
        page.touchscreen.tap(spot["x"], spot["y"])
        page.wait_for_function("(tab) => tab.getAttribute('aria-selected') === 'true'", arg=tab.element_handle(),
                               timeout=15_000)
        wait_idle(page)
        assert tab.get_attribute("aria-selected") == "true", name
        assert tab_list.locator("[role='tab'][aria-selected='true']").count() == 1
        touch_the_content_under_the_tabs(page)
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / "phone-412x915-tabs.png"))


def metric_value(page, label: str) -> int:
    """The number a metric labelled ``label`` shows in the main area."""
    metric = page.get_by_test_id("stMain").get_by_test_id("stMetric").filter(has_text=label).first
    metric.wait_for(timeout=120_000)
    return int(metric.get_by_test_id("stMetricValue").inner_text().replace(",", ""))


def test_the_seam_view_shows_fewer_boxes_after_merging_than_before(desktop):
    page = desktop
    page.get_by_role("tab").filter(has_text="Seam").click()
    wait_idle(page)
    before, after = metric_value(page, "Boxes before merging"), metric_value(page, "Boxes after merging")
    assert 0 < after < before, (before, after)
    text = page.get_by_test_id("stMain").get_by_test_id("stMarkdown").filter(has_text="where merging removed").first
    removed = int(re.search(r"removed the most boxes \((\d+)\)", text.inner_text()).group(1))
    assert removed > 0 and "duplicates removed" in page.get_by_test_id("stMetric").filter(
        has_text="Boxes after merging").first.inner_text()
    rules = page.get_by_test_id("stMain").get_by_test_id("stDataFrame").last
    rules.wait_for()
    pictures = page.get_by_test_id("stMain").locator("[data-testid='stTabPanel']:visible").get_by_test_id("stImage")
    assert pictures.count() == 2 and "coloured by tile" in pictures.first.inner_text()


def test_the_model_input_view_shows_both_inputs_at_one_scale(desktop):
    page = desktop
    page.get_by_role("tab").filter(has_text="What the model sees").click()
    wait_idle(page)
    panel = page.get_by_test_id("stMain").locator("[data-testid='stTabPanel']:visible")
    captions = panel.get_by_test_id("stImage").all_inner_texts()
    assert any(re.search(r"Full image: 640 x \d+ input", c) for c in captions), captions
    assert any(re.search(r"Tile \d+: 640 x 640 input", c) for c in captions), captions


def test_the_phone_shows_the_two_results_side_by_side(phone):
    page = phone
    pictures = page.get_by_test_id("stMain").get_by_test_id("stImage")
    full, tiled = pictures.nth(0).bounding_box(), pictures.nth(1).bounding_box()
    assert abs(full["y"] - tiled["y"]) < 4, (full, tiled)  # level, not stacked 1.5 screens apart
    assert full["x"] + full["width"] <= tiled["x"] and tiled["x"] + tiled["width"] <= PHONE["width"]
    assert full["width"] > 120 and tiled["width"] > 120
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / "phone-412x915-results.png"))


def test_the_run_progress_is_in_view_wherever_the_page_is_scrolled(desktop):
    page = desktop
    page.get_by_test_id("stMain").get_by_role("tab").filter(has_text="Scores").click()
    wait_idle(page)
    panel = page.get_by_test_id("stMain").locator("[data-testid='stTabPanel']:visible")
    panel.get_by_test_id("stDataFrame").first.wait_for()
    panel.get_by_test_id("stElementContainer").last.scroll_into_view_if_needed()
    page.evaluate("""() => {
        const seen = window.__inView = [];
        new MutationObserver(() => {
            for (const bar of document.querySelectorAll("[data-testid='stMain'] [data-testid='stProgress']")) {
                const r = bar.getBoundingClientRect();
                seen.push({top: r.top, bottom: r.bottom, height: innerHeight});
            }
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
    }""")
    assert top_of_pictures(page) < 0  # scrolled past the pictures
    thumb = page.get_by_test_id("stSlider").filter(has_text="Tile size").get_by_role("slider")
    thumb.focus()
    page.keyboard.press("ArrowLeft")  # 640 -> 608 px: new tiles, the model runs on each
    page.wait_for_function("window.__inView.length > 0", timeout=60_000)
    wait_idle(page)
    seen = [s for s in page.evaluate("window.__inView") if s["bottom"] > s["top"]]
    assert seen, "no progress bar was drawn"
    assert all(0 <= s["top"] and s["bottom"] <= s["height"] for s in seen), seen[:3]


def sidebar_is_open(page) -> bool:
    box = page.get_by_test_id("stSidebar").bounding_box()
    return box is not None and box["x"] + box["width"] > 10


def test_on_a_phone_the_sidebar_closes_after_a_change_made_in_it(phone):
    page = phone
    page.get_by_test_id("stExpandSidebarButton").click()
    page.get_by_test_id("stSidebarCollapseButton").wait_for()
    time.sleep(0.5)
    assert sidebar_is_open(page)
    grid = page.get_by_test_id("stSidebar").get_by_test_id("stCheckbox").filter(has_text="Show the tile grid")
    grid.scroll_into_view_if_needed()
    box = grid.locator("label").first.bounding_box()
    page.touchscreen.tap(box["x"] + 10, box["y"] + box["height"] / 2)
    page.wait_for_function("""() => { const s = document.querySelector("[data-testid='stSidebar']").getBoundingClientRect();
        return s.right <= 10; }""", timeout=15_000)
    wait_idle(page)
    assert not sidebar_is_open(page)
    caption = page.get_by_test_id("stMain").get_by_test_id("stImage").nth(1).inner_text()
    assert "tiles at full resolution" in caption  # the changed result is what shows


def test_on_a_phone_the_seam_before_and_after_merging_are_side_by_side(phone):
    page = phone
    tab = page.get_by_test_id("stMain").get_by_role("tab").filter(has_text="Seam")
    spot = tab_at_point(page, tab)
    page.touchscreen.tap(spot["x"], spot["y"])
    wait_idle(page)
    pictures = page.get_by_test_id("stMain").locator("[data-testid='stTabPanel']:visible").get_by_test_id("stImage")
    pictures.nth(1).wait_for()
    before, after = pictures.nth(0).bounding_box(), pictures.nth(1).bounding_box()
    assert abs(before["y"] - after["y"]) < 4, (before, after)
    assert before["x"] + before["width"] <= after["x"] and after["x"] + after["width"] <= PHONE["width"]
