"""Fixtures for the middleware tests: a real OTLP/HTTP receiver (mw_receiver.py) and the SDK
exporting to it. Support modules are named mw_* so that they cannot clash with other areas'."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import inferwatch
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mw_receiver import Receiver, start_receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running, stop = start_receiver()
    yield running
    stop()


@pytest.fixture
def sdk(receiver: Receiver) -> Iterator[Receiver]:
    """The SDK initialised in this process, exporting to the receiver."""
    inferwatch.init(endpoint=receiver.url)
    yield receiver
    inferwatch.shutdown()
