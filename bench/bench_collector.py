"""The collector end to end: OTLP ingest into SQLite, memory as rows grow, the label join.

Payload: OTLP/HTTP protobuf requests of 10 spans, each one monitored call of 100 rows x 20 float
features (one numeric block), a numeric output and 100 unique prediction ids (UUIDv7 text, as
the SDK makes them), posted by 4 client threads over loopback to ``inferwatch collector`` (one
uvicorn worker, SQLite in WAL mode with synchronous=FULL: every acknowledged request is
fsynced). The server under test is pinned to one core and the clients to the others, so the
clients' work does not count against it. Baselines, same run: a bare Starlette endpoint on
uvicorn that only parses the same bodies (``ExportTraceServiceRequest.FromString``) and answers
200, what the issue's ratio is taken to (issue 15: goal 0.25x); a bare protobuf decode in one
thread; and the receiver alone over HTTP with a sink that drops the batches (what decoding and
HTTP cost). ``--before REV`` also runs the collector of that commit (``git archive`` of its
``sdk/src`` and ``collector/src`` ahead of the editable installs) on the same stream, and
``--phoenix`` Arize Phoenix (bench-only venv, telemetry off, its own temporary SQLite) on the same
spans with the frames as base64 strings (Phoenix cannot store bytes attributes), counting the
spans it actually stored. RSS of the collector process is read from /proc after each million
rows. Labels: POST /v1/labels with 10,000 labels a request, for ingested ids (joined) and for
unknown ids (pending).

Usage: python bench/bench_collector.py [--rows 3000000] [--before REV] [--phoenix]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import peer_env, peer_python
from run import machine

ROWS_PER_SPAN = 100
FEATURES = 20
SPANS_PER_REQUEST = 10
ROWS_PER_REQUEST = ROWS_PER_SPAN * SPANS_PER_REQUEST
CLIENTS = 4
# The core the server under test is pinned to (the "one core"); clients use the others.
SERVER_CORE = 1
LABELS_PER_REQUEST = 10_000
# The prediction ids' timestamp: when this process started, as the SDK's ids carry the time of
# their spans (templates are stamped now): the PostgreSQL label join looks for a UUIDv7 id in
# the day partitions near its time first. Labels name ids of the same process.
_ID_EPOCH_MS = time.time_ns() // 1_000_000
HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "collector.md"
PHOENIX = "arize-phoenix==20.26.0"

_NULL_SERVER = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from inferwatch.collector.receive.http import traces_endpoint

class Drop:
    async def submit(self, batches):
        return []

app = Starlette(routes=[Route("/v1/traces", traces_endpoint(Drop()), methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


_BARE_SERVER = """
import sys, uvicorn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

ANSWER = ExportTraceServiceResponse().SerializeToString()

async def parse(request):
    ExportTraceServiceRequest.FromString(await request.body())
    return Response(ANSWER, media_type="application/x-protobuf")

