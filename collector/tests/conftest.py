"""Fixtures every collector test area may use: a real collector (uvicorn on a free port) made
with settings of the test's choosing, and span senders built on the OpenTelemetry SDK and its
OTLP/HTTP exporter (inferwatch_testkit.collector)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inferwatch.collector import load_config
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
        running = start_collector(load_config(None, **settings), clock)
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
