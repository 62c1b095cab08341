"""Run ``bentoml serve mw_iris_service:Iris`` on a free 127.0.0.1 port (tests and benchmark)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
START_TIMEOUT_S = 90.0
# The iris features, in order, as the service names them for the middleware.
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass
class BentoServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


# Its own copy, not testkit's: BentoML's workers import this module with only tests/middleware
# on their path.
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_bentoml(home: Path, env: Mapping[str, str]) -> BentoServer:
    """Start ``bentoml serve mw_iris_service:Iris`` on a free port; does not wait for it."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "server.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            "mw_iris_service:Iris",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--working-dir",
            str(HERE),
        ],
        env={
            **os.environ,
            "BENTOML_DO_NOT_TRACK": "True",
            "BENTOML_HOME": str(home),
            "PYTHONPATH": str(HERE),
            **env,
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        # Its own process group, so that its workers can be stopped with it.
        start_new_session=True,
    )
    return BentoServer(f"http://127.0.0.1:{port}", process, log)


def wait_ready(server: BentoServer, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if httpx.get(server.url + "/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_bentoml(server)
    tail = server.log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"bentoml serve at {server.url} was not ready in {timeout} s:\n{tail}")


def stop_bentoml(server: BentoServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(10)
    # The workers of a stopped server, if any are left, are in the group we created.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
