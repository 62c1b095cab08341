"""Acknowledged means durable, and a re-sent span is counted once: across SIGKILL and restarts."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from inferwatch import contract
from inferwatch.frame import encode_frame
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import (
    T0,
    mixed_frames,
    start_collector_process,
    total_rows,
    windows,
)


def recorded_spans(count: int, rows: int, start: float = T0) -> list[ReadableSpan]:
    """Finished inferwatch spans, ready to export (and to export again)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer(contract.INSTRUMENTATION_SCOPE)
    rng = np.random.default_rng(11)
    for i in range(count):
        inputs, outputs = mixed_frames(rng, rows)
        start_ns = int((start + i * 0.01) * 1e9)
        span = tracer.start_span(
            contract.SPAN_NAME,
            start_time=start_ns,
            attributes={
                contract.ATTR_SCHEMA_VERSION: contract.SCHEMA_VERSION,
                contract.ATTR_MODEL_NAME: "durable",
                contract.ATTR_MODEL_VERSION: "1",
                contract.ATTR_PREDICTION_IDS: [f"d{i}-{j}" for j in range(rows)],
                contract.ATTR_INPUT_FRAME: encode_frame(inputs),
                contract.ATTR_OUTPUT_FRAME: encode_frame(outputs),
            },
        )
        span.end(end_time=start_ns + 1_000_000)
    spans = list(memory.get_finished_spans())
    provider.shutdown()
    return spans


def export(url: str, spans: Sequence[ReadableSpan], timeout: float = 10) -> bool:
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=timeout)
    try:
        return exporter.export(spans) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()


def test_resent_spans_are_counted_once(make_collector) -> None:
    clock = FakeClock(T0)
    collector = make_collector(clock)
    spans = recorded_spans(6, 20)
    assert export(collector.url, spans[:4])
    assert export(collector.url, spans[2:])  # two of these were sent already
    assert export(collector.url, spans[:1] * 3)  # and one three times in one request
    with collector.client() as client:
        assert total_rows(client, "durable") == 120
        (window,) = windows(client, "durable")
        detail = client.get(f"/v1/models/durable/windows/{window['id']}").json()
        assert detail["summary"]["requests"] == 6 and detail["summary"]["rows"] == 120
        metrics = client.get("/metrics").text
    # Repeats inside one request are dropped by the receiver, the others by the pipeline.
    assert "inferwatch_receiver_spans_duplicate_total 2.0" in metrics
    assert 'inferwatch_ingest_batches_total{outcome="duplicate"} 3.0' in metrics
    assert 'inferwatch_ingest_batches_total{outcome="stored"} 6.0' in metrics


def test_sigkill_mid_stream_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'collector.db'}"
    log = tmp_path / "collector.log"
    # A long checkpoint interval, so the kill finds batches journaled but not yet checkpointed.
    config = tmp_path / "collector.toml"
    config.write_text("[collector]\ncheckpoint_interval_seconds = 3600\n")
    spans = recorded_spans(400, 25)
    process = start_collector_process(db, config, log, ready_timeout=120)
    acked: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def send(worker: int) -> None:
        for index in range(worker, len(spans), 4):
            if stop.is_set():
                return
            if export(process.url, [spans[index]], timeout=2):
                with lock:
                    acked.add(index)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(acked) >= 150, what="150 acknowledged spans")
    process.kill()
    stop.set()
    for thread in threads:
        thread.join(60)
    acknowledged = set(acked)
    assert len(acknowledged) < len(spans)

    process = start_collector_process(db, None, log, ready_timeout=120)
    try:
        with httpx.Client(base_url=process.url, timeout=30) as client:
            rows = total_rows(client, "durable")
            # Acknowledged rows are all there; a request cut off by the kill may also be.
            assert len(acknowledged) * 25 <= rows <= (len(acknowledged) + 4) * 25
            # Send everything again, acknowledged or not: nothing may be counted twice.
            for start in range(0, len(spans), 50):
                assert export(process.url, spans[start : start + 50])
            assert total_rows(client, "durable") == len(spans) * 25
            (window,) = windows(client, "durable")

            def summary() -> dict[str, Any]:
                url = f"/v1/models/durable/windows/{window['id']}"
                found: dict[str, Any] = client.get(url).json()["summary"]
                return found

            # The window (long past, so closed and re-evaluated as late spans arrive) ends up
            # with the state the counts say: the journal was replayed, nothing twice.
            final = wait_for(
                lambda: (s := summary())["requests"] == len(spans) and s, what="re-evaluation"
            )
            assert final["rows"] == len(spans) * 25
            assert final["columns"]["rows"] == len(spans) * 25
    finally:
        process.kill()


def test_late_spans_reopen_evaluation_of_a_closed_window(make_collector) -> None:
    clock = FakeClock(T0)
    collector = make_collector(clock, models={"durable": {"window": 60, "allowed_lateness": 5}})
    spans = recorded_spans(5, 10)
    assert export(collector.url, spans[:4])
    with collector.client() as client:
        clock.advance_to(T0 + 100)
        (window,) = wait_for(
            lambda: (w := windows(client, "durable")) and w[0]["evaluated_at"] and w,
            what="close",
        )
        first = client.get(f"/v1/models/durable/windows/{window['id']}").json()
        assert first["closed"] and first["summary"]["requests"] == 4
        clock.advance_to(T0 + 200)
        assert export(collector.url, spans[4:])
        again = wait_for(
            lambda: (
                (d := client.get(f"/v1/models/durable/windows/{window['id']}").json())["summary"][
                    "requests"
                ]
                == 5
                and d
            ),
            what="re-evaluation",
        )
        assert again["rows"] == 50
        assert again["evaluated_at"] > first["evaluated_at"]
        assert (
            'inferwatch_window_evaluations_total{trigger="late"} 1.0' in client.get("/metrics").text
        )
