"""An HTTP response cache for the server: Streamlit's content-hashed page files, answered from memory.

A visitor's page is ~110 files. Starlette serves each from disk with four or five hops to a worker
thread (look up, open, read, close); when a class opens the page at once on a 2-core server every hop
waits for a core. A file whose name carries its content hash (Streamlit marks those answers
`Cache-Control: immutable`) cannot change while the server runs, so the first complete answer for
each URL is kept and replayed (bench/README.md).
"""
from __future__ import annotations

# Conditional and partial requests go to Starlette, which knows how to answer them.
_PASS_THROUGH = (b"range", b"if-range", b"if-none-match", b"if-modified-since")


class ImmutableResponseCache:
    """ASGI middleware: replays 200 responses marked `immutable` to later GETs of the same URL.

    Compressed responses and anything not marked immutable (the HTML page, the app's own media and
    uploads) are never kept. At most ``max_bytes`` of bodies are held; Streamlit's static folder is
    ~26 MB, and this app's page asks for 111 of its files, 3 MB.
    """

    def __init__(self, app, max_bytes: int = 64 << 20):
        self.app = app
        self.max_bytes = max_bytes
        self.held_bytes = 0
        self._kept: dict[tuple[str, bytes], tuple[list[tuple[bytes, bytes]], bytes]] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "GET" or any(
                name.lower() in _PASS_THROUGH for name, _ in scope.get("headers", [])):
            await self.app(scope, receive, send)
            return
        key = (scope.get("root_path", "") + scope.get("path", ""), scope.get("query_string", b""))
        kept = self._kept.get(key)
        if kept is not None:
            headers, body = kept
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        keep = False
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def send_and_keep(message):
            nonlocal keep, headers
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                named = {k.lower(): v for k, v in headers}
                keep = (message.get("status") == 200 and b"immutable" in named.get(b"cache-control", b"")
                        and b"content-encoding" not in named)
            elif message["type"] == "http.response.body" and keep:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body = b"".join(chunks)
                    if key not in self._kept and self.held_bytes + len(body) <= self.max_bytes:
                        self._kept[key] = (headers, body)
                        self.held_bytes += len(body)
            await send(message)

        await self.app(scope, receive, send_and_keep)
