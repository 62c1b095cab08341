"""The SDK through a collector's outage: export resumes as soon as the collector is back,
nothing is lost while the queue has room, and every recorded span ends in exactly one counter
(exported, dropped by reason, or failed), whatever the collector did."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

import inferwatch
from inferwatch import Stats
from inferwatch.collector import load_config
from inferwatch_testkit import RunningServer, closed_port, free_port, serve_asgi, wait_for
from inferwatch_testkit.collector import start_collector
from inferwatch_testkit.otlp import OTLPReceiver, receiver_app, start_otlp_receiver

# The retry waits of these tests: export must resume within a few of them.
MAX_RETRY_DELAY = 0.2
RESUME_WITHIN = 30 * MAX_RETRY_DELAY


def monitored(model: str) -> Callable[[object], float]:
    @inferwatch.monitor(model=model)
    def predict(x: object) -> float:
        return 1.0

    return predict


def delta(after: Stats, before: Stats) -> dict[str, int]:
    return {k: v - before.as_dict()[k] for k, v in after.as_dict().items()}


def settled(change: dict[str, int]) -> int:
    return change["spans_exported"] + change["spans_dropped"] + change["spans_failed"]


def test_export_resumes_soon_after_the_collector_returns_and_nothing_is_lost(model: str) -> None:
    port = free_port()  # nothing listens yet: the collector is down
    inferwatch.init(
        endpoint=f"http://127.0.0.1:{port}",
        flush_interval=0.05,
        export_timeout=2.0,
        retry_backoff=0.05,
        max_retry_delay=MAX_RETRY_DELAY,
    )
    before = inferwatch.stats()
    predict = monitored(model)
    for _ in range(20):
        predict({"a": 1.0})
    # An outage of many retries, long enough for any growing backoff to pass the cap.
    wait_for(lambda: inferwatch.stats().export_failures - before.export_failures >= 15, 30)
    for _ in range(20):
        predict({"a": 2.0})
    receiver = start_otlp_receiver(port)
    try:
        got = receiver.predictions(model, 40, timeout=RESUME_WITHIN)
        assert len(got) == 40, f"{len(got)} of 40 spans within {RESUME_WITHIN} s of the return"
        wait_for(lambda: delta(inferwatch.stats(), before)["spans_pending"] == 0, RESUME_WITHIN)
        change = delta(inferwatch.stats(), before)
        assert change["spans_exported"] == 40
        assert change["spans_dropped"] == 0 and change["spans_failed"] == 0
    finally:
        inferwatch.shutdown(timeout=1.0)
        receiver.stop()


def _slow(app: Any, delay: float) -> Any:
    async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(delay)
        await app(scope, receive, send)

    return slow


@dataclass
class Scenario:
    endpoint: str
    api_key: str | None = None
    max_queue_spans: int = 2048
    outcome: str = "spans_exported"


@pytest.fixture
def scenario(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scenario]:
    kind = request.param
    stops: list[Callable[[], None]] = []
    if kind == "up":
        receiver = start_otlp_receiver()
        stops.append(receiver.stop)
        yield Scenario(receiver.url)
    elif kind == "down":
        yield Scenario(closed_port(), outcome="spans_dropped_shutdown")
    elif kind == "down, small queue":
        yield Scenario(closed_port(), max_queue_spans=50, outcome="spans_dropped_queue_full")
    elif kind == "slow":
        # Answers after 1 s: shutdown comes while requests are in flight.
        served: RunningServer = serve_asgi(_slow(receiver_app(OTLPReceiver()), 1.0))
        stops.append(served.stop)
        yield Scenario(served.url, outcome="spans_dropped_shutdown")
    elif kind == "rejecting":
        # A real collector that requires a key the SDK does not have: 401, never retried.
        collector = start_collector(
            load_config(None, db=f"sqlite:///{tmp_path / 'c.db'}", api_keys=["right"])
        )
        stops.append(collector.stop)
        yield Scenario(collector.url, api_key="wrong", outcome="spans_dropped_rejected")
    inferwatch.shutdown(timeout=0.5)
    for stop in stops:
        stop()


@pytest.mark.parametrize(
    "scenario", ["up", "down", "down, small queue", "slow", "rejecting"], indirect=True
)
def test_every_recorded_span_ends_in_exactly_one_counter(scenario: Scenario, model: str) -> None:
    inferwatch.init(
        endpoint=scenario.endpoint,
        api_key=scenario.api_key,
        flush_interval=0.05,
        max_export_batch=64,
        max_queue_spans=scenario.max_queue_spans,
        retry_backoff=0.05,
        max_retry_delay=MAX_RETRY_DELAY,
    )
    before = inferwatch.stats()
    predict = monitored(model)
    for i in range(300):
        predict({"a": float(i)})
    inferwatch.flush(timeout=0.5)
    inferwatch.shutdown(timeout=0.3)
    change = delta(inferwatch.stats(), before)
    assert change["spans_recorded"] == 300
    assert change["spans_pending"] == 0
    assert settled(change) == 300, change
    assert change[scenario.outcome] > 0, change
    # A request abandoned at shutdown that is answered later changes no span's counter.
    wait_for(lambda: not any(t.name == "inferwatch-export" for t in threading.enumerate()), 10)
    later = delta(inferwatch.stats(), before)
    assert {k: v for k, v in later.items() if k.startswith("spans_")} == {
        k: v for k, v in change.items() if k.startswith("spans_")
    }


def test_calls_recorded_while_shutting_down_are_counted(model: str) -> None:
    inferwatch.init(endpoint=closed_port(), flush_interval=0.05, max_retry_delay=MAX_RETRY_DELAY)
    before = inferwatch.stats()
    predict = monitored(model)
    stop = threading.Event()

    def keep_predicting() -> None:
        while not stop.is_set():
            predict({"a": 1.0})

    thread = threading.Thread(target=keep_predicting)
    thread.start()
    wait_for(lambda: inferwatch.stats().spans_recorded - before.spans_recorded > 100)
    inferwatch.shutdown(timeout=0.2)
    stop.set()
    thread.join()
    change = delta(inferwatch.stats(), before)
    assert change["spans_pending"] == 0
    assert settled(change) == change["spans_recorded"] > 100


CHILD = """
import json, sys
import inferwatch

