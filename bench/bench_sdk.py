"""What monitoring adds to a predict call, against a bare OpenTelemetry span measured in the same run.

(a) baseline: a span from a TracerProvider with a BatchSpanProcessor to a no-op exporter,
    carrying the call's 20 feature values as 20 attributes (what hand instrumentation costs);
(b) a @monitor-decorated single-row predict (dict of 20 features), minus the bare function;
    goal: at most 1.3x (a);
(c) a 1,000-row x 20-feature batch (numpy array; also a DataFrame and a list of dicts), added
    cost minus the bare function; goal under 1 ms;
(d) single-row predict latency with the collector down (a closed port) and up (a receiver in a
    child process), over a run long enough for several exports.
Also: 1,000 prediction ids. Medians over many repetitions; each repetition times a loop of calls.
"""

from __future__ import annotations

import datetime
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
from inferwatch import export, ids
from inferwatch.config import Settings
from inferwatch.recorder import PredictionRecorder
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import inferwatch

RESULT = Path(__file__).resolve().parent / "results" / "sdk.md"
FEATURES = 20
BATCH_ROWS = 1000
REPEATS = 41
SINGLE_LOOP = 300
BATCH_LOOP = 20
RATIO_GOAL = 1.3
BATCH_GOAL_MS = 1.0

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


def per_call_us(fn: Callable[[], object], loop: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(loop):
        fn()
    return (time.perf_counter_ns() - start) / loop / 1000


def medians(cases: dict[str, Callable[[], object]], loop: int) -> dict[str, float]:
    """Median per-call time of each case; the cases are interleaved so that drift hits all."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():  # warm up caches and the frame header cache
        per_call_us(fn, max(loop // 10, 2))
    for _ in range(REPEATS):
        for name, fn in cases.items():
            samples[name].append(per_call_us(fn, loop))
    return {name: statistics.median(values) for name, values in samples.items()}


def start_pipeline(endpoint: str, exporter: SpanExporter | None = None) -> None:
    export.start(
        Settings(endpoint=endpoint, api_key=None, service_name="bench", sample_rate=1.0),
        exporter,
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
        span = tracer.start_span("predict", attributes=row)
        span.end()

    start_pipeline("http://127.0.0.1:9", NoopExporter())
    monitored = inferwatch.monitor(model="bench", version="1", task="regression")(predict)
    result = medians(
        {
            "bare function": lambda: predict(row),
            "bare OTel span, 20 attributes": bare_span,
            "monitored": lambda: monitored(row),
        },
        SINGLE_LOOP,
    )
    provider.shutdown()
    added = result["monitored"] - result["bare function"]
    base = result["bare OTel span, 20 attributes"]
    lines = [
        "| single row (dict of 20 features) | µs / call |",
        "|---|---:|",
        f"| bare function | {result['bare function']:.1f} |",
        f"| (a) bare OTel span, 20 attributes, BatchSpanProcessor | {base:.1f} |",
        f"| monitored call | {result['monitored']:.1f} |",
        f"| (b) added by @monitor (monitored - bare function) | {added:.1f} |",
        f"| **(b) / (a)** (goal <= {RATIO_GOAL}x) | **{added / base:.2f}x** |",
    ]
    return lines, {"ratio": added / base}


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

    start_pipeline("http://127.0.0.1:9", NoopExporter())
    monitored = inferwatch.monitor(
        model="bench", version="1", task="regression", feature_names=names
    )(predict)
    cases = {
        "numpy": x,
        "DataFrame": frame,
        "list of dicts": records,
    }
    lines = [
        f"| {BATCH_ROWS} rows x {FEATURES} features | bare function ms | monitored ms "
        f"| added ms (goal < {BATCH_GOAL_MS}) |",
        "|---|---:|---:|---:|",
    ]
    for name, data in cases.items():
        result = medians(
            {"bare": lambda d=data: predict(d), "monitored": lambda d=data: monitored(d)},
            BATCH_LOOP,
        )
        added = (result["monitored"] - result["bare"]) / 1000
        lines.append(
            f"| {name} | {result['bare'] / 1000:.3f} | {result['monitored'] / 1000:.3f} "
            f"| {added:.3f} |"
        )
    id_us = medians({"ids": lambda: ids.new_ids(BATCH_ROWS)}, BATCH_LOOP)["ids"]
    lines.append(f"| {BATCH_ROWS} prediction ids alone (UUIDv7) | | | {id_us / 1000:.3f} |")
    return lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def collector_down_vs_up() -> list[str]:
    row = {f"feature_{j}": float(j) for j in range(FEATURES)}
    recorder = PredictionRecorder("bench", "1", "regression")

    def call() -> None:
        start = time.time_ns()
        recorder.record(row, 1.0, start_ns=start)

    port = free_port()
    child = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        results = {}
        for name, endpoint in (
            ("collector up", f"http://127.0.0.1:{port}"),
            ("collector down (closed port)", f"http://127.0.0.1:{free_port()}"),
        ):
            export.start(
                Settings(
                    endpoint=endpoint,
                    api_key=None,
                    service_name="bench",
                    sample_rate=1.0,
                    flush_interval=0.1,
                )
            )
            before = inferwatch.stats()
            results[name] = medians({name: call}, SINGLE_LOOP)[name]
            t0 = time.monotonic()
            flushed = inferwatch.flush(timeout=1.0)
            flush_s = time.monotonic() - t0
            after = inferwatch.stats()
            results[name + " flush"] = flush_s
            results[name + " flushed"] = float(flushed)
            results[name + " exported"] = after.spans_exported - before.spans_exported
            results[name + " lost"] = (after.spans_failed - before.spans_failed) + (
                after.spans_dropped - before.spans_dropped
            )
    finally:
        export.stop(1.0)
        child.kill()
        child.wait()
    lines = [
        "| single-row record, real OTLP exporter | µs / call | spans exported | spans lost "
        "| flush(timeout=1) took |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("collector up", "collector down (closed port)"):
        lines.append(
            f"| {name} | {results[name]:.1f} | {results[name + ' exported']:.0f} "
            f"| {results[name + ' lost']:.0f} | {results[name + ' flush']:.2f} s "
            f"({'all exported' if results[name + ' flushed'] else 'gave up'}) |"
        )
    return lines


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
