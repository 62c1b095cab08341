"""A real collector process (``python -m inferwatch collector``) on a fixed port, as deployed:
stopped (SIGTERM) or killed (SIGKILL) and started again on the same port and database; its RSS
read with psutil, its stored rows and its Prometheus counters read over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from inferwatch_testkit import free_port, wait_for

# Generous: on a loaded 2-core machine the collector's imports alone can take a minute.
START_TIMEOUT_S = 300.0


class Collector:
    def __init__(self, folder: Path, db: Path | None = None, config: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = f"sqlite:///{db or folder / 'collector.db'}"
        self.log_path = folder / "collector.log"
        self.log = self.log_path.open("ab")
        self.config: Path | None = None
        if config is not None:
            self.config = folder / "collector.toml"
            self.config.write_text(config)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [sys.executable, "-m", "inferwatch", "collector", "--db", self.db]
        args += ["--port", str(self.port), "--log-level", "warning"]
        if self.config is not None:
            args += ["--config", str(self.config)]
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    def healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the collector exited with {self.process.returncode}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def start_and_wait(self) -> float:
        """Start; seconds until /healthz answers."""
        started = time.monotonic()
        self.start()
        wait_for(self.healthy, timeout=START_TIMEOUT_S, interval=0.02, what="the collector")
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(60)
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(60)
            self.process = None

    def rss_mib(self) -> float:
        assert self.process is not None
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def stored_rows(self, model: str) -> int:
        response = httpx.get(f"{self.url}/v1/models/{model}/windows", timeout=60)
        if response.status_code == 404:
            return 0
        response.raise_for_status()
        return sum(int(w["rows"]) for w in response.json()["windows"])

    def metric(self, name: str) -> float:
        """A sample of /metrics by its full name with labels, e.g.
        ``inferwatch_ingest_batches_total{outcome="duplicate"}``; 0 when absent."""
        text = httpx.get(f"{self.url}/metrics", timeout=60).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (5 min: {five:.1f})"
