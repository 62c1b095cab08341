"""The collector end to end: OTLP ingest into SQLite, memory as rows grow, the label join.

Payload: OTLP/HTTP protobuf requests of 10 spans, each one monitored call of 100 rows x 20 float
features (one numeric block), a numeric output and 100 unique prediction ids, posted by 4
client threads over loopback to ``inferwatch collector`` (one uvicorn worker, SQLite in WAL
mode with synchronous=FULL: every acknowledged request is fsynced). Baseline, same run and same
load: the receiver alone with a sink that drops the batches (what decoding and HTTP cost).
RSS of the collector process is read from /proc after each million rows. Labels: POST
/v1/labels with 10,000 labels a request, for ingested ids (joined) and for unknown ids (pending).

Usage: python bench/bench_collector.py [--rows 3000000]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from inferwatch import contract
from inferwatch.frame import Frame, encode_frame, numeric
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ROWS_PER_SPAN = 100
FEATURES = 20
SPANS_PER_REQUEST = 10
ROWS_PER_REQUEST = ROWS_PER_SPAN * SPANS_PER_REQUEST
CLIENTS = 4
LABELS_PER_REQUEST = 10_000
RESULT = Path(__file__).resolve().parent / "results" / "collector.md"

_NULL_SERVER = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from inferwatch.collector.receive.http import traces_endpoint

class Drop:
    async def submit(self, batches):
        return None

app = Starlette(routes=[Route("/v1/traces", traces_endpoint(Drop()), methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def template() -> ExportTraceServiceRequest:
    rng = np.random.default_rng(0)
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer(contract.INSTRUMENTATION_SCOPE)
    now = time.time_ns()
    for _ in range(SPANS_PER_REQUEST):
        inputs = Frame(ROWS_PER_SPAN, (numeric("f", rng.normal(size=(ROWS_PER_SPAN, FEATURES))),))
        outputs = Frame(ROWS_PER_SPAN, (numeric("score", rng.random(ROWS_PER_SPAN)),))
        span = tracer.start_span(
            contract.SPAN_NAME,
            start_time=now,
            attributes={
                contract.ATTR_SCHEMA_VERSION: contract.SCHEMA_VERSION,
                contract.ATTR_MODEL_NAME: "bench",
                contract.ATTR_MODEL_VERSION: "1",
                contract.ATTR_TASK: "regression",
                contract.ATTR_PREDICTION_IDS: ["x"] * ROWS_PER_SPAN,
                contract.ATTR_INPUT_FRAME: encode_frame(inputs),
                contract.ATTR_OUTPUT_FRAME: encode_frame(outputs),
            },
        )
        span.end(end_time=now + 2_000_000)
    request = encode_spans(memory.get_finished_spans())
    provider.shutdown()
    return request


def body(request: ExportTraceServiceRequest, number: int) -> bytes:
    """Request ``number`` of the stream: unique span ids and prediction ids."""
    spans = request.resource_spans[0].scope_spans[0].spans
    for k, span in enumerate(spans):
        serial = number * SPANS_PER_REQUEST + k + 1
        span.span_id = serial.to_bytes(8, "big")
        for attribute in span.attributes:
            if attribute.key == contract.ATTR_PREDICTION_IDS:
                values = attribute.value.array_value.values
                for j in range(ROWS_PER_SPAN):
                    values[j].string_value = f"{serial}-{j}"
    return request.SerializeToString()


def prediction_id(request_number: int, span: int, row: int) -> str:
    return f"{request_number * SPANS_PER_REQUEST + span + 1}-{row}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            httpx.post(f"{url}/v1/traces", content=b"", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def ingest(url: str, first: int, count: int, on_progress: object = None) -> float:
    """Post requests first .. first+count-1 from CLIENTS threads; returns seconds taken."""
    next_number = [first]
    lock = threading.Lock()
    done = [0]

    def client() -> None:
        request = template()
        with httpx.Client(base_url=url, timeout=60) as http:
            while True:
                with lock:
                    number = next_number[0]
                    if number >= first + count:
                        return
                    next_number[0] += 1
                payload = body(request, number)
                while True:
                    response = http.post(
                        "/v1/traces",
                        content=payload,
                        headers={"content-type": "application/x-protobuf"},
                    )
                    if response.status_code == 200:
                        break
                    if response.status_code not in (429, 503):
                        raise RuntimeError(f"{response.status_code}: {response.text}")
                    time.sleep(float(response.headers.get("retry-after", "0.2")))
                with lock:
                    done[0] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3_000_000, help="rows to ingest (millions)")
    args = parser.parse_args()
    millions = max(1, args.rows // 1_000_000)
    per_million = 1_000_000 // ROWS_PER_REQUEST

    # Baseline: the receiver alone, dropping batches, 200k rows.
    port = free_port()
    null = subprocess.Popen([sys.executable, "-c", _NULL_SERVER, str(port)])
    try:
        wait_ready(f"http://127.0.0.1:{port}", null)
        baseline_s = ingest(f"http://127.0.0.1:{port}", 0, 200)
    finally:
        null.terminate()
        null.wait()
    baseline = 200 * ROWS_PER_REQUEST / baseline_s

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        db = f"sqlite:///{tmp}/bench.db"
        collector = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "inferwatch.collector.cli",
                "collector",
                "--db",
                db,
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
        )
        try:
            wait_ready(url, collector)
            rates: list[float] = []
            rss: list[tuple[int, float]] = [(0, rss_mb(collector.pid))]
            for m in range(millions):
                seconds = ingest(url, m * per_million, per_million)
                rates.append(1_000_000 / seconds)
                rss.append(((m + 1) * 1_000_000, rss_mb(collector.pid)))
                print(
                    f"{m + 1}M rows: {rates[-1]:,.0f} rows/s, RSS {rss[-1][1]:.0f} MB", flush=True
                )
            db_mb = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 2**20

            label_rates = {}
            with httpx.Client(base_url=url, timeout=120) as http:
                for kind in ("joined", "pending"):
                    timings = []
                    for r in range(10):
                        labels = [
                            {
                                "prediction_id": prediction_id(
                                    r * 10 + s // 1000, (s // 100) % 10, s % 100
                                )
                                if kind == "joined"
                                else f"unknown-{r}-{s}",
                                "label": float(s % 7),
                            }
                            for s in range(LABELS_PER_REQUEST)
                        ]
                        started = time.perf_counter()
                        response = http.post(
                            "/v1/labels", json={"model": "bench", "labels": labels}
                        )
                        timings.append(time.perf_counter() - started)
                        counts = response.json()
                        assert counts[kind] == LABELS_PER_REQUEST, counts
                    label_rates[kind] = LABELS_PER_REQUEST / statistics.median(timings)
        finally:
            collector.terminate()
            collector.wait()

    median_rate = statistics.median(rates)
    lines = [
        "## collector",
        "",
        f"Ingest: OTLP/HTTP protobuf, {SPANS_PER_REQUEST} spans x {ROWS_PER_SPAN} rows x "
        f"{FEATURES} float features a request, {CLIENTS} client threads on the same 2-core "
        "machine, one uvicorn worker, SQLite WAL synchronous=FULL (each group commit fsynced).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| receiver alone, batches dropped (baseline) | {baseline:,.0f} rows/s |",
        f"| collector end to end, median per million rows | {median_rate:,.0f} rows/s |",
        f"| ratio to baseline | {median_rate / baseline:.2f} |",
        *(f"| million {i + 1} | {r:,.0f} rows/s |" for i, r in enumerate(rates)),
        *(f"| RSS after {n / 1e6:.0f}M rows | {mb:.0f} MB |" for n, mb in rss),
        f"| database size after {millions}M rows | {db_mb:.0f} MB |",
        f"| labels joined (10,000 a request, median) | {label_rates['joined']:,.0f} labels/s |",
        f"| labels pending (unknown ids) | {label_rates['pending']:,.0f} labels/s |",
        "",
    ]
    if millions < 10:
        lines.append(
            f"Measured up to {millions}M rows (not 10M) to keep the run short on this machine."
        )
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
