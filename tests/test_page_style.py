"""serve.py's middleware: the page's style goes into the HTML head, and nothing else is touched."""
from __future__ import annotations

import asyncio
import gzip

from ui import page_style

PAGE = b"<!DOCTYPE html><html><head><title>Streamlit</title></head><body><div id='root'></div></body></html>"


def serve(body_parts: list[bytes], content_type: bytes, method: str = "GET", extra_headers=()):
    """Runs one request through HeadStyle over a tiny ASGI app; returns (headers, body) as sent."""
    async def inner(scope, receive, send):
        headers = [(b"content-type", content_type), (b"content-length", str(sum(map(len, body_parts))).encode()),
                   *extra_headers]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, part in enumerate(body_parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < len(body_parts) - 1})

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    asyncio.run(page_style.HeadStyle(inner)({"type": "http", "method": method, "path": "/"}, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return dict(start["headers"]), body


def test_html_gets_the_style_before_the_end_of_its_head_and_a_matching_length():
    headers, body = serve([PAGE[:30], PAGE[30:]], b"text/html; charset=utf-8")  # a page sent in two pieces
    assert body == PAGE.replace(b"</head>", page_style.STYLE_TAG + b"</head>")
    assert int(headers[b"content-length"]) == len(body)
    assert b"stSkeleton" in page_style.STYLE_TAG and b"transition-duration:0s" in page_style.STYLE_TAG


def test_scripts_compressed_pages_and_head_requests_pass_through_unchanged():
    script = b"console.log('</head>')"
    headers, body = serve([script], b"application/javascript")
    assert body == script and int(headers[b"content-length"]) == len(script)
    packed = gzip.compress(PAGE)
    headers, body = serve([packed], b"text/html", extra_headers=[(b"content-encoding", b"gzip")])
    assert body == packed
    headers, body = serve([b""], b"text/html", method="HEAD")
    assert body == b""


def test_a_page_without_a_head_is_sent_as_it_came():
    fragment = b"<p>no head here</p>"
    headers, body = serve([fragment], b"text/html")
    assert body == fragment and int(headers[b"content-length"]) == len(fragment)