inferwatch.init(endpoint=sys.argv[1], flush_interval=0.05, max_retry_delay=0.1)

@inferwatch.monitor(model="noisy")
def predict(x):
    return 1.0

while inferwatch.stats().export_failures < 20:
    predict({"a": 1.0})
    inferwatch.flush(timeout=0.05)
inferwatch.shutdown(timeout=0.2)
print(json.dumps(inferwatch.stats().as_dict()))
"""


def test_a_down_collector_does_not_flood_the_model_servers_stderr(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    done = subprocess.run(
        [sys.executable, str(script), closed_port()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Transient error" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    # inferwatch's own line, once: the failures are counted in stats().
    assert len(lines) <= 1, lines
    assert '"export_failures": ' in done.stdout


def _partly_rejecting(rejected: int) -> Any:
    """An OTLP receiver that stores nothing and names ``rejected`` spans of each request as
    rejected (an OTLP partial success), as the collector does for spans it cannot take."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        while (await receive()).get("more_body"):
            pass
        answer = ExportTraceServiceResponse(
            partial_success=ExportTracePartialSuccess(rejected_spans=rejected)
        ).SerializeToString()
        headers = [(b"content-type", b"application/x-protobuf")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


def test_spans_a_partial_success_rejects_are_counted_as_rejected(model: str) -> None:
    with serve_asgi(_partly_rejecting(1)) as served:
        inferwatch.init(endpoint=served.url, flush_interval=0.05)
        before = inferwatch.stats()
        predict = monitored(model)
        for _ in range(3):
            predict({"a": 1.0})
            assert inferwatch.flush(timeout=10.0)  # one span a request
        change = delta(inferwatch.stats(), before)
        assert change["spans_dropped_rejected"] == 3 and change["spans_exported"] == 0
