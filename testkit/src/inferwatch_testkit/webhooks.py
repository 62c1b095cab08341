"""Stand-ins for webhook receivers: ``http_server`` serves a request handler on 127.0.0.1 for a
block; ``flaky_receiver`` answers 503 (Retry-After: 1) to the first ``failures`` POSTs and 200
after, recording each with its Idempotency-Key and the answer it got."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Hit:
    path: str
    key: str | None
    body: dict[str, Any]
    status: int


@dataclass
class FlakyReceiver:
    failures: int
    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def seen(self) -> list[Hit]:
        with self.lock:
            return list(self.hits)

    def answer(self, path: str, key: str | None, body: dict[str, Any]) -> int:
        with self.lock:
            status = 503 if len(self.hits) < self.failures else 200
            self.hits.append(Hit(path, key, body, status))
        return status


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps test output free of its access log."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """``handler`` served on 127.0.0.1 by a thread for the block; the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextmanager
def flaky_receiver(failures: int) -> Iterator[FlakyReceiver]:
    receiver = FlakyReceiver(failures)

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            status = receiver.answer(self.path, self.headers.get("idempotency-key"), body)
            self.send_response(status)
            if status == 503:
                # A second at least: long enough for a test to kill the sender meanwhile.
                self.send_header("retry-after", "1")
            self.send_header("content-length", "0")
            self.end_headers()

    with http_server(Handler) as port:
        receiver.port = port
        yield receiver
