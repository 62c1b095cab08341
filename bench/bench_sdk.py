"""What monitoring adds to a predict call, against a bare OpenTelemetry span in the same run.

(a) baseline: a span from a TracerProvider with a BatchSpanProcessor to a no-op exporter,
    carrying the call's 20 feature values as 20 attributes, the cheapest way
    (``start_span(attributes=...).end()``); (a') the same the idiomatic way
    (``with start_as_current_span(): set_attributes(...)``);
(b) a @monitor-decorated single-row predict (dict of 20 features), minus the bare function,
    through inferwatch's own pipeline to a no-op exporter; goal: at most 1.3x (a);
(c) a 1,000-row x 20-feature batch (numpy array; also a DataFrame and a list of dicts), added
    cost minus the bare function; goal under 1 ms;
(d) single-row predict latency with the collector down (a closed port) and up (a receiver in a
    child process), over a run long enough for several exports.
Also: 1,000 prediction ids. Medians over many repetitions; each repetition times a loop of
calls, interleaved with the other cases, and reports three numbers a call:
- wall-clock time (inflated when the shared machine is busy),
- CPU time of the calling thread: what the predict call itself pays (inferwatch builds and
  exports the span in its export thread, off the call's path),
- CPU time of the whole process, after waiting for the pipeline to build and export every span
  of the loop: the total work, export thread included (BatchSpanProcessor's thread likewise).
The exit status is 1 when (b)/(a) in calling-thread CPU misses its goal.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import inferwatch
from inferwatch import export, ids
from inferwatch.config import Settings
from inferwatch.otlp_http import Attempt, Delivered, SpanSender
from inferwatch.recorder import PredictionRecorder

RESULT = Path(__file__).resolve().parent / "results" / "sdk.md"
FEATURES = 20
BATCH_ROWS = 1000
REPEATS = 41
SINGLE_LOOP = 300
BATCH_LOOP = 20
RATIO_GOAL = 1.3
BATCH_GOAL_MS = 1.0
PACED_CALLS = 2000
PACE = 0.0005  # seconds between paced calls
DRAIN_SPANS = 2000

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


class NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


Timing = tuple[float, float, float]  # wall, calling-thread CPU, whole-process CPU; µs a call
Case = tuple[Callable[[], object], Callable[[], object]]  # a call, and what settles after a loop


def per_call(fn: Callable[[], object], settle: Callable[[], object], loop: int) -> Timing:
    """One call's wall and CPU time over a loop of calls.

    The process CPU time also covers ``settle`` (waiting until the pipeline has built and
    exported every span of the loop), so it includes the work of the export thread.
    """
    wall, cpu, process = time.perf_counter_ns(), time.thread_time_ns(), time.process_time_ns()
    for _ in range(loop):
        fn()
    wall, cpu = time.perf_counter_ns() - wall, time.thread_time_ns() - cpu
    settle()
    process = time.process_time_ns() - process
    return wall / loop / 1000, cpu / loop / 1000, process / loop / 1000


def medians(cases: dict[str, Case], loop: int) -> dict[str, Timing]:
    """Median timings of each (call, settle) case, interleaved so that drift hits all."""
    samples: dict[str, list[Timing]] = {name: [] for name in cases}
    for fn, settle in cases.values():  # warm up caches and the frame header cache
        per_call(fn, settle, max(loop // 10, 2))
    for _ in range(REPEATS):
        for name, (fn, settle) in cases.items():
            samples[name].append(per_call(fn, settle, loop))
    return {
        name: (
            statistics.median(t[0] for t in values),
            statistics.median(t[1] for t in values),
            statistics.median(t[2] for t in values),
        )
        for name, values in samples.items()
    }


def nothing() -> None:
    pass


def flush_inferwatch() -> None:
    assert inferwatch.flush(timeout=30.0)


class NoopSender:
    """inferwatch's sender that sends nothing: the request is encoded, then dropped."""

    def prepare(self, request: list[bytes]) -> Attempt:
        return Delivered

    def reachable(self) -> bool:
        return True

    def close(self) -> None:
        pass


