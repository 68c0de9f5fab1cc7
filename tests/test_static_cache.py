"""serve.py's memory of Streamlit's hashed page files: replayed byte for byte, and only those."""
from __future__ import annotations

import asyncio

from ui.static_cache import StaticCache

IMMUTABLE = (b"cache-control", b"public, immutable, max-age=31536000")


class Disk:
    """A tiny ASGI app that counts how often it is asked, answering with fixed parts and headers."""

    def __init__(self, parts: list[bytes], headers=(IMMUTABLE,), status: int = 200):
        self.parts, self.headers, self.status, self.calls = parts, list(headers), status, 0

    async def __call__(self, scope, receive, send):
        self.calls += 1
        length = str(sum(map(len, self.parts))).encode()
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/javascript"), (b"content-length", length),
                                *self.headers]})
        for i, part in enumerate(self.parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < len(self.parts) - 1})


def get(cache: StaticCache, path: str = "/static/js/index.abc123.js", method: str = "GET", headers=()):
    """One request through the cache; returns (status, headers, body) as the client got them."""
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request"}

    scope = {"type": "http", "method": method, "path": path, "root_path": "", "query_string": b"",
             "headers": list(headers)}
    asyncio.run(cache(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def test_a_hashed_file_is_read_once_and_replayed_byte_for_byte():
    disk = Disk([b"x" * 70_000, b"y" * 5])  # sent in two chunks, as Starlette does past 64 KB
    cache = StaticCache(disk)
    first = get(cache)
    again = get(cache)
    assert disk.calls == 1 and again == first
    assert again[2] == b"x" * 70_000 + b"y" * 5 and int(again[1][b"content-length"]) == 70_005
    assert cache.held_bytes == 70_005
    get(cache, "/static/js/other.def456.js")
    assert disk.calls == 2  # another URL is another file


def test_pages_errors_and_compressed_answers_are_never_kept():
    for disk in (Disk([b"<html></html>"], headers=[(b"cache-control", b"no-cache")]),  # the HTML page
                 Disk([b"not found"], status=404),
                 Disk([b"\x1f\x8b..."], headers=[IMMUTABLE, (b"content-encoding", b"gzip")]),
                 Disk([b"media"], headers=[])):  # the app's own images and uploads
        cache = StaticCache(disk)
        get(cache)
        get(cache)
        assert disk.calls == 2 and cache.held_bytes == 0


def test_partial_conditional_and_non_get_requests_go_to_starlette():
    disk = Disk([b"0123456789"])
    cache = StaticCache(disk)
    get(cache)
    for headers in ([(b"range", b"bytes=0-3")], [(b"if-none-match", b'"abc"')], [(b"If-Modified-Since", b"x")]):
        get(cache, headers=headers)
    get(cache, method="HEAD")
    assert disk.calls == 5


def test_memory_is_capped():
    disk = Disk([b"z" * 1000])
    cache = StaticCache(disk, max_bytes=2500)
    for i in range(5):
        get(cache, f"/static/js/chunk{i}.js")
    assert cache.held_bytes == 2000
    for i in range(5):
        get(cache, f"/static/js/chunk{i}.js")
    assert disk.calls == 5 + 3  # the two kept files were not read again
