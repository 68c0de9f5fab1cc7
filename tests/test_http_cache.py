"""serve.py's HTTP cache of Streamlit's immutable page files: replayed byte for byte, and only those."""
from __future__ import annotations

from conftest import FixedAnswer, asgi_request
from ui.http_cache import ImmutableResponseCache

IMMUTABLE = (b"cache-control", b"public, immutable, max-age=31536000")


def static_file(parts: list[bytes], headers=(IMMUTABLE,), status: int = 200) -> FixedAnswer:
    """Starlette's static files as the cache sees them: a script, marked immutable unless told otherwise."""
    return FixedAnswer(parts, [(b"content-type", b"application/javascript"), *headers], status)


def get(cache: ImmutableResponseCache, path: str = "/static/js/index.abc123.js", method: str = "GET",
        headers=()):
    """One request through the cache; returns (status, headers, body) as the client got them."""
    return asgi_request(cache, method, path, headers)


def test_a_hashed_file_is_read_once_and_replayed_byte_for_byte():
    disk = static_file([b"x" * 70_000, b"y" * 5])  # sent in two chunks, as Starlette does past 64 KB
    cache = ImmutableResponseCache(disk)
    first = get(cache)
    again = get(cache)
    assert disk.calls == 1 and again == first
    assert again[2] == b"x" * 70_000 + b"y" * 5 and int(again[1][b"content-length"]) == 70_005
    assert cache.held_bytes == 70_005
    get(cache, "/static/js/other.def456.js")
    assert disk.calls == 2  # another URL is another file


def test_pages_errors_and_compressed_answers_are_never_kept():
    for disk in (static_file([b"<html></html>"], headers=[(b"cache-control", b"no-cache")]),  # the HTML page
                 static_file([b"not found"], status=404),
                 static_file([b"\x1f\x8b..."], headers=[IMMUTABLE, (b"content-encoding", b"gzip")]),
                 static_file([b"media"], headers=[])):  # the app's own images and uploads
        cache = ImmutableResponseCache(disk)
        get(cache)
        get(cache)
        assert disk.calls == 2 and cache.held_bytes == 0


def test_partial_conditional_and_non_get_requests_go_to_starlette():
    disk = static_file([b"0123456789"])
    cache = ImmutableResponseCache(disk)
    get(cache)
    for headers in ([(b"range", b"bytes=0-3")], [(b"if-none-match", b'"abc"')], [(b"If-Modified-Since", b"x")]):
        get(cache, headers=headers)
    get(cache, method="HEAD")
    assert disk.calls == 5


def test_memory_is_capped():
    disk = static_file([b"z" * 1000])
    cache = ImmutableResponseCache(disk, max_bytes=2500)
    for i in range(5):
        get(cache, f"/static/js/chunk{i}.js")
    assert cache.held_bytes == 2000
    get(cache, "/static/js/chunk4.js"), get(cache, "/static/js/chunk3.js")
    assert disk.calls == 5  # the two most recent files were kept
    get(cache, "/static/js/chunk0.js")  # makes room by dropping the least recently used (chunk4)
    get(cache, "/static/js/chunk3.js")
    assert disk.calls == 6 and cache.held_bytes == 2000
    get(cache, "/static/js/chunk4.js")
    assert disk.calls == 7


def _get_with_query(cache: ImmutableResponseCache, path: str, query: bytes) -> bytes:
    """A GET as a server hands it over: the query string apart from the path; returns the body."""
    import asyncio

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "query_string": query, "headers": []}
    asyncio.run(cache(scope, receive, send))
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_query_strings_do_not_make_new_entries():
    disk = static_file([b"q" * 1000])
    cache = ImmutableResponseCache(disk)
    bodies = {_get_with_query(cache, "/static/js/index.abc123.js", b"v=%d" % i) for i in range(200)}
    assert bodies == {b"q" * 1000} and disk.calls == 1 and cache.held_bytes == 1000


def test_a_body_larger_than_the_cap_is_passed_on_not_kept():
    disk = static_file([b"b" * 3000])
    cache = ImmutableResponseCache(disk, max_bytes=2500)
    assert get(cache)[2] == b"b" * 3000 and get(cache)[2] == b"b" * 3000
    assert disk.calls == 2 and cache.held_bytes == 0
