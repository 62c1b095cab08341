"""What inferwatch's test suites share: free ports, waiting for a condition, a movable clock, and
one way to serve an ASGI app on 127.0.0.1.

``inferwatch_testkit.otlp`` is an OTLP/HTTP test receiver; ``inferwatch_testkit.collector`` runs a
real collector and sends it spans through the OpenTelemetry SDK.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import uvicorn

__all__ = [
    "FakeClock",
    "RunningServer",
    "closed_port",
    "free_port",
    "serve_asgi",
    "wait_for",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> str:
    """The URL of a 127.0.0.1 port nothing listens on (connections are refused at once)."""
    return f"http://127.0.0.1:{free_port()}"


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = 0.05,
) -> Any:
    """Poll until ``condition()`` is truthy; its value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


class FakeClock:
    """A clock (seconds since the epoch) that only the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance_to(self, now: float) -> None:
        with self._lock:
            self.now = now


@dataclass
class RunningServer:
    """An ASGI app served by uvicorn in a thread; ``stop`` (or leaving ``with``) shuts it down."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_asgi(
    app: Any,
    *,
    lifespan: Literal["on", "off"] = "off",
    start_timeout: float = 30.0,
    port: int = 0,
) -> RunningServer:
    """Serve ``app`` on a free 127.0.0.1 port (or ``port``: a server coming back where it
    was); returns once uvicorn accepts connections.

    The socket is bound here and handed to uvicorn, so no other process can take the port in
    between. ``lifespan="on"`` runs the app's startup (a collector opens its workers there).
    """
    sock = socket.socket()
    if port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError("uvicorn exited before it started serving (see the log above)")
        if time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"uvicorn did not start within {start_timeout} s")
        time.sleep(0.01)
    return RunningServer(f"http://127.0.0.1:{port}", server, thread, sock)
