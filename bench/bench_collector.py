"""The collector end to end: OTLP ingest into SQLite, memory as rows grow, the label join.

Payload: OTLP/HTTP protobuf requests of 10 spans, each one monitored call of 100 rows x 20 float
features (one numeric block), a numeric output and 100 unique prediction ids (UUIDv7 text, as
the SDK makes them), posted by 4 client threads over loopback to ``inferwatch collector`` (one
uvicorn worker, SQLite in WAL mode with synchronous=FULL: every acknowledged request is
fsynced). The server under test is pinned to one core and the clients to the others, so the
clients' work does not count against it. Baselines, same run: a bare protobuf decode of the
same request bodies in one thread (``ExportTraceServiceRequest.FromString``, what the issue's
ratio is taken to), and the receiver alone over HTTP with a sink that drops the batches (what
decoding and HTTP cost). RSS of the collector process is read from /proc after each million
rows. Labels: POST /v1/labels with 10,000 labels a request, for ingested ids (joined) and for
unknown ids (pending).

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
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from inferwatch import contract
from inferwatch.frame import Frame, encode_frame, numeric

ROWS_PER_SPAN = 100
FEATURES = 20
SPANS_PER_REQUEST = 10
ROWS_PER_REQUEST = ROWS_PER_SPAN * SPANS_PER_REQUEST
CLIENTS = 4
# The core the server under test is pinned to (the "one core"); clients use the others.
SERVER_CORE = 1
LABELS_PER_REQUEST = 10_000
# The prediction ids' timestamp: a fixed time, so that ids are the same in every run.
_ID_EPOCH_MS = 1_767_225_600_000
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
                contract.ATTR_PREDICTION_IDS: [""] * ROWS_PER_SPAN,
                contract.ATTR_INPUT_FRAME: encode_frame(inputs),
                contract.ATTR_OUTPUT_FRAME: encode_frame(outputs),
            },
        )
        span.end(end_time=now + 2_000_000)
    request = encode_spans(memory.get_finished_spans())
    provider.shutdown()
    return request


class Requests:
    """The stream's request bodies by number: unique span ids and prediction ids.

    Both are fixed width, so each body is the template's bytes with them written in place:
    making a body costs the clients a few numpy calls, leaving the CPU to the collector.
    """

    def __init__(self) -> None:
        request = template()
        spans = request.resource_spans[0].scope_spans[0].spans
        # Distinct markers, then found in the serialized bytes to learn where each value lies.
        span_marks = [b"\xfe\xfd\xfc\xfb\xfa\xf9\xf8" + bytes([k]) for k in range(len(spans))]
        id_marks: list[str] = []
        for k, span in enumerate(spans):
            span.span_id = span_marks[k]
            for attribute in span.attributes:
                if attribute.key == contract.ATTR_PREDICTION_IDS:
                    for j, value in enumerate(attribute.value.array_value.values):
                        value.string_value = f"<{k:04d}:{j:04d}>".ljust(36, "#")
                        id_marks.append(value.string_value)
        self._template = request.SerializeToString()
        self._span_at = _positions(self._template, span_marks, 8)
        self._ids_at = _positions(self._template, [m.encode() for m in id_marks], 36)

    def body(self, number: int) -> bytes:
        data = bytearray(self._template)
        view = np.frombuffer(data, dtype=np.uint8)
        serials = number * SPANS_PER_REQUEST + 1 + np.arange(SPANS_PER_REQUEST, dtype=np.uint64)
        view[self._span_at] = np.frombuffer(serials.astype(">u8").tobytes(), np.uint8).reshape(
            -1, 8
        )
        view[self._ids_at] = id_text(serials)
        return bytes(data)


def _positions(data: bytes, marks: list[bytes], width: int) -> np.ndarray:
    starts = []
    for mark in marks:
        assert data.count(mark) == 1, "a marker is not unique in the template"
        starts.append(data.index(mark))
    return np.asarray(starts)[:, None] + np.arange(width)


_ID_DIGITS = [i for i in range(36) if i not in (8, 13, 18, 23)]


def id_text(serials: np.ndarray) -> np.ndarray:
    """The prediction ids of spans ``serials`` as (spans x rows, 36) ASCII: UUIDv7 text laid out
    as the SDK's (a millisecond, a 42-bit counter counting the rows, 32 bits that look random),
    derived from the serial so that labels can name them; a request's spans share a millisecond.
    """
    serial = np.repeat(serials.astype(np.uint64), ROWS_PER_SPAN)
    counter = serial * ROWS_PER_SPAN + np.tile(
        np.arange(ROWS_PER_SPAN, dtype=np.uint64), len(serials)
    )
    words = np.empty((serial.size, 2), dtype=">u8")
    # 48-bit milliseconds, version 7, the counter's top 12 bits; variant 10, its other 30 bits.
    words[:, 0] = ((_ID_EPOCH_MS + serial // SPANS_PER_REQUEST) << 16) | 0x7000 | (counter >> 30)
    scrambled = (counter * 2_654_435_761) & 0xFFFF_FFFF
    words[:, 1] = (1 << 63) | ((counter & (1 << 30) - 1) << 32) | scrambled
    digits = np.frombuffer(words.tobytes().hex().encode("ascii"), np.uint8).reshape(-1, 32)
    text = np.full((serial.size, 36), ord("-"), dtype=np.uint8)
    text[:, _ID_DIGITS] = digits
    return text


def prediction_id(request_number: int, span: int, row: int) -> str:
    serial = np.asarray([request_number * SPANS_PER_REQUEST + span + 1])
    return id_text(serial)[row].tobytes().decode("ascii")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far: unlike rows/s, hardly moved by other jobs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        requests = Requests()
        with httpx.Client(base_url=url, timeout=60) as http:
            while True:
                with lock:
                    number = next_number[0]
                    if number >= first + count:
                        return
                    next_number[0] += 1
                payload = requests.body(number)
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


def bare_decode_rate(requests: int = 200, passes: int = 5) -> float:
    """Rows a second of ``ExportTraceServiceRequest.FromString`` alone over the bench's bodies."""
    stream = Requests()
    bodies = [stream.body(number) for number in range(requests)]
    timings = []
    for _ in range(passes):
        started = time.perf_counter()
        for data in bodies:
            ExportTraceServiceRequest.FromString(data)
        timings.append(time.perf_counter() - started)
    return requests * ROWS_PER_REQUEST / statistics.median(timings)


