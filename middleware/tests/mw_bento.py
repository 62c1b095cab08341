"""Run ``bentoml serve mw_iris_service:Iris`` on a free 127.0.0.1 port (tests and benchmark)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from inferwatch_testkit import free_port

HERE = Path(__file__).resolve().parent
START_TIMEOUT_S = 90.0
# The iris features, in order, as the service names them for the middleware.
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass
class BentoServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


# What BentoML's worker (uvicorn) logs when the service cannot start; the arbiter then starts
# the worker again, and again, so the server never becomes ready and its process never exits.
STARTUP_FAILED = "Application startup failed"


def start_bentoml(
    home: Path,
    env: Mapping[str, str],
    service: str = "mw_iris_service:Iris",
    working_dir: Path = HERE,
) -> BentoServer:
    """Start ``bentoml serve <service>`` on a free port; does not wait for it."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "server.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            service,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--working-dir",
            str(working_dir),
        ],
        env={
            **os.environ,
            "BENTOML_DO_NOT_TRACK": "True",
            "BENTOML_HOME": str(home),
            "PYTHONPATH": os.pathsep.join(dict.fromkeys([str(working_dir), str(HERE)])),
            **env,
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        # Its own process group, so that its workers can be stopped with it.
        start_new_session=True,
    )
    return BentoServer(f"http://127.0.0.1:{port}", process, log)


def wait_ready(server: BentoServer, timeout: float = START_TIMEOUT_S) -> None:
    """Return once the server answers /readyz; raise, with its log, as soon as it cannot."""
    deadline = time.monotonic() + timeout
    why = f"was not ready in {timeout} s"
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            why = f"exited with status {code} before it was ready"
            break
        if STARTUP_FAILED in server.log.read_text(errors="replace"):
            why = "could not start its service"
            break
        try:
            if httpx.get(server.url + "/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_bentoml(server)
    tail = server.log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"bentoml serve at {server.url} {why}:\n{tail}")


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