def start_pipeline(endpoint: str, sender: SpanSender | None = None) -> None:
    export.start(
        Settings(endpoint=endpoint, api_key=None, service_name="bench", sample_rate=1.0),
        sender,
    )


def single_row() -> tuple[list[str], dict[str, float]]:
    rng = np.random.default_rng(0)
    names = [f"feature_{j}" for j in range(FEATURES)]
    row = dict(zip(names, rng.normal(size=FEATURES).tolist(), strict=True))
    weights = rng.normal(size=FEATURES).tolist()

    def predict(features: dict[str, float]) -> float:
        return sum(w * v for w, v in zip(weights, features.values(), strict=True))

    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(NoopExporter()))
    tracer = provider.get_tracer("bench")

    def bare_span() -> None:
        tracer.start_span("predict", attributes=row).end()

    def idiomatic_span() -> None:
        with tracer.start_as_current_span("predict") as span:
            span.set_attributes(row)

    start_pipeline("http://127.0.0.1:9", NoopSender())
    monitored = inferwatch.monitor(model="bench", version="1", task="regression")(predict)
    dropped = inferwatch.stats().spans_dropped
    result = medians(
        {
            "function": (lambda: predict(row), nothing),
            "bare": (bare_span, provider.force_flush),
            "idiomatic": (idiomatic_span, provider.force_flush),
            "monitored": (lambda: monitored(row), flush_inferwatch),
        },
        SINGLE_LOOP,
    )
    assert inferwatch.stats().spans_dropped == dropped, "the queue overflowed during the run"
    provider.shutdown()

    def row_of(label: str, key: str) -> str:
        wall, cpu, process = result[key]
        return f"| {label} | {wall:.1f} | {cpu:.1f} | {process:.1f} |"

    added = [m - f for m, f in zip(result["monitored"], result["function"], strict=True)]
    ratios = {
        base: [a / b for a, b in zip(added, result[base], strict=True)]
        for base in ("bare", "idiomatic")
    }
    lines = [
        "| single row (dict of 20 features) | µs / call, wall | CPU, calling thread "
        "| CPU, whole process |",
        "|---|---:|---:|---:|",
        row_of("bare function", "function"),
        row_of("(a) bare OTel span: `start_span(attributes=20 values).end()`", "bare"),
        row_of("(a') idiomatic: `with start_as_current_span(): set_attributes(20)`", "idiomatic"),
        row_of("monitored call", "monitored"),
        "| (b) added by @monitor (monitored - bare function) | "
        + " | ".join(f"{v:.1f}" for v in added)
        + " |",
        f"| **(b) / (a)** (goal <= {RATIO_GOAL}x) | "
        + " | ".join(f"**{v:.2f}x**" for v in ratios["bare"])
        + " |",
        "| (b) / (a') | " + " | ".join(f"{v:.2f}x" for v in ratios["idiomatic"]) + " |",
    ]
    return lines, {"ratio": ratios["bare"][1]}


