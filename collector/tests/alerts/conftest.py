"""A real webhook receiver (http.server on a free 127.0.0.1 port, one thread per request) and a
dead port."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from inferwatch_testkit.webhooks import QuietHandler, http_server


@dataclass(frozen=True)
class Received:
    path: str
    body: dict[str, Any]
    at: float  # time.time() when the body was read


@dataclass
class WebhookReceiver:
    """Answers 200, or per path the planned statuses first (with the path's ``retry_after``
    header, if any; a 429 otherwise says 0); paths in ``hang`` wait for ``release`` before
    answering. Records each request as soon as its body is read."""

    port: int = 0
    plans: dict[str, list[int]] = field(default_factory=dict)
    retry_after: dict[str, str] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    received: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self, path: str | None = None) -> list[Received]:
        with self.changed:
            return [r for r in self.received if path is None or r.path == path]

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 20.0
    ) -> list[Received]:
        """Block (in a thread: the dispatcher needs the event loop) until ``count`` requests."""
        with self.changed:
            done = self.changed.wait_for(
                lambda: len([r for r in self.received if path in (None, r.path)]) >= count,
                timeout,
            )
        got = self.requests(path)
        assert done, f"expected {count} requests to {path}, got {len(got)}"
        return got

    def _record(self, path: str, body: dict[str, Any]) -> int:
        with self.changed:
            self.received.append(Received(path, body, time.time()))
            self.changed.notify_all()
            plan = self.plans.get(path)
            return plan.pop(0) if plan else 200


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hooks = WebhookReceiver()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length))
            path = self.path.split("?")[0]
            status = hooks._record(path, body)
            if path in hooks.hang:
                hooks.release.wait(30)
            try:
                self.send_response(status)
                if status != 200 and path in hooks.retry_after:
                    self.send_header("Retry-After", hooks.retry_after[path])
                elif status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender timed out and went away, as a hung receiver's sender should

    with http_server(Handler) as port:
        hooks.port = port
        try:
            yield hooks
        finally:
            # Let hung handlers go before the server stops.
            hooks.release.set()


@pytest.fixture
def dead_url() -> str:
    """A 127.0.0.1 URL where nothing listens (the port was just free)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
