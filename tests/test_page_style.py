"""serve.py's PageHead middleware: the page's style goes into the HTML head, and nothing else is touched.
Whether the style matches Streamlit's page is checked in a browser (tests/test_e2e.py)."""
from __future__ import annotations

import gzip

from conftest import FixedAnswer, asgi_request
from ui import page_style

PAGE = b"<!DOCTYPE html><html><head><title>Streamlit</title></head><body><div id='root'></div></body></html>"


def serve(body_parts: list[bytes], content_type: bytes, method: str = "GET", extra_headers=()):
    """Runs one request through PageHead over a fixed answer; returns (headers, body) as sent."""
    inner = FixedAnswer(body_parts, [(b"content-type", content_type), *extra_headers])
    _, headers, body = asgi_request(page_style.PageHead(inner), method)
    return headers, body


def test_html_gets_the_style_before_the_end_of_its_head_and_a_matching_length():
    headers, body = serve([PAGE[:30], PAGE[30:]], b"text/html; charset=utf-8")  # a page sent in two pieces
    assert body == PAGE.replace(b"</head>", page_style.HEAD_TAGS + b"</head>")
    assert int(headers[b"content-length"]) == len(body)


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
