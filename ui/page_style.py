"""The page's own style, and the server middleware that edits the HTML head: it adds that style and
starts Streamlit's boot script at the page's load event.

Streamlit draws a pulsing placeholder for every element whose code chunk is still loading. With a
class opening the page at once on a 2-core server, the chunks took up to 24 s to arrive and every
frame of those pulses was composited on a CPU: with ten pages, 1.2 of the 7.0 CPU-s each session
cost (bench/README.md). A style sent as an element arrives too late to stop them, because st.html's
code loads lazily like theirs. In the head of the HTML it applies before any element is drawn.

A browser counts a page as loading until its load event, and Chromium animates the tab's loading
indicator meanwhile: 0.10-0.12 of a core per loading page in the load rig's headless Chromium, whose
twenty pages reached their load event only after ~20 s, once their ~2 MB of script had run.
Streamlit's page has nothing to show before its script runs, so the script now starts at the load
event. The ~60 modules it imports are still fetched and parsed in parallel before it (Streamlit's
`modulepreload` links); only the boot module itself (0.5 MB) is fetched at the load event.
Preloading it too was measured (3 pairs) and gave no gain, for reasons not found (bench/README.md).
"""
from __future__ import annotations

import re

PAGE_STYLE = "".join((
    # Streamlit's animated "running" figure: 4% of a core per waiting page (1.7% without it). The page
    # shows its own progress bar and spinners. The repo's config (ui.hideTopBar) also keeps it from
    # mounting, since even hidden it re-renders every 0.2 s; this rule covers a start from elsewhere.
    "[data-testid='stStatusWidget']{display:none}",
    "[data-testid='stSkeleton'],[data-testid='stAppSkeleton'] *{animation:none!important}",
    # A rerun's stale elements dim after Streamlit's 0.5 s, at once instead of in a 1 s fade.
    "[data-testid='stElementContainer'],[data-testid='stTabs'] [role='tablist'],[data-testid='stExpander'] details,"
    "[data-testid='stExpander'] summary{transition-duration:0s!important}",
))
STYLE_TAG = f"<style>{PAGE_STYLE}</style>".encode()

# Set by serve.py when the server puts the style in the head; app.py then does not send it again.
IN_HEAD = False

# Streamlit's index.html boots the page with one parser-inserted module script.
BOOT_SCRIPT = re.compile(rb'<script type="module"( crossorigin)? src="([\w./-]+\.js)"></script>')
BOOT_FALLBACK_MS = 20_000  # starts anyway if the load event has not come by then (a stalled font, say)


def start_after_load(page: bytes) -> bytes:
    """``page`` with its boot script added at the load event (or after BOOT_FALLBACK_MS); a page without
    the script Streamlit writes is returned unchanged."""
    found = BOOT_SCRIPT.search(page)
    if found is None:
        return page
    src = found.group(2)
    cors = b's.crossOrigin="anonymous";' if found.group(1) else b""
    loader = (b'<script>(()=>{let go=()=>{go=()=>{};const s=document.createElement("script");s.type="module";'
              + cors + b's.src="' + src + b'";document.head.append(s)};'
              b'addEventListener("load",()=>go(),{once:true});setTimeout(()=>go(),'
              + str(BOOT_FALLBACK_MS).encode() + b")})()</script>")
    return page[:found.start()] + loader + page[found.end():]


class PageHead:
    """ASGI middleware: adds PAGE_STYLE to the head of every HTML page the server sends, and starts its
    boot script at the load event (``start_after_load``).

    Only uncompressed text/html responses to GET are touched; everything else streams through as is.
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
                page = start_after_load(page[:head_end] + STYLE_TAG + page[head_end:])
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(page)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, send_edited)
