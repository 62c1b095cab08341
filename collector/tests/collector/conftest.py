"""Fixtures: a real collector (uvicorn on a free port, or a subprocess), and a span sender
built on the OpenTelemetry SDK and its OTLP/HTTP exporter (both from inferwatch_testkit)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from inferwatch.collector.config import load_config
from inferwatch.frame import Frame, categorical, numeric
from inferwatch_testkit import free_port, wait_for
from inferwatch_testkit.collector import RunningCollector, SpanSender, start_collector


@pytest.fixture
def make_collector(tmp_path: Path) -> Iterator[Callable[..., RunningCollector]]:
    started: list[RunningCollector] = []

    def make(clock: Callable[[], float] = time.time, **overrides: Any) -> RunningCollector:
        settings: dict[str, Any] = {
            "db": f"sqlite:///{tmp_path / 'collector.db'}",
            "tick_seconds": 0.05,
            "checkpoint_interval_seconds": 0.2,
        }
        settings.update(overrides)
        models = settings.pop("models", None)
        config = load_config(None, **settings)
        if models:
            import dataclasses

            config = dataclasses.replace(
                config,
                models={name: config.defaults.merged(m, name) for name, m in models.items()},
            )
        running = start_collector(config, clock)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


@pytest.fixture
def make_sender() -> Iterator[Callable[..., SpanSender]]:
    senders: list[SpanSender] = []

    def make(url: str, headers: dict[str, str] | None = None) -> SpanSender:
        sender = SpanSender(url, headers)
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        sender.close()


def make_frames(
    rng: np.random.Generator, rows: int, classes: Sequence[str] = ("no", "yes")
) -> tuple[Frame, Frame]:
    """Inputs (two numeric features and a categorical one) and a predicted class."""
    x = rng.normal(size=(rows, 2))
    color = rng.choice(["red", "green", "blue"], size=rows)
    inputs = Frame(rows, (numeric("x", x, names=["x0", "x1"]), categorical("color", color)))
    predicted = [classes[int(v > 0)] for v in x[:, 0]]
    outputs = Frame(rows, (categorical("prediction", predicted),))
    return inputs, outputs


@dataclass
class CollectorProcess:
    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)


def start_collector_process(db: str, config_path: Path | None, log: Path) -> CollectorProcess:
    port = free_port()
    args = [sys.executable, "-m", "inferwatch", "collector", "--db", db]
    args += ["--port", str(port), "--log-level", "warning"]
    if config_path is not None:
        args += ["--config", str(config_path)]
    process = subprocess.Popen(
        args, stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ}
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"collector exited with {process.returncode}: {log.read_text()}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=30, what="the collector process")
    return CollectorProcess(url, process)
