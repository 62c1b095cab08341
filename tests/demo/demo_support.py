"""Helpers for the demo and example tests: real collectors started as subprocesses
(``python -m inferwatch collector``) on free ports, examples run as commands."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from demo_processes import Server, Servers, collector_argv, pick_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


COLLECTOR_TOML = """\
[collector]
tick_seconds = 0.5
"""


@dataclass
class RunningCollector:
    url: str
    server: Server

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0)


def start_collector(
    servers: Servers, workdir: Path, config: Path, db: Path | None = None
) -> RunningCollector:
    port = pick_port(None)
    url = f"http://127.0.0.1:{port}"
    argv = collector_argv(config, db or workdir / "collector.db", "127.0.0.1", port)
    server = servers.start("the collector", url, argv, workdir / f"collector-{port}.log")
    server.wait_ready("/healthz", 60.0)
    return RunningCollector(url, server)


def run_example(
    script: str, *args: str, timeout: float = 120.0, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python examples/<script> args...`` as a user would run it; fails with its output."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, (
        f"{script} exited with {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result


def processes_mentioning(text: str, exclude: Sequence[int] = ()) -> list[psutil.Process]:
    """Live processes whose command line or environment contains ``text``."""
    found = []
    for process in psutil.process_iter():
        if process.pid in exclude:
            continue
        try:
            cmdline = " ".join(process.cmdline())
            environ = " ".join(process.environ().values())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if text in cmdline or text in environ:
            found.append(process)
    return found
