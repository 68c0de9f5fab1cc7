"""serve.py's middleware: the page's style goes into the HTML head, its boot script starts at the load event,
and nothing else is touched."""
from __future__ import annotations

import gzip
from pathlib import Path

import streamlit

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


STREAMLIT_PAGE = (Path(streamlit.__file__).parent / "static" / "index.html").read_bytes()


def test_streamlits_boot_script_starts_from_the_load_event_and_its_imports_still_preload():
    found = page_style.BOOT_SCRIPT.search(STREAMLIT_PAGE)
    assert found is not None, "this Streamlit boots its page differently: start_after_load would do nothing"
    src = found.group(2)
    page = page_style.start_after_load(STREAMLIT_PAGE)
    assert b'<script type="module"' not in page  # nothing runs while the page parses
    head = page[:page.index(b"</head>")]
    assert head.count(b'rel="modulepreload"') == STREAMLIT_PAGE.count(b'rel="modulepreload"') > 20
    assert src not in head.replace(b's.src="' + src, b"")  # the boot module itself: only in the loader
    loader = head[head.index(b"<script>(()=>"):]
    loader = loader[:loader.index(b"</script>")]
    assert b'addEventListener("load"' in loader and b's.src="' + src + b'"' in loader
    assert b's.crossOrigin="anonymous"' in loader and b"setTimeout(()=>go(),20000)" in loader
    # everything around it is Streamlit's page as it was
    assert page.startswith(STREAMLIT_PAGE[:found.start()]) and page.endswith(STREAMLIT_PAGE[found.end():])


def test_the_middleware_adds_the_style_and_moves_the_boot_script_together():
    boot = b'<script type="module" crossorigin src="./static/js/index.abc123.js"></script>'
    headers, body = serve([PAGE.replace(b"</head>", boot + b"</head>")], b"text/html")
    assert body.count(page_style.STYLE_TAG) == 1 and boot not in body
    assert b's.src="./static/js/index.abc123.js"' in body and int(headers[b"content-length"]) == len(body)


def test_a_script_the_middleware_does_not_recognise_is_left_alone():
    for odd in (b'<script type="module" src="./x.js" async></script>', b'<script type="module" src="a\'b.js"></script>',
                b'<script src="./static/js/index.js"></script>'):
        page = PAGE.replace(b"</head>", odd + b"</head>")
        assert page_style.start_after_load(page) == page
