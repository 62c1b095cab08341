"""Fixtures for the middleware tests: a real OTLP/HTTP receiver (inferwatch_testkit.otlp) and the
SDK exporting to it. Support modules are named mw_* so that they cannot clash with other areas'."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import inferwatch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inferwatch_testkit.otlp import OTLPReceiver as Receiver
from inferwatch_testkit.otlp import start_otlp_receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with start_otlp_receiver() as running:
        yield running


@pytest.fixture
def sdk(receiver: Receiver) -> Iterator[Receiver]:
    """The SDK initialised in this process, exporting to the receiver."""
    inferwatch.init(endpoint=receiver.url)
    yield receiver
    inferwatch.shutdown()
