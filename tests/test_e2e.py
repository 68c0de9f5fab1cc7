"""The app in a real browser: Debian's chromium driven by Playwright, against `streamlit run`."""
from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import cv2
import pytest

from conftest import DET_WEIGHTS, ROOT

CHROMIUM = os.environ.get("PATCHWISE_CHROMIUM", "/usr/bin/chromium")
OUT = ROOT / "test-results" / "e2e"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
    pytest.mark.skipif(not DET_WEIGHTS.exists(), reason="bundled detection weights not present"),
]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    env = dict(os.environ, YOLO_OFFLINE="1", PYTHONUNBUFFERED="1")
    OUT.mkdir(parents=True, exist_ok=True)
    log = open(OUT.parent / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "serve.py", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--global.developmentMode", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early; see {OUT.parent / 'streamlit.log'}")
    else:
        proc.kill()
        raise RuntimeError("streamlit did not become healthy in 90 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.goto(server)
    wait_idle(page)
    yield page
    context.close()


def wait_idle(page, timeout=240_000):
    """Until the script has finished its run and results are drawn."""
    page.wait_for_selector("[data-testid='stAppViewContainer']", state="attached", timeout=timeout)
    page.locator("[data-testid='stApp'][data-test-connection-state='CONNECTED']").wait_for(
        state="attached", timeout=timeout)
    time.sleep(0.5)
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(
        state="attached", timeout=timeout)
    page.wait_for_function("document.querySelectorAll(\"[data-testid='stSkeleton']\").length === 0", timeout=timeout)


def patches_count(page) -> int:
    values = page.get_by_test_id("stMetricValue").all_inner_texts()
    return int(values[1])


def uploader_input(page, label: str):
    return page.get_by_test_id("stFileUploader").filter(has_text=label).get_by_test_id("stFileUploaderDropzoneInput")


def test_defaults_show_both_results_and_the_table(page):
    assert page.get_by_test_id("stImage").count() >= 2
    assert page.get_by_test_id("stDataFrame").count() >= 1 or page.get_by_text("Detections").count() >= 1
    assert patches_count(page) > 50
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / "desktop-1920x1080.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    time.sleep(1)
    page.screenshot(path=str(OUT / "phone-390x844.png"), full_page=True)
    assert (OUT / "desktop-1920x1080.png").stat().st_size > 10_000


# Runs in the page before Streamlit's own script: from the moment serve.py's style is parsed, every
# change to the page checks each selector of the style against the elements Streamlit has drawn. For
# each selector it records whether it ever matched, whether the rule's values won on every match, and
# whether Streamlit's own style gives some match another value (the style off for a moment), i.e. the
# rule does something. The rule's values are read as Chromium computes them (`animation: none` is
# `animation-duration: 0s`) from one bare element given them inline; it matches no selector.
STYLE_WATCH = """(style) => {
    const seen = window.__pageStyle = {copies: 0, inHead: false, rules: -1, stale: false, selectors: {}};
    let sheet = null, wanted = null, observer = null;
    const computed = (rule) => {
        const bare = document.createElement("div");
        bare.style.cssText = rule.style.cssText;
        document.head.append(bare);
        const css = getComputedStyle(bare);
        const values = Object.fromEntries([...rule.style].map(p => [p, css.getPropertyValue(p)]));
        bare.remove();
        observer.takeRecords();  // not a change of Streamlit's
        return values;
    };
    const check = () => {
        if (sheet === null) {
            const ours = [...document.querySelectorAll("style")].filter(s => s.textContent === style);
            if (ours.length === 0 || !ours[0].sheet) return;
            sheet = ours[0].sheet;
            seen.inHead = ours[0].parentElement === document.head;
            seen.rules = sheet.cssRules.length;
            wanted = new Map([...sheet.cssRules].map(rule => [rule, computed(rule)]));
        }
        seen.copies = [...document.querySelectorAll("style")].filter(s => s.textContent.includes(style)).length;
        seen.stale ||= document.querySelector("[data-stale='true']") !== null;
        const found = [];
        for (const rule of sheet.cssRules) {
            const props = [...rule.style];
            for (const selector of rule.selectorText.split(",").map(s => s.trim())) {
                const rec = seen.selectors[selector] ??= {matched: false, overridden: false, lost: []};
                for (const el of document.querySelectorAll(selector)) {
                    rec.matched = true;
                    const css = getComputedStyle(el);
                    const values = props.map(p => css.getPropertyValue(p));
                    props.forEach((p, i) => {
                        if (values[i] !== wanted.get(rule)[p] && rec.lost.length < 5)
                            rec.lost.push(`${p}: ${values[i]}`);
                    });
                    if (!rec.overridden) found.push([rec, el, props, values]);
                }
            }
        }
        if (found.length === 0) return;
        sheet.disabled = true;
        for (const [rec, el, props, values] of found) {
            const css = getComputedStyle(el);
            if (props.some((p, i) => css.getPropertyValue(p) !== values[i])) rec.overridden = true;
        }
        sheet.disabled = false;
    };
    observer = new MutationObserver(check);
    observer.observe(document, {subtree: true, childList: true, attributes: true});
}"""


def test_page_style_is_in_the_head_and_matches_streamlits_markup(browser, server):
    """serve.py puts the style in the HTML head, where it applies before the first placeholder is drawn,
    and the page does not send it again. Every selector in it matches elements of Streamlit's real page
    and its rules win there over Streamlit's own: a renamed test id or a changed style would otherwise
    silently bring back the animations bench/load.py measured. The page is watched while Streamlit
    draws its page skeleton (a busy server: its connection is held back 1.5 s), its elements' loading
    placeholders, and a rerun's stale elements."""
    from ui.page_style import PAGE_STYLE

    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.add_init_script(f"({STYLE_WATCH})({json.dumps(PAGE_STYLE)})")

    def busy_server(route):
        time.sleep(1.5)
        route.continue_()

    page.route("**/_stcore/host-config", busy_server)
    try:
        page.goto(server)
        wait_idle(page)
        thumb = page.get_by_test_id("stSlider").filter(has_text="Confidence").get_by_role("slider")
        thumb.focus()
        page.keyboard.press("ArrowRight")  # a rerun: the elements it has not redrawn yet go stale
        page.wait_for_function("window.__pageStyle.stale")
        wait_idle(page)
        seen = page.evaluate("window.__pageStyle")
    finally:
        context.close()
    assert seen["copies"] == 1 and seen["inHead"], seen
    assert seen["rules"] == PAGE_STYLE.count("}"), seen  # Chromium kept every rule
    selectors = seen["selectors"]
    assert len(selectors) == sum(len(rule.split("{")[0].split(",")) for rule in PAGE_STYLE.split("}")[:-1])
    for selector, rec in selectors.items():
        assert rec["matched"], f"nothing in Streamlit's page matches {selector}"
        assert not rec["lost"], f"Streamlit's own style wins over {selector}: {rec['lost']}"
        assert rec["overridden"], f"{selector}: Streamlit's page looks the same without the rule"


def test_slider_changes_the_result(page):
    before = patches_count(page)
    thumb = page.get_by_test_id("stSlider").filter(has_text="Confidence").get_by_role("slider")
    thumb.focus()
    for _ in range(40):
        page.keyboard.press("ArrowRight")
    wait_idle(page)
    page.wait_for_function(f"""() => {{
        const v = document.querySelectorAll("[data-testid='stMetricValue']");
        return v.length > 1 && parseInt(v[1].innerText) < {before};
    }}""", timeout=60_000)
    assert patches_count(page) < before


def test_csv_download_matches_the_count(page):
    page.get_by_role("tab").filter(has_text="Detections").click()
    with page.expect_download() as info:
        page.get_by_test_id("stDownloadButton").filter(has_text="CSV").click()
    text = open(info.value.path()).read()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert info.value.suggested_filename.endswith(".csv")
    assert len(rows) == patches_count(page) and {"class", "confidence", "x0"} <= set(rows[0])


def test_upload_an_image(page, tmp_path):
    from scripts.scenes import render_scene

    image, _ = render_scene(1200, 900, seed=5, n_objects=60)
    path = tmp_path / "my-scene.png"
    cv2.imwrite(str(path), image)
    # Streamlit's top-bar running icon re-renders every 0.2 s once a run passes 0.5 s, even hidden: the
    # config leaves it out (ui.hideTopBar, which also drops the viewer menu). Watch for it during the run.
    page.evaluate("""() => {
        window.__runningIcon = false;
        new MutationObserver(() => {
            if (document.querySelector("[data-testid='stStatusWidgetRunningIcon']")) window.__runningIcon = true;
        }).observe(document.body, {subtree: true, childList: true});
    }""")
    uploader_input(page, "Upload images").set_input_files(str(path))
    wait_idle(page)
    page.get_by_text("my-scene.png").first.wait_for(timeout=120_000)
    assert patches_count(page) > 10
    assert page.evaluate("window.__runningIcon") is False
    assert page.get_by_test_id("stMainMenu").count() == 0  # the page got hideTopBar


def test_broken_upload_shows_a_message(page, tmp_path):
    path = tmp_path / "holiday.jpg"
    path.write_text("this is not a photo")
    uploader_input(page, "Upload images").set_input_files(str(path))
    wait_idle(page)
    alert = page.get_by_test_id("stAlert").filter(has_text="holiday.jpg")
    alert.first.wait_for(timeout=60_000)
    assert "not an image" in alert.first.inner_text()
    assert page.get_by_test_id("stImage").count() >= 2  # the samples are still there


def test_click_on_the_overview_moves_the_zoom_region(page):
    page.get_by_role("tab").filter(has_text="Zoom").click()
    slider = page.get_by_test_id("stSlider").filter(has_text="Region centre x")
    before = slider.inner_text()
    page.get_by_text("Pick the region by clicking the image").click()
    chart = page.get_by_test_id("stVegaLiteChart").first
    chart.wait_for()
    time.sleep(1.5)  # vega renders after the element appears
    box = chart.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.15, box["y"] + box["height"] * 0.2)
    wait_idle(page)
    page.wait_for_function("""(before) => {
        const s = [...document.querySelectorAll("[data-testid='stSlider']")].find(e => e.innerText.includes("Region centre x"));
        return s && s.innerText !== before;
    }""", arg=before, timeout=60_000)
    x = int(slider.inner_text().split()[3])
    assert 300 < x < 900  # 15% across a 4000 px image, snapped to a clickable cell
