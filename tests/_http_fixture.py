"""A tiny HTTP file server for download tests (127.0.0.1, ephemeral port, daemon thread).

It honours ``Range: bytes=N-`` (206 + Content-Range) and can misbehave on purpose per path:
``truncate`` — the next N responses send the full Content-Length but only half the body and then
close the connection; ``corrupt`` — the next N responses serve different bytes of the right size.
Every request is logged as ``(path, range_header_or_None, status)``.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


class FileServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: dict[str, int] = {}
        self.corrupt: dict[str, int] = {}
        self.log: list[tuple[str, str | None, int]] = []
        self.lock = threading.Lock()
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def requests_for(self, path: str) -> list[tuple[str, str | None, int]]:
        p = "/" + path.lstrip("/")
        return [r for r in self.log if r[0] == p]


def _handler(state: FileServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:  # noqa: N802
            path = self.path
            key = path.lstrip("/")
            rng = self.headers.get("Range")
            with state.lock:
                data = state.files.get(key)
                trunc = state.truncate.get(key, 0) > 0
                corrupt = state.corrupt.get(key, 0) > 0
                if trunc:
                    state.truncate[key] -= 1
                if corrupt:
                    state.corrupt[key] -= 1
            if data is None:
                state.log.append((path, rng, 404))
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if corrupt:
                data = bytes(b ^ 0xFF for b in data)
            start = 0
            status = 200
            if rng and rng.startswith("bytes="):
                start = int(rng[len("bytes="):].split("-")[0])
                if start >= len(data):
                    state.log.append((path, rng, 416))
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            body = data[start:]
            state.log.append((path, rng, status))
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            if trunc:
                self.send_header("Connection", "close")
            self.end_headers()
            if trunc:
                self.wfile.write(body[: max(1, len(body) // 2)])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@contextmanager
def serve_files(files: dict[str, bytes] | None = None) -> Iterator[FileServer]:
    state = FileServer()
    state.files.update(files or {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        t.join(timeout=5)
