"""Start the demo's servers as subprocesses, wait until they answer, and stop every one of them.

Each server runs in its own session (process group), so a Ctrl-C in the terminal reaches only
the demo, which then stops them in order. ``bentoml serve`` starts its workers in sessions of
their own: their pids are collected (psutil, a BentoML dependency) before the server is asked to
stop, and whatever is left of them afterwards is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

EXAMPLES = Path(__file__).resolve().parent
STOP_TIMEOUT_S = 15.0
# How often a wait says what it is waiting for.
PROGRESS_EVERY_S = 5.0


class StartError(RuntimeError):
    """A server exited or did not become ready; the message ends with its log's tail."""


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def wait_ready(self, path: str, timeout: float) -> None:
        """Poll ``GET path`` until it answers 200; StartError if the process dies or times out."""
        wait_ready([(self, path)], timeout)

    def answers(self, client: httpx.Client, path: str) -> bool:
        """Whether ``GET path`` answers 200 now; StartError if the process has exited."""
        if self.process.poll() is not None:
            raise StartError(
                f"{self.name} exited with status {self.process.returncode} before it was "
                f"ready; the end of {self.log}:\n{self.log_tail()}"
            )
        with contextlib.suppress(httpx.TransportError):
            return client.get(self.url + path).status_code == 200
        return False

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (a graceful stop), then SIGKILL for whatever of its tree is still alive."""
        try:
            family = [psutil.Process(self.process.pid), *_descendants(self.process.pid)]
        except psutil.NoSuchProcess:
            family = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        _, alive = psutil.wait_procs(family, timeout=timeout)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        psutil.wait_procs(alive, timeout=timeout)


def wait_ready(
    waits: Sequence[tuple[Server, str]],
    timeout: float,
    progress: Callable[[str], None] | None = None,
    every: float = PROGRESS_EVERY_S,
) -> None:
    """Poll each server's ``GET path`` until every one answers 200, telling ``progress`` every
    ``every`` seconds which ones it still waits for; StartError if one dies or times out."""
    began = time.monotonic()
    said = began
    pending = list(waits)
    with httpx.Client(timeout=1.0) as client:
        while True:
            pending = [
                (server, path) for server, path in pending if not server.answers(client, path)
            ]
            if not pending:
                return
            now = time.monotonic()
            if now - began >= timeout:
                server = pending[0][0]
                raise StartError(
                    f"{server.name} at {server.url} was not ready after {timeout:.0f} s; the end "
                    f"of {server.log}:\n{server.log_tail()}"
                )
            if progress is not None and now - said >= every:
                said = now
                names = " and ".join(server.name for server, _ in pending)
                progress(f"  waiting for {names} to start ({now - began:.0f} s)")
            time.sleep(0.1)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


class Servers:
    """The servers started so far; ``stop_all`` stops them in reverse order of starting."""

    def __init__(self) -> None:
        self.started: list[Server] = []

    def start(
        self,
        name: str,
        url: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Server:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            process = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        server = Server(name, url, process, log)
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        while self.started:
            self.started.pop().stop()


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def pick_port(preferred: int | None, host: str = "127.0.0.1") -> int:
    """``preferred`` when it is free, else a port the system picks."""
    if preferred and port_free(preferred, host):
        return preferred
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def collector_argv(config: Path, db: Path, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "inferwatch",
        "collector",
        "--config",
        str(config),
        "--db",
        f"sqlite:///{db.resolve()}",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def bentoml_argv(service: str, host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        service,
        "--host",
        host,
        "--port",
        str(port),
        "--working-dir",
        str(EXAMPLES),
    ]


def bentoml_env(home: Path, endpoint: str) -> dict[str, str]:
    """BentoML's private home, no usage tracking, and the collector for the middleware."""
    pythonpath = os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")]))
    return {
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "True",
        "INFERWATCH_ENDPOINT": endpoint,
        "PYTHONPATH": pythonpath,
    }