app = Starlette(routes=[Route("/v1/traces", parse, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def template(base64_frames: bool = False) -> ExportTraceServiceRequest:
    """The request of SPANS_PER_REQUEST spans; ``base64_frames`` sends each frame as the base64
    text of its bytes (what Phoenix can store) instead of a bytes attribute."""

    def frame(value: Frame) -> bytes | str:
        data = encode_frame(value)
        return base64.b64encode(data).decode() if base64_frames else data

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
                contract.ATTR_INPUT_FRAME: frame(inputs),
                contract.ATTR_OUTPUT_FRAME: frame(outputs),
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

    def __init__(self, base64_frames: bool = False) -> None:
        request = template(base64_frames)
        spans = request.resource_spans[0].scope_spans[0].spans
        # Distinct markers, then found in the serialized bytes to learn where each value lies.
        span_marks = [b"\xfe\xfd\xfc\xfb\xfa\xf9\xf8" + bytes([k]) for k in range(len(spans))]
        trace_marks = [b"\xee\xed\xec\xeb\xea\xe9\xe8\xe7" * 2 for _ in range(len(spans))]
        trace_marks = [mark[:-1] + bytes([k]) for k, mark in enumerate(trace_marks)]
        id_marks: list[str] = []
        for k, span in enumerate(spans):
            span.span_id = span_marks[k]
            span.trace_id = trace_marks[k]
            for attribute in span.attributes:
                if attribute.key == contract.ATTR_PREDICTION_IDS:
                    for j, value in enumerate(attribute.value.array_value.values):
                        value.string_value = f"<{k:04d}:{j:04d}>".ljust(36, "#")
                        id_marks.append(value.string_value)
        self._template = request.SerializeToString()
        self._span_at = _positions(self._template, span_marks, 8)
        self._trace_at = _positions(self._template, trace_marks, 16)
        self._ids_at = _positions(self._template, [m.encode() for m in id_marks], 36)

    def body(self, number: int) -> bytes:
        data = bytearray(self._template)
        view = np.frombuffer(data, dtype=np.uint8)
        serials = number * SPANS_PER_REQUEST + 1 + np.arange(SPANS_PER_REQUEST, dtype=np.uint64)
        view[self._span_at] = np.frombuffer(serials.astype(">u8").tobytes(), np.uint8).reshape(
            -1, 8
        )
        # A trace a span, as the SDK makes them: the serial in the trace id's last 8 bytes.
        view[self._trace_at[:, 8:]] = view[self._span_at]
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


def ingest(url: str, first: int, count: int, base64_frames: bool = False) -> float:
    """Post requests first .. first+count-1 from CLIENTS threads; returns seconds taken."""
    next_number = [first]
    lock = threading.Lock()
    done = [0]

    def client() -> None:
        requests = Requests(base64_frames)
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


def sources_at(rev: str, folder: Path) -> Path:
    """The SDK's and the collector's source at commit ``rev``, extracted into ``folder``."""
    folder.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", "--format=tar", rev, "sdk/src", "collector/src"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def server_rate(script: str, requests: int = 200) -> tuple[float, float]:
    """Rows/s and CPU time a row of a server script (taking a port) fed ``requests`` bodies."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", script, str(port)], preexec_fn=_on_server_core)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        cpu_before = cpu_seconds(server.pid)
        seconds = ingest(f"http://127.0.0.1:{port}", 0, requests)
        cpu = (cpu_seconds(server.pid) - cpu_before) / (requests * ROWS_PER_REQUEST)
    finally:
        server.terminate()
        server.wait()
    return requests * ROWS_PER_REQUEST / seconds, cpu


@dataclass
class CollectorRun:
    rates: list[float]
    cpu: list[float]
    rss: list[tuple[int, float]]
    db_mb: float
    wal_mb: float
    label_rates: dict[str, float]


def run_collector(folder: Path, millions: int, source: Path | None, labels: bool) -> CollectorRun:
    """This checkout's collector (or the one under ``source``) fed ``millions`` million rows."""
    env = dict(os.environ)
    if source is not None:
        paths = [str(source / "sdk" / "src"), str(source / "collector" / "src")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [*paths, env.get("PYTHONPATH")]))
    per_million = 1_000_000 // ROWS_PER_REQUEST
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    folder.mkdir()
    command = [sys.executable, "-m", "inferwatch", "collector", "--db"]
    command += [f"sqlite:///{folder}/bench.db", "--port", str(port), "--log-level", "warning"]
    collector = subprocess.Popen(command, env=env, preexec_fn=_on_server_core)
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
                f"{'before' if source else 'this'}: {m + 1}M rows: {rates[-1]:,.0f} rows/s, "
                f"{cpu[-1] * 1e6:.2f} us CPU a row, RSS {rss[-1][1]:.0f} MB",
                flush=True,
            )
        files = {f.name: f.stat().st_size / 2**20 for f in folder.iterdir()}
        wal_mb = files.pop("bench.db-wal", 0.0)
        db_mb = sum(files.values())
        label_rates = label_rate(url) if labels else {}
    finally:
        collector.terminate()
        collector.wait()
    return CollectorRun(rates, cpu, rss, db_mb, wal_mb, label_rates)


def label_rate(url: str) -> dict[str, float]:
    label_rates = {}
    with httpx.Client(base_url=url, timeout=120) as http:
        for kind in ("joined", "pending"):
            timings = []
            for r in range(10):
                labels = [
                    {
                        "prediction_id": prediction_id(r * 10 + s // 1000, (s // 100) % 10, s % 100)
                        if kind == "joined"
                        else f"unknown-{r}-{s}",
                        "label": float(s % 7),
                    }
                    for s in range(LABELS_PER_REQUEST)
                ]
                sent = time.perf_counter()
                response = http.post("/v1/labels", json={"model": "bench", "labels": labels})
                timings.append(time.perf_counter() - sent)
                counts = response.json()
                assert counts[kind] == LABELS_PER_REQUEST, counts
            label_rates[kind] = LABELS_PER_REQUEST / statistics.median(timings)
    return label_rates


def phoenix_rate(folder: Path, requests: int) -> tuple[float, int, str]:
    """Rows/s Phoenix stored (spans counted in its SQLite file), the spans stored, and what was
    run (or why not)."""
    python = peer_python("phoenix", [PHOENIX])
    if python is None:
        return 0.0, 0, f"{PHOENIX} could not be installed"
    folder.mkdir()
    port = free_port()
    database = folder / "phoenix.db"
    env = {
        **peer_env(),
        "PHOENIX_WORKING_DIR": str(folder),
        "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{database}",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(free_port()),
        "PHOENIX_HOST": "127.0.0.1",
    }
    server = subprocess.Popen(
        [str(python), "-m", "phoenix.server.main", "serve"],
        env=env,
        preexec_fn=_on_server_core,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "phoenix.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                tail = (folder / "phoenix.log").read_text()[-2000:]
                return 0.0, 0, f"Phoenix exited with {server.returncode}: {tail}"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                return 0.0, 0, "Phoenix did not start in 180 s"
            time.sleep(0.5)
        started = time.perf_counter()
        ingest(url, 0, requests, base64_frames=True)
        sent = requests * SPANS_PER_REQUEST
        # Phoenix answers 200 before storing: wait until the spans are in its database, or
        # until the count stops growing for 30 s.
        stored, changed = 0, time.perf_counter()
        while stored < sent and time.perf_counter() - changed < 30:
            time.sleep(0.2)
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as db:
                count = db.execute("SELECT count(*) FROM spans").fetchone()[0]
            if count != stored:
                stored, changed = count, time.perf_counter()
        seconds = changed - started
    finally:
        server.terminate()
        server.wait(30)
    return stored * ROWS_PER_SPAN / seconds, stored, PHOENIX


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=3_000_000, help="rows to ingest (millions)")
    parser.add_argument("--before", help="a commit whose collector is measured in the same run")
    parser.add_argument("--phoenix", action="store_true", help="measure Arize Phoenix too")
    parser.add_argument("--phoenix-requests", type=int, default=100)
    parser.add_argument("--no-labels", action="store_true", help="skip the label join")
    args = parser.parse_args()
    started = datetime.now(UTC)
    load = os.getloadavg()[0]
    millions = max(1, args.rows // 1_000_000)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)) - {SERVER_CORE})

    bare = bare_decode_rate()
    bare_http, bare_cpu = server_rate(_BARE_SERVER)
    print(f"bare parse endpoint: {bare_http:,.0f} rows/s, {bare_cpu * 1e6:.2f} us a row")
    baseline, baseline_cpu = server_rate(_NULL_SERVER)
    print(f"receiver alone: {baseline:,.0f} rows/s, {baseline_cpu * 1e6:.2f} us a row")

    with tempfile.TemporaryDirectory() as tmp:
        before = None
        if args.before:
            source = sources_at(args.before, Path(tmp) / "before-source")
            before = run_collector(Path(tmp) / "before", millions, source, labels=False)
        run = run_collector(Path(tmp) / "this", millions, None, labels=not args.no_labels)
        phoenix = None
        if args.phoenix:
            phoenix = phoenix_rate(Path(tmp) / "phoenix", args.phoenix_requests)

    median_rate = statistics.median(run.rates)
    median_cpu = statistics.median(run.cpu)
    after_first = [mb for n, mb in run.rss if n >= 1_000_000]
    lines = [
        "## collector",
        "",
        f"Ingest: OTLP/HTTP protobuf, {SPANS_PER_REQUEST} spans x {ROWS_PER_SPAN} rows x "
        f"{FEATURES} float features a request, UUIDv7 prediction ids; {CLIENTS} client threads "
        f"on one core of this 2-core machine, the collector (one uvicorn worker) pinned to the "
        'other; SQLite WAL synchronous=FULL (each group commit fsynced; `durability = "full"`).',
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC on {machine()}, {millions}M rows, load average "
        f"{load:.2f} at the start.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| bare protobuf decode, one thread | {bare:,.0f} rows/s |",
        f"| bare Starlette endpoint that only parses the protobuf (baseline) | "
        f"{bare_http:,.0f} rows/s, {bare_cpu * 1e6:.2f} us CPU a row |",
        f"| receiver alone over HTTP, batches dropped | {baseline:,.0f} rows/s, "
        f"{baseline_cpu * 1e6:.2f} us CPU a row |",
        f"| collector end to end, median per million rows | {median_rate:,.0f} rows/s |",
        f"| ratio to the bare parse endpoint, rows/s | {median_rate / bare_http:.3f}x |",
        f"| ratio to the bare parse endpoint, CPU a row (rows one core can take; goal 0.25x) "
        f"| {bare_cpu / median_cpu:.3f}x |",
        f"| ratio to receiver alone | {median_rate / baseline:.2f} |",
        f"| collector, CPU time a row (median per million) | {median_cpu * 1e6:.2f} us |",
        *(f"| million {i + 1} | {r:,.0f} rows/s |" for i, r in enumerate(run.rates)),
        *(f"| RSS after {n / 1e6:.0f}M rows | {mb:.0f} MB |" for n, mb in run.rss),
        f"| largest RSS from 1M to {millions}M rows, over RSS at 1M | "
        f"{(max(after_first) / after_first[0] - 1) * 100:+.0f}% |",
        f"| database file (and WAL) after {millions}M rows | {run.db_mb:.0f} MB "
        f"({run.wal_mb:.0f} MB) |",
    ]
    if run.label_rates:
        lines += [
            f"| labels joined (10,000 a request, median) | "
            f"{run.label_rates['joined']:,.0f} labels/s |",
            f"| labels pending (unknown ids) | {run.label_rates['pending']:,.0f} labels/s |",
        ]
    if before is not None:
        before_rate = statistics.median(before.rates)
        lines += [
            f"| collector of {args.before}, same stream, median | {before_rate:,.0f} rows/s "
            f"({before_rate / bare_http:.3f}x the bare parse endpoint) |",
            f"| collector of {args.before}, CPU time a row | "
            f"{statistics.median(before.cpu) * 1e6:.2f} us "
            f"({bare_cpu / statistics.median(before.cpu):.3f}x the bare parse endpoint's) |",
            f"| this collector over that of {args.before} | {median_rate / before_rate:.2f}x |",
        ]
    if phoenix is not None:
        phoenix_rows, phoenix_spans, what = phoenix
        if phoenix_rows:
            lines.append(
                f"| {what}, the same spans with base64 frames, stored | {phoenix_rows:,.0f} rows/s "
                f"({phoenix_spans:,} of {args.phoenix_requests * SPANS_PER_REQUEST:,} spans "
                f"stored; inferwatch {median_rate / phoenix_rows:.1f}x) |"
            )
        else:
            lines.append(f"| Arize Phoenix | not measured: {what} |")
    lines.append("")
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
