"""Fixtures every collector test area may use: a real collector (uvicorn on a free port) made
with settings of the test's choosing, span senders built on the OpenTelemetry SDK and its
OTLP/HTTP exporter (inferwatch_testkit.collector), and a database of the run's own on the local
PostgreSQL server (inferwatch_testkit.postgres)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from inferwatch.collector import load_config
from inferwatch_testkit.collector import RunningCollector, SpanSender, start_collector
from inferwatch_testkit.postgres import TemporaryDatabase, admin_url


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemporaryDatabase]:
    """This run's own database on the local PostgreSQL server, dropped at the end.

    Without a server: a failure under CI (which has one), a skip saying why elsewhere.
    """
    admin, why = admin_url()
    if admin is None:
        message = f"no PostgreSQL server on 127.0.0.1:5432 ({why})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must have one", pytrace=False)
        pytest.skip(f"{message}; CI runs these tests")
    database = TemporaryDatabase(admin)
    yield database
    database.drop()


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
