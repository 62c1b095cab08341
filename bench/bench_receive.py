"""Receiver throughput: decoding OTLP export requests into PredictionBatches.

Payload: requests of 50 spans, each one monitored call of 100 rows x 20 float features (one
numeric block with names), a numeric output and 100 prediction ids, built by the OpenTelemetry
SDK's own encoder. Baseline: protobuf's bare parse of the same bytes
(ExportTraceServiceRequest.FromString), which any receiver pays. Goal 200,000 rows/s on one core,
50,000 at least. Also compared: the OTLP JSON decoder against the alternative of rewriting ids
and calling json_format.ParseDict (which would still leave the protobuf walk to do), and the
whole endpoint over HTTP: uvicorn in a child process with a sink that drops what it is given.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.routing import Route

from inferwatch import contract
from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.collector.receive.http import traces_endpoint
from inferwatch.collector.receive.otlp import decode_export_request
from inferwatch.frame import Frame, encode_frame, numeric

ROWS_PER_SPAN = 100
FEATURES = 20
SPANS_PER_REQUEST = 50
REQUESTS = 20
REPEATS = 7
GOAL_ROWS_PER_S = 200_000
MINIMUM_ROWS_PER_S = 50_000
RESULT = Path(__file__).resolve().parent / "results" / "receive.md"


def build_requests() -> list[ExportTraceServiceRequest]:
    rng = np.random.default_rng(0)
    names = [f"f{j}" for j in range(FEATURES)]
    requests = []
    for _ in range(REQUESTS):
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer(contract.INSTRUMENTATION_SCOPE)
        for _ in range(SPANS_PER_REQUEST):
            features = rng.normal(size=(ROWS_PER_SPAN, FEATURES))
            outputs = Frame(ROWS_PER_SPAN, (numeric("score", features[:, 0], role="output"),))
            with tracer.start_as_current_span(contract.SPAN_NAME) as span:
                span.set_attributes(
                    {
                        contract.ATTR_SCHEMA_VERSION: contract.SCHEMA_VERSION,
                        contract.ATTR_MODEL_NAME: "credit",
                        contract.ATTR_MODEL_VERSION: "3",
                        contract.ATTR_TASK: "regression",
                        contract.ATTR_ROWS: ROWS_PER_SPAN,
                        contract.ATTR_PREDICTION_IDS: [
                            str(uuid.uuid4()) for _ in range(ROWS_PER_SPAN)
                        ],
                        contract.ATTR_INPUT_FRAME: encode_frame(
                            Frame(ROWS_PER_SPAN, (numeric("features", features, names),))
                        ),
                        contract.ATTR_OUTPUT_FRAME: encode_frame(outputs),
                    }
                )
        provider.shutdown()
        requests.append(encode_spans(exporter.get_finished_spans()))
    return requests


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId"):
                    span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


def parse_dict_baseline(body: bytes) -> ExportTraceServiceRequest:
    """The alternative JSON path: hex ids back to base64, then protobuf's ParseDict."""
    document: dict[str, Any] = json.loads(body)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    return json_format.ParseDict(document, ExportTraceServiceRequest(), ignore_unknown_fields=True)


def touch_every_value(body: bytes) -> None:
    """Parse, then read every attribute value out: the least any Python decoder must do."""
    for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for kv in span.attributes:
                    value = kv.value
                    if value.HasField("array_value"):
                        [item.string_value for item in value.array_value.values]
                    else:
                        getattr(value, value.WhichOneof("value"))


def rows_per_second(work: Callable[[bytes], object], bodies: list[bytes]) -> tuple[float, float]:
    """Median rows/s over REPEATS passes through every body, and the median ms per request."""
    rows = len(bodies) * SPANS_PER_REQUEST * ROWS_PER_SPAN
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for body in bodies:
            work(body)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return rows / median, median / len(bodies) * 1000


class DropSink:
    async def submit(self, batches: list[PredictionBatch]) -> None:
        return None


def serve(port: int) -> None:
    """The endpoint alone on uvicorn (run in a child process by ``http_rows_per_second``)."""
    endpoint = traces_endpoint(DropSink())
    app = Starlette(routes=[Route(contract.TRACES_PATH, endpoint, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def http_rows_per_second(bodies: list[bytes]) -> tuple[float, float]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    url = f"http://127.0.0.1:{port}{contract.TRACES_PATH}"
    try:
        with httpx.Client(headers={"Content-Type": "application/x-protobuf"}) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.post(url, content=b"")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

            def post(body: bytes) -> None:
                client.post(url, content=body).raise_for_status()

            return rows_per_second(post, bodies)
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    requests = build_requests()
    protobuf = [r.SerializeToString() for r in requests]
    jsons = [otlp_json(r) for r in requests]
    gzipped = [gzip.compress(b) for b in protobuf]
    decoded = decode_export_request(protobuf[0], "application/x-protobuf")
    assert len(decoded.batches) == SPANS_PER_REQUEST and not decoded.batches[0].issues

    cases: list[tuple[str, Callable[[bytes], object], list[bytes]]] = [
        ("protobuf: bare FromString (baseline)", ExportTraceServiceRequest.FromString, protobuf),
        ("protobuf: parse + read every attribute value", touch_every_value, protobuf),
        (
            "protobuf: decode_export_request",
            lambda b: decode_export_request(b, "application/x-protobuf"),
            protobuf,
        ),
        (
            "protobuf + gzip: gunzip + decode_export_request",
            lambda b: decode_export_request(gzip.decompress(b), "application/x-protobuf"),
            gzipped,
        ),
        (
            "OTLP JSON: decode_export_request",
            lambda b: decode_export_request(b, "application/json"),
            jsons,
        ),
        ("OTLP JSON: fix ids + ParseDict only (alternative)", parse_dict_baseline, jsons),
    ]
    results = []
    for name, work, bodies in cases:
        rate, ms = rows_per_second(work, bodies)
        results.append((name, rate, ms))
        print(f"{name:55s} {rate:12,.0f} rows/s {ms:8.2f} ms/request", flush=True)

    name = "HTTP: POST to the endpoint on uvicorn (2 processes)"
    rate, ms = http_rows_per_second(protobuf)
    results.append((name, rate, ms))
    print(f"{name:55s} {rate:12,.0f} rows/s {ms:8.2f} ms/request", flush=True)

    baseline = results[0][1]
    lines = [
        "## Receive: OTLP decode (`bench/bench_receive.py`)",
        "",
        f"Requests of {SPANS_PER_REQUEST} spans x {ROWS_PER_SPAN} rows x {FEATURES} float "
        f"features (+ 1 output, {ROWS_PER_SPAN} ids); protobuf "
        f"{statistics.mean(map(len, protobuf)) / 1024:.0f} KiB, gzip "
        f"{statistics.mean(map(len, gzipped)) / 1024:.0f} KiB, OTLP JSON "
        f"{statistics.mean(map(len, jsons)) / 1024:.0f} KiB a request. One core, median of "
        f"{REPEATS} passes over {REQUESTS} requests. Goal {GOAL_ROWS_PER_S:,} rows/s, "
        f"minimum {MINIMUM_ROWS_PER_S:,}.",
        "",
        "| path | rows/s | ms / request | time vs bare protobuf parse |",
        "|---|---:|---:|---:|",
    ]
    for name, rate, ms in results:
        lines.append(f"| {name} | {rate:,.0f} | {ms:.2f} | {baseline / rate:.1f}x |")
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]))
    else:
        main()
