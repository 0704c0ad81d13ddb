"""A loopback HTTP server for tests that read rasters over the network: files with byte ranges, an optional
query key every request must carry (a signed-URL store such as Azure Blob Storage answers 403 without
it), or a recording reverse proxy in front of another server (the S3 test server); every request is
logged with its headers, so a test can see what GDAL and s3fs actually sent.

It runs in a child process: GDAL holds the GIL during some network calls, so a server thread in the test
process could wait forever for the reader it serves. It also answers forward-proxy requests
(`GET http://host/path`), so `GDAL_HTTP_PROXY` can send reads for any host name to it and none leaves
the machine.

Run as a script: `python range_server.py --log FILE [--root DIR | --upstream URL] [--require KEY=VALUE]`;
it prints `PORT <n>` once it listens.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "host"}


def _handler(root: Path | None, upstream: str | None, require: tuple[str, str] | None, log: Path) -> type:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _record(self, status: int) -> None:
            parts = urlsplit(self.path)
            entry = {
                "method": self.command,
                "host": parts.netloc or self.headers.get("Host", ""),
                "path": parts.path,
                "query": parts.query,
                "headers": {key.lower(): value for key, value in self.headers.items()},
                "status": status,
            }
            with lock, log.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")

        def _send(self, status: int, body: bytes, headers: dict[str, str], *, with_body: bool) -> None:
            self._record(status)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if "content-length" not in {key.lower() for key in headers}:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def _file(self, with_body: bool) -> None:
            assert root is not None
            parts = urlsplit(self.path)
            if require is not None and parse_qs(parts.query).get(require[0]) != [require[1]]:
                self._send(403, b"AuthenticationFailed", {}, with_body=with_body)
                return
            path = root / parts.path.lstrip("/")
            if not path.is_file():
                self._send(404, b"", {}, with_body=with_body)
                return
            data = path.read_bytes()
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if match is None:  # no range, or several: the whole file (a server may ignore Range)
                self._send(200, data, {"Accept-Ranges": "bytes"}, with_body=with_body)
                return
            first = int(match.group(1))
            last = min(int(match.group(2) or len(data) - 1), len(data) - 1)
            self._send(
                206,
                data[first : last + 1],
                {"Accept-Ranges": "bytes", "Content-Range": f"bytes {first}-{last}/{len(data)}"},
                with_body=with_body,
            )

        def _forward(self) -> None:
            assert upstream is not None
            target = urlsplit(upstream)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Host"] = self.headers.get("Host", target.netloc)  # S3 signatures cover the Host header
            connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
                if self.command != "HEAD":  # a HEAD answer keeps the size of the object it describes
                    kept = {k: v for k, v in kept.items() if k.lower() != "content-length"}
            finally:
                connection.close()
            self._send(response.status, payload, kept, with_body=self.command != "HEAD")

        def do_GET(self) -> None:
            self._forward() if upstream else self._file(with_body=True)

        def do_HEAD(self) -> None:
            self._forward() if upstream else self._file(with_body=False)

        def do_PUT(self) -> None:
            self._forward()

        def do_POST(self) -> None:
            self._forward()

        def do_DELETE(self) -> None:
            self._forward()

    return Handler


@dataclass
class RangeServer:
    """The running child process: `url` to read from, `requests()` for what it was asked so far."""

    url: str
    log: Path

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def clear(self) -> None:
        self.log.write_text("")


@contextmanager
def range_server(
    log: Path, *, root: Path | None = None, upstream: str | None = None, require: str | None = None
) -> Iterator[RangeServer]:
    """Start the server in a child process (files under `root`, or a proxy to `upstream`)."""
    command = [sys.executable, __file__, "--log", str(log)]
    command += ["--root", str(root)] if root is not None else ["--upstream", str(upstream)]
    command += ["--require", require] if require else []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the range server did not start: {line!r}")
        yield RangeServer(url=f"http://127.0.0.1:{int(line.split()[1])}", log=log)
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--root", type=Path)
    parser.add_argument("--upstream")
    parser.add_argument("--require")
    args = parser.parse_args()
    require: tuple[str, str] | None = None
    if args.require:
        key, _, value = str(args.require).partition("=")
        require = (key, value)
    handler = _handler(args.root, args.upstream, require, args.log)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
