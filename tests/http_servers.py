"""Loopback HTTP servers whose behaviour a test sets (a STAC API that stalls or ignores filters, a proxy that
fails, a token endpoint): real sockets and real timeouts, so deadlines are tested as they happen in production."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that keeps the test output clean and answers with one call."""

    def log_message(self, *args: object) -> None:
        pass

    def send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has headers only
            self.wfile.write(payload)


class LoopbackServer:
    """A threaded server on 127.0.0.1 for `handler`; `release` frees handlers that stall until the test ends."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, path: str = "/") -> None:
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> Self:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def stac_api_landing(base: str, *, identifier: str, description: str) -> dict[str, Any]:
    """The landing page of a STAC API with item search by GET and POST at `base`/search."""
    base = base.rstrip("/")
    return {
        "type": "Catalog",
        "id": identifier,
        "stac_version": "1.0.0",
        "description": description,
        "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
        "links": [
            {"rel": "self", "href": base + "/"},
            {"rel": "root", "href": base + "/"},
            *(
                {"rel": "search", "href": base + "/search", "method": method, "type": "application/geo+json"}
                for method in ("GET", "POST")
            ),
        ],
    }
