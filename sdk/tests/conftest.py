"""Fixtures for the SDK tests: a real OTLP/HTTP receiver (inferwatch_testkit.otlp) and the SDK
exporting to it. Support modules are named sdk_* so that they cannot clash with other areas'."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import inferwatch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdk_frames import SpansOf

from inferwatch_testkit.otlp import OTLPReceiver as Receiver
from inferwatch_testkit.otlp import ReceivedSpan as Received
from inferwatch_testkit.otlp import start_otlp_receiver as start_receiver

_names = itertools.count()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = start_receiver()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _no_pipeline_left() -> Iterator[None]:
    # Every test starts and ends with inferwatch not initialised.
    inferwatch.shutdown(timeout=0.5)
    yield
    inferwatch.shutdown(timeout=0.5)


@pytest.fixture
def model() -> str:
    """A model name no other test uses, to pick this test's spans out of the receiver's."""
    return f"model-{next(_names)}"


@pytest.fixture
def live(receiver: Receiver) -> Receiver:
    """inferwatch initialised against the receiver; export is fast (0.05 s interval)."""
    inferwatch.init(endpoint=receiver.url, service_name="sdk-tests", flush_interval=0.05)
    return receiver


@pytest.fixture
def spans_of(receiver: Receiver) -> SpansOf:
    """Flush, then the spans of a model the receiver got; asserts how many there are.

    A successful flush means the receiver answered every export, so the spans are there.
    """

    def get(model: str, count: int = 1) -> list[Received]:
        assert inferwatch.flush(timeout=10.0), "flush did not finish"
        found = [s for s in receiver.spans if s.attributes.get("ml.model.name") == model]
        assert len(found) == count, f"expected {count} spans of {model}, got {len(found)}"
        return found

    return get
