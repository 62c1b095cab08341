"""The export pipeline: bounded queue, flush/shutdown deadlines with a dead collector, sampling,
trace linkage to the application's spans, headers, re-initialisation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler
from sdk_frames import SpansOf

import inferwatch
from inferwatch_testkit import closed_port, wait_for
from inferwatch_testkit.otlp import OTLPReceiver as Receiver
from inferwatch_testkit.otlp import start_otlp_receiver as start_receiver

# What a deadline may overrun by: thread wake-ups on a shared 2-core machine.
MARGIN = 0.5


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def monitored(model: str) -> Callable[[object], float]:
    @inferwatch.monitor(model=model)
    def predict(x: object) -> float:
        return 1.0

    return predict


def test_flush_and_shutdown_return_within_their_timeout_when_the_collector_is_down(
    model: str,
) -> None:
    # A long export timeout: the SDK keeps retrying the closed port meanwhile.
    inferwatch.init(endpoint=closed_port(), export_timeout=30.0, flush_interval=0.05)
    predict = monitored(model)
    for _ in range(10):
        predict({"a": 1.0})

    start = time.monotonic()
    assert inferwatch.flush(timeout=0.5) is False
    assert time.monotonic() - start < 0.5 + MARGIN

    start = time.monotonic()
    assert inferwatch.shutdown(timeout=0.5) is False
    assert time.monotonic() - start < 0.5 + MARGIN
    # Shutting down interrupts the wait between retries: the worker thread ends soon after.
    assert wait_until(
        lambda: not any(t.name == "inferwatch-export" for t in threading.enumerate()), 5.0
    )
    assert predict({"a": 2.0}) == 1.0  # after shutdown: runs, records nothing


def test_flush_returns_true_once_exported(live: Receiver, model: str) -> None:
    predict = monitored(model)
    for _ in range(5):
        predict({"a": 1.0})
    start = time.monotonic()
    assert inferwatch.flush(timeout=10.0) is True
    assert time.monotonic() - start < 5.0
    assert sum(s.attributes.get("ml.model.name") == model for s in live.spans) == 5


def test_full_queue_drops_and_counts(model: str) -> None:
    inferwatch.init(
        endpoint=closed_port(),
        export_timeout=30.0,
        max_queue_spans=5,
        max_export_batch=5,
        flush_interval=0.05,
    )
    predict = monitored(model)
    before = inferwatch.stats()
    for _ in range(40):
        assert predict({"a": 1.0}) == 1.0
    after = inferwatch.stats()
    assert after.spans_recorded - before.spans_recorded == 40
    # At most 5 queued and 5 taken by the stuck export; every other span was dropped.
    assert after.spans_dropped_queue_full - before.spans_dropped_queue_full >= 30


def test_queue_is_bounded_by_bytes(model: str) -> None:
    inferwatch.init(
        endpoint=closed_port(), export_timeout=30.0, max_queue_bytes=20_000, flush_interval=0.05
    )
    predict = monitored(model)
    before = inferwatch.stats()
    image = np.zeros((1, 784))  # 6.3 KB a span: three fit in 20,000 bytes
    for _ in range(20):
        predict(image)
    after = inferwatch.stats()
    assert after.spans_recorded - before.spans_recorded == 20
    assert after.spans_dropped - before.spans_dropped >= 20 - 6


def test_spans_wait_while_the_collector_is_down_and_are_counted_at_shutdown(model: str) -> None:
    inferwatch.init(
        endpoint=closed_port(), export_timeout=0.3, flush_interval=0.05, max_retry_delay=0.1
    )
    before = inferwatch.stats()
    predict = monitored(model)
    for _ in range(3):
        predict({"a": 1.0})
    # Each failed attempt is counted and retried; the spans are kept meanwhile.
    wait_for(lambda: inferwatch.stats().export_failures - before.export_failures >= 3)
    waiting = inferwatch.stats()
    assert waiting.spans_pending - before.spans_pending == 3
    assert waiting.spans_failed == before.spans_failed
    assert waiting.spans_dropped == before.spans_dropped
    assert inferwatch.shutdown(timeout=0.2) is False
    after = inferwatch.stats()
    assert after.spans_dropped_shutdown - before.spans_dropped_shutdown == 3
    assert after.spans_pending == before.spans_pending
    assert after.spans_exported == before.spans_exported


def test_sample_rate_zero_records_nothing_but_still_gives_ids(
    receiver: Receiver, model: str
) -> None:
    inferwatch.init(endpoint=receiver.url, sample_rate=0.0)
    predict = monitored(model)
    before = inferwatch.stats()
    for _ in range(20):
        predict([{"a": 1.0}, {"a": 2.0}])
    assert len(inferwatch.last_prediction_ids()) == 2
    assert inferwatch.flush(timeout=10.0)
    assert not [s for s in receiver.spans if s.attributes.get("ml.model.name") == model]
    assert inferwatch.stats().spans_unsampled - before.spans_unsampled == 20


def test_sample_rate_samples_each_call(receiver: Receiver, model: str) -> None:
    inferwatch.init(endpoint=receiver.url, sample_rate=0.5)
    predict = monitored(model)
    calls = 400
    for _ in range(calls):
        predict({"a": 1.0})
    assert inferwatch.flush(timeout=10.0)
    spans = [s for s in receiver.spans if s.attributes.get("ml.model.name") == model]
    # Binomial(400, 0.5): sd 10, so +-60 is six sd.
    assert 140 <= len(spans) <= 260
    assert {s.attributes["inferwatch.sample_rate"] for s in spans} == {0.5}


@pytest.mark.parametrize("app_sampler", [ALWAYS_OFF, ALWAYS_ON], ids=["app-0%", "app-100%"])
def test_span_is_a_child_of_the_applications_active_span(
    live: Receiver, model: str, spans_of: SpansOf, app_sampler: Sampler
) -> None:
    # The application's own provider (like BentoML's, which samples 0% by default).
    app = TracerProvider(sampler=app_sampler, shutdown_on_exit=False)
    global_before = trace.get_tracer_provider()
    predict = monitored(model)
    with app.get_tracer("app").start_as_current_span("request") as request:
        predict({"a": 1.0})
    (span,) = spans_of(model)
    context = request.get_span_context()
    assert span.trace_id == format(context.trace_id, "032x")
    assert span.parent_span_id == format(context.span_id, "016x")
    assert trace.get_tracer_provider() is global_before  # inferwatch never sets the global one


def test_without_an_active_span_it_is_a_root(live: Receiver, model: str, spans_of: SpansOf) -> None:
    monitored(model)({"a": 1.0})
    (span,) = spans_of(model)
    assert span.parent_span_id == "" and len(span.trace_id) == 32


def test_api_key_header_and_gzip(receiver: Receiver, model: str, spans_of: SpansOf) -> None:
    inferwatch.init(
        endpoint=receiver.url, api_key="sekret", compression="gzip", flush_interval=0.05
    )
    monitored(model)({"a": 1.0})
    (span,) = spans_of(model)
    assert span.headers["authorization"] == "Bearer sekret"
    assert span.headers["content-encoding"] == "gzip"
    assert span.headers["content-type"] == "application/x-protobuf"


def test_uncompressed_by_default(receiver: Receiver, model: str, spans_of: SpansOf) -> None:
    # Packed float frames barely compress; gzip would cost more CPU than the export itself.
    inferwatch.init(endpoint=receiver.url, flush_interval=0.05)
    monitored(model)({"a": 1.0})
    (span,) = spans_of(model)
    assert "content-encoding" not in span.headers
    assert "authorization" not in span.headers
    assert span.headers["content-type"] == "application/x-protobuf"


def test_init_again_moves_to_the_new_endpoint(receiver: Receiver, model: str) -> None:
    other = start_receiver()
    try:
        inferwatch.init(endpoint=receiver.url, flush_interval=0.05)
        predict = monitored(model)
        predict({"a": 1.0})
        inferwatch.init(endpoint=other.url, flush_interval=0.05)
        predict({"a": 2.0})
        assert inferwatch.flush(timeout=10.0)
        first = [s for s in receiver.spans if s.attributes.get("ml.model.name") == model]
        second = [s for s in other.spans if s.attributes.get("ml.model.name") == model]
        # The first pipeline was flushed when it was replaced.
        assert len(first) == 1 and len(second) == 1
    finally:
        other.stop()