def batch() -> list[str]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(BATCH_ROWS, FEATURES))
    names = [f"feature_{j}" for j in range(FEATURES)]
    frame = pd.DataFrame(x, columns=names)
    records = frame.to_dict("records")
    weights = rng.normal(size=FEATURES)

    def predict(features: object) -> np.ndarray:
        if isinstance(features, list):
            return np.zeros(len(features))
        return np.asarray(features, dtype=np.float64) @ weights

    start_pipeline("http://127.0.0.1:9", NoopSender())
    monitored = inferwatch.monitor(
        model="bench", version="1", task="regression", feature_names=names
    )(predict)
    cases = {
        "numpy": x,
        "DataFrame": frame,
        "list of dicts": records,
    }
    lines = [
        f"| {BATCH_ROWS} rows x {FEATURES} features, added ms (goal < {BATCH_GOAL_MS}) "
        "| wall | CPU, calling thread | CPU, whole process |",
        "|---|---:|---:|---:|",
    ]
    for name, data in cases.items():
        result = medians(
            {
                "bare": (functools.partial(predict, data), nothing),
                "monitored": (functools.partial(monitored, data), flush_inferwatch),
            },
            BATCH_LOOP,
        )
        added = [(m - b) / 1000 for m, b in zip(result["monitored"], result["bare"], strict=True)]
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in added) + " |")
    timing = medians({"ids": (lambda: ids.new_ids(BATCH_ROWS), nothing)}, BATCH_LOOP)["ids"]
    lines.append(
        f"| {BATCH_ROWS} prediction ids alone (UUIDv7) | "
        + " | ".join(f"{v / 1000:.3f}" for v in timing)
        + " |"
    )
    return lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def collector_down_vs_up() -> list[str]:
    """Per-call latency at a steady 1-2k calls/s, the collector up then down; and how fast
    the export thread drains a full queue to a live receiver."""
    row = {f"feature_{j}": float(j) for j in range(FEATURES)}
    recorder = PredictionRecorder("bench", "1", "regression")

    def call() -> None:
        recorder.record(row, 1.0, start_ns=time.time_ns())

    port = free_port()
    child = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    lines = [
        f"| single-row record at ~1-2k calls/s ({PACED_CALLS} calls), real OTLP exporter "
        "| p50 µs | p99 µs | spans exported | spans lost | flush took |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    try:
        wait_for_port(port)
        for name, endpoint, timeout in (
            ("collector up", f"http://127.0.0.1:{port}", 30.0),
            ("collector down (closed port)", f"http://127.0.0.1:{free_port()}", 1.0),
        ):
            export.start(
                Settings(
                    endpoint=endpoint,
                    api_key=None,
                    service_name="bench",
                    sample_rate=1.0,
                    flush_interval=0.2,
                )
            )
            before = inferwatch.stats()
            latencies = []
            for _ in range(PACED_CALLS):
                start = time.perf_counter_ns()
                call()
                latencies.append((time.perf_counter_ns() - start) / 1000)
                time.sleep(PACE)
            started = time.monotonic()
            flushed = inferwatch.flush(timeout=timeout)
            took = time.monotonic() - started
            after = inferwatch.stats()
            lost = (after.spans_failed - before.spans_failed) + (
                after.spans_dropped - before.spans_dropped
            )
            p50, p99 = np.percentile(latencies, [50, 99])
            lines.append(
                f"| {name} | {p50:.1f} | {p99:.1f} "
                f"| {after.spans_exported - before.spans_exported} | {lost} "
                f"| {took:.2f} s ({'all exported' if flushed else 'gave up at the timeout'}) |"
            )
        # Throughput: fill the queue, then time the export thread draining it.
        start_pipeline(f"http://127.0.0.1:{port}")
        for _ in range(DRAIN_SPANS):
            call()
        started = time.monotonic()
        assert inferwatch.flush(timeout=60.0)
        rate = DRAIN_SPANS / (time.monotonic() - started)
        lines.append(
            f"| export thread draining {DRAIN_SPANS} queued spans to the receiver "
            f"| {rate:,.0f} spans/s | | | | |"
        )
    finally:
        export.stop(1.0)
        child.kill()
        child.wait()
    return lines


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores (nproc), {cpu}, load average {load:.2f} at start"


def main() -> int:
    # The down-collector case makes the exporter (and inferwatch) warn; the table says it all.
    logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
    logging.getLogger("inferwatch").setLevel(logging.ERROR)
    header = machine()
    single, numbers = single_row()
    batch_lines = batch()
    down_up = collector_down_vs_up()
    text = "\n".join(
        [
            "## SDK: cost of @monitor (`bench/bench_sdk.py`)",
            "",
            f"{header}; {datetime.date.today().isoformat()}. Medians of {REPEATS} repetitions "
            f"(loops of {SINGLE_LOOP} single-row or {BATCH_LOOP} batch calls), interleaved.",
            "",
            *single,
            "",
            *batch_lines,
            "",
            *down_up,
            "",
        ]
    )
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(text)
    print(text)
    return 0 if numbers["ratio"] <= RATIO_GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