def _on_server_core() -> None:
    """The server (collector or bare receiver) runs on one core, the clients on the others."""
    os.sched_setaffinity(0, {SERVER_CORE})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3_000_000, help="rows to ingest (millions)")
    args = parser.parse_args()
    started = datetime.now(UTC)
    load = os.getloadavg()[0]
    millions = max(1, args.rows // 1_000_000)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)) - {SERVER_CORE})
    per_million = 1_000_000 // ROWS_PER_REQUEST

    bare = bare_decode_rate()
    # Baseline: the receiver alone, dropping batches, 200k rows.
    port = free_port()
    null = subprocess.Popen(
        [sys.executable, "-c", _NULL_SERVER, str(port)], preexec_fn=_on_server_core
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", null)
        cpu_before = cpu_seconds(null.pid)
        baseline_s = ingest(f"http://127.0.0.1:{port}", 0, 200)
        baseline_cpu = (cpu_seconds(null.pid) - cpu_before) / (200 * ROWS_PER_REQUEST)
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
                "inferwatch",
                "collector",
                "--db",
                db,
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            preexec_fn=_on_server_core,
        )
        try:
            wait_ready(url, collector)
            rates: list[float] = []
            cpu: list[float] = []
            rss: list[tuple[int, float]] = [(0, rss_mb(collector.pid))]
            for m in range(millions):
                cpu_before = cpu_seconds(collector.pid)
                seconds = ingest(url, m * per_million, per_million)
                rates.append(1_000_000 / seconds)
                cpu.append((cpu_seconds(collector.pid) - cpu_before) / 1_000_000)
                rss.append(((m + 1) * 1_000_000, rss_mb(collector.pid)))
                print(
                    f"{m + 1}M rows: {rates[-1]:,.0f} rows/s, RSS {rss[-1][1]:.0f} MB", flush=True
                )
            files = {f.name: f.stat().st_size / 2**20 for f in Path(tmp).iterdir()}
            wal_mb = files.pop("bench.db-wal", 0.0)
            db_mb = sum(files.values())

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
                        sent = time.perf_counter()
                        response = http.post(
                            "/v1/labels", json={"model": "bench", "labels": labels}
                        )
                        timings.append(time.perf_counter() - sent)
                        counts = response.json()
                        assert counts[kind] == LABELS_PER_REQUEST, counts
                    label_rates[kind] = LABELS_PER_REQUEST / statistics.median(timings)
        finally:
            collector.terminate()
            collector.wait()

    median_rate = statistics.median(rates)
    median_cpu = statistics.median(cpu)
    after_first = [mb for n, mb in rss if n >= 1_000_000]
    lines = [
        "## collector",
        "",
        f"Ingest: OTLP/HTTP protobuf, {SPANS_PER_REQUEST} spans x {ROWS_PER_SPAN} rows x "
        f"{FEATURES} float features a request, UUIDv7 prediction ids; {CLIENTS} client threads "
        f"on one core of this 2-core machine, the collector (one uvicorn worker) pinned to the "
        "other; SQLite WAL synchronous=FULL (each group commit fsynced).",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC, {millions}M rows, load average {load:.2f} at the "
        "start.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| bare protobuf decode, one thread (baseline) | {bare:,.0f} rows/s |",
        f"| receiver alone over HTTP, batches dropped | {baseline:,.0f} rows/s |",
        f"| collector end to end, median per million rows | {median_rate:,.0f} rows/s |",
        f"| ratio to bare protobuf decode | {median_rate / bare:.3f} |",
        f"| ratio to receiver alone | {median_rate / baseline:.2f} |",
        f"| receiver alone, CPU time a row | {baseline_cpu * 1e6:.1f} us |",
        f"| collector, CPU time a row (median per million) | {median_cpu * 1e6:.1f} us |",
        *(f"| million {i + 1} | {r:,.0f} rows/s |" for i, r in enumerate(rates)),
        *(f"| RSS after {n / 1e6:.0f}M rows | {mb:.0f} MB |" for n, mb in rss),
        f"| largest RSS from 1M to {millions}M rows, over RSS at 1M | "
        f"{(max(after_first) / after_first[0] - 1) * 100:+.0f}% |",
        f"| database file (and WAL) after {millions}M rows | {db_mb:.0f} MB ({wal_mb:.0f} MB) |",
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
