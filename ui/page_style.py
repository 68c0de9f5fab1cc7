"""The page's own style, and the server middleware that puts it in the HTML head.

Streamlit draws a pulsing placeholder for every element whose code chunk is still loading (and a
pulsing page skeleton until the first elements arrive); when a class opens the page at once on a small
server those chunks arrive slowly, and every frame of the pulses costs the browser CPU. A style sent as
an element (st.html) arrives too late to stop them, because its code loads lazily like theirs; in the
head of the HTML it applies before any element is drawn.
serve.py adds PageHead to Streamlit's server; app.py started on its own sends the style as an element.

Every selector here rests on a Streamlit test id: tests/test_e2e.py checks in Chromium, against the page
serve.py serves, that each one matches Streamlit's markup and that the rules win.
"""
from __future__ import annotations

PAGE_STYLE = "".join((
    # Placeholders stand still instead of pulsing: an element's while its code chunk loads, and the
    # page skeleton's while the server has not answered yet.
    "[data-testid='stSkeleton'],[data-testid='stAppSkeleton'] *{animation:none!important}",
    # A rerun's stale elements dim after Streamlit's 0.5 s, at once instead of in a 1 s fade.
    "[data-testid='stElementContainer'],[data-testid='stTabs'] [role='tablist'],[data-testid='stExpander'] details,"
    "[data-testid='stExpander'] summary{transition-duration:0s!important}",
    # Room under a tab row for the toolbar Streamlit floats 2.75rem above an element (a table's search,
    # download, fullscreen), so it never covers the tabs: on a phone, where the tabs fill the row and the
    # last touch is the hover, it would sit over the last tabs.
    "[data-testid='stTabPanel']{padding-top:2.75rem!important}",
    # The main column starts near the top: its usual 6rem of padding makes room for the top bar, which
    # .streamlit/config.toml hides.
    "[data-testid='stMainBlockContainer']{padding-top:2rem!important}",
))
# The page's layout on a phone and while it runs, kept apart from PAGE_STYLE (whose every selector must match
# the desktop page at once, tests/test_e2e.py); tests/test_e2e_teaching.py checks these in Chromium.
LAYOUT_STYLE = "".join((
    # A phone keeps pairs of pictures side by side (Streamlit stacks columns below 640 px): the two results,
    # the zoom's two crops, the seam before and after merging (containers keyed "pair-..."), so a student
    # compares them without scrolling between them.
    "@media (max-width:640px){[class*='st-key-pair-'] [data-testid='stHorizontalBlock']{flex-wrap:nowrap!important;"
    "gap:0.4rem!important}[class*='st-key-pair-'] [data-testid='stColumn']{min-width:0!important;"
    "flex:1 1 0!important;width:auto!important}[class*='st-key-pair-'] h3{font-size:1rem!important}"
    "[class*='st-key-pair-'] [data-testid='stMetricValue']{font-size:1.6rem!important}}",
    # The tab row scrolls sideways when its tabs do not fit, so every tab can be reached.
    "[data-testid='stMain'] [data-testid='stTabs'] [role='tablist']{overflow-x:auto!important;flex-wrap:nowrap}",
    # A run's progress stays at the top of the window wherever the page is scrolled.
    "[data-testid='stMain'] [data-testid='stElementContainer']:has([data-testid='stProgress']){position:sticky;"
    "top:0;z-index:99;background:var(--background-color,#fff);padding:0.3rem 0}",
))
# On a phone the sidebar lies over the results: after a change made in it (a radio, a checkbox, a file, a
# slider let go) it closes, so the result of the change is what the visitor sees next. Wider screens keep it.
PHONE_SCRIPT = """(() => {
  const narrow = () => innerWidth <= 640;
  const inSidebar = (e) => e.target instanceof Element && e.target.closest("[data-testid='stSidebar']");
  const close = () => setTimeout(() => {
    const button = document.querySelector("[data-testid='stSidebarCollapseButton'] button");
    if (button && narrow()) button.click();
  }, 350);
  const on = (type, widgets) => document.addEventListener(type, (e) => {
    if (narrow() && inSidebar(e) && e.target.closest(widgets) && !e.target.closest("[data-testid*='Tooltip']")) close();
  }, true);
  on("click", "[data-testid='stCheckbox'],[data-testid='stRadio']");  // these change on a click, with no change event
  on("pointerup", "[data-testid='stSlider']");  // a slider let go
  on("change", "input[type='file']");
})();"""
# What PageHead puts in the head (st.html, when app.py runs on its own, drops the script: the styles stay).
HEAD_TAGS = f"<style>{PAGE_STYLE}</style><style>{LAYOUT_STYLE}</style><script>{PHONE_SCRIPT}</script>".encode()

# Set by serve.py when the server puts the style in the head; app.py then does not send it again.
IN_HEAD = False


class PageHead:
    """ASGI middleware: adds HEAD_TAGS before the end of the head of every HTML page the server sends.

    Only uncompressed text/html responses to GET are touched, and only their head; everything else
    streams through as is.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        start: dict | None = None
        body: list[bytes] = []

        async def send_edited(message):
            nonlocal start
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                if b"text/html" in headers.get(b"content-type", b"") and b"content-encoding" not in headers:
                    start = message  # held back until the whole page is in
                    return
                await send(message)
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            page = b"".join(body)
            head_end = page.find(b"</head>")
            if head_end >= 0:
                page = page[:head_end] + HEAD_TAGS + page[head_end:]
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(page)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, send_edited)
