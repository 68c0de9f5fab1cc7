"""An HTTP response cache for the server: Streamlit's content-hashed page files, answered from memory.

A visitor's page is ~110 files. Starlette serves each from disk with four or five hops to a worker
thread (look up, open, read, close); when a class opens the page at once on a 2-core server every hop
waits for a core. A file whose name carries its content hash (Streamlit marks those answers
`Cache-Control: immutable`) cannot change while the server runs, so the first complete answer for
each URL is kept and replayed (bench/README.md). The query string is no part of the key (a static file
is the same whatever follows ``?``; keyed on it, one client could fill the cache with copies), and the
least recently used bodies make room for new ones within a byte cap.
"""
from __future__ import annotations

from collections import OrderedDict

# Conditional and partial requests go to Starlette, which knows how to answer them.
_PASS_THROUGH = (b"range", b"if-range", b"if-none-match", b"if-modified-since")


class ImmutableResponseCache:
    """ASGI middleware: replays 200 responses marked `immutable` to later GETs of the same path.

    Compressed responses and anything not marked immutable (the HTML page, the app's own media and
    uploads) are never kept. At most ``max_bytes`` of bodies are held, least recently used out first;
    Streamlit's static folder is ~26 MB, and this app's page asks for 111 of its files, 3 MB.
    """

    def __init__(self, app, max_bytes: int = 64 << 20):
        self.app = app
        self.max_bytes = max_bytes
        self.held_bytes = 0
        self._kept: OrderedDict[str, tuple[list[tuple[bytes, bytes]], bytes]] = OrderedDict()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "GET" or any(
                name.lower() in _PASS_THROUGH for name, _ in scope.get("headers", [])):
            await self.app(scope, receive, send)
            return
        key = scope.get("root_path", "") + scope.get("path", "")
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
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
                    self._keep(key, headers, b"".join(chunks))
            await send(message)

        await self.app(scope, receive, send_and_keep)

    def _keep(self, key: str, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """Hold ``body``, dropping the least recently replayed ones until it fits; one over the cap is not held."""
        if key in self._kept or len(body) > self.max_bytes:
            return
        while self._kept and self.held_bytes + len(body) > self.max_bytes:
            _, (_, dropped) = self._kept.popitem(last=False)
            self.held_bytes -= len(dropped)
        self._kept[key] = (headers, body)
        self.held_bytes += len(body)
