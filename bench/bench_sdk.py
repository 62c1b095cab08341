"""What monitoring adds to a predict call: @monitor against a bare OpenTelemetry span, against
the SDK before this change, and against the tools users would pick instead, in one run.

Every span goes over real OTLP/HTTP to a receiver in a child process (its CPU is not counted).

(a) baseline: a span from a TracerProvider with a BatchSpanProcessor and the OpenTelemetry
    OTLP/HTTP exporter, carrying the call's 20 feature values as 20 attributes, the cheapest way
    (``start_span(attributes=...).end()``); (a') the same the idiomatic way
    (``with start_as_current_span(): set_attributes(...)``); for a 1,000-row batch, one span
    of 20 column attributes (1,000 floats each) and the 1,000 prediction ids;
(b) a @monitor-decorated single-row predict (dict of 20 features), minus the bare function;
    goal: whole-process CPU at most 0.5x (a);
(c) a 1,000-row x 20-feature batch (numpy array; also a DataFrame and a list of dicts), minus
    the bare function; goal: at most 1 ms of whole-process CPU;
each with the requests uncompressed (inferwatch's default) and with gzip (a setting, and the
exporter's option for the baseline), measured in a worker process of this checkout and, with
``--before REV``, in one running the SDK of that commit (``git archive``; same interpreter,
same dependencies), so that before and after are measured in the same run.
(d) the peers, each in its own bench-only venv (bench/peers.py, telemetry off):
    ``bentoml.monitor`` (the default file monitor; the bentoml of middleware/pyproject.toml) and
    whylogs (``why.log`` per call, and its rolling logger), around the same predict function
    (bench/sdk_peer_cases.py);
(e) single-row latency with the collector down (a closed port) and up, and how fast the export
    thread drains a full queue.

Medians over many repetitions; each repetition times a loop of calls, interleaved with the other
cases of its group, and reports, a call:
- the CPU time of the calling thread: what the predict call itself pays (inferwatch and the
  BatchSpanProcessor export in a thread of their own, off the call's path),
- the CPU time of the whole process, after waiting for the pipeline to export every span of
  the loop: the total work, export thread included;
- wall-clock time, inflated whenever the shared machine is busy (in the JSON only).
The exit status is 1 when (b)/(a) in whole-process CPU misses its goal.

Usage: python bench/bench_sdk.py [--before REV] [--rounds N]
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import inferwatch
from inferwatch import export, ids
from inferwatch.config import Settings
from inferwatch.recorder import PredictionRecorder

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers import peer_python, run_peer  # noqa: E402
from sdk_peer_cases import (  # noqa: E402
    BATCH_LOOP,
    BATCH_ROWS,
    FEATURES,
    SINGLE_LOOP,
    Case,
    Timing,
    median_timing,
    medians,
    nothing,
    predict_row,
    the_row,
    the_weights,
)

RESULT = HERE / "results" / "sdk.md"
RATIO_GOAL = 0.5
BATCH_GOAL_MS = 1.0
PACED_CALLS = 2000
PACE = 0.0005  # seconds between paced calls
DRAIN_SPANS = 2000
# The bentoml the middleware pins (middleware/pyproject.toml).
BENTOML = "bentoml==1.4.40"
WHYLOGS = ["whylogs==1.6.4", "pandas", "numpy"]
COMPRESSIONS = ("none", "gzip")

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

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


# -- the worker: this process's inferwatch (this checkout's, or --before's) ----------------------


def otel_tracer(endpoint: str, compression: str) -> tuple[TracerProvider, Any]:
    """The baseline's pipeline: BatchSpanProcessor + the OTLP/HTTP exporter to the receiver."""
    exporter = OTLPSpanExporter(
        endpoint=f"{endpoint}/v1/traces",
        compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression,
    )
    provider = TracerProvider(
        resource=Resource.create({"service.name": "bench"}), shutdown_on_exit=False
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=4096))
    return provider, provider.get_tracer("bench")


def flush_inferwatch() -> None:
    assert inferwatch.flush(timeout=60.0)


def single_row(endpoint: str, compression: str) -> dict[str, Timing]:
    row = the_row()
    provider, tracer = otel_tracer(endpoint, compression)

    def bare_span() -> None:
        tracer.start_span("predict", attributes=row).end()

    def idiomatic_span() -> None:
        with tracer.start_as_current_span("predict") as span:
            span.set_attributes(row)

    inferwatch.init(endpoint=endpoint, service_name="bench", compression=cast(Any, compression))
    monitored = inferwatch.monitor(model="bench", version="1", task="regression")(predict_row)
    dropped = inferwatch.stats().spans_dropped
    cases: dict[str, Case] = {
        "function": (lambda: predict_row(row), nothing),
        "bare": (bare_span, provider.force_flush),
        "idiomatic": (idiomatic_span, provider.force_flush),
        "monitored": (lambda: monitored(row), flush_inferwatch),
    }
    result = medians(cases, SINGLE_LOOP)
    assert inferwatch.stats().spans_dropped == dropped, "the queue overflowed during the run"
    provider.shutdown()
    return result


def batch(endpoint: str, compression: str) -> dict[str, Timing]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(BATCH_ROWS, FEATURES))
    names = list(the_row())
    frame = pd.DataFrame(x, columns=names)
    records = frame.to_dict("records")
    weights = np.asarray(the_weights())
    columns = {name: x[:, j].tolist() for j, name in enumerate(names)}
    provider, tracer = otel_tracer(endpoint, compression)

    def predict(features: object) -> np.ndarray:
        if isinstance(features, list):
            return np.zeros(len(features))
        return np.asarray(features, dtype=np.float64) @ weights

    def bare_span() -> None:
        prediction_ids = ids.new_ids(BATCH_ROWS)
        span = tracer.start_span("predict", attributes=columns)
        span.set_attribute("prediction", predict(x).tolist())
        span.set_attribute("ids", prediction_ids)
        span.end()

    inferwatch.init(endpoint=endpoint, service_name="bench", compression=cast(Any, compression))
    monitored = inferwatch.monitor(
        model="bench", version="1", task="regression", feature_names=names
    )(predict)
    inputs = {"numpy": x, "DataFrame": frame, "list of dicts": records}
    if compression != "none":  # the effect of gzip: on the batch where it costs most
        inputs = {"numpy": x}
    cases: dict[str, Case] = {}
    for name, data in inputs.items():
        cases[f"function {name}"] = (lambda data=data: predict(data), nothing)
        cases[f"monitored {name}"] = (lambda data=data: monitored(data), flush_inferwatch)
    cases["bare"] = (bare_span, provider.force_flush)
    cases["ids"] = (lambda: ids.new_ids(BATCH_ROWS), nothing)
    result = medians(cases, BATCH_LOOP)
    provider.shutdown()
    return result


def worker(endpoint: str) -> dict[str, Any]:
    logging.getLogger("inferwatch").setLevel(logging.ERROR)
    out: dict[str, Any] = {"inferwatch": str(Path(inferwatch.__file__).parent)}
    for compression in COMPRESSIONS:
        out[f"single {compression}"] = single_row(endpoint, compression)
        out[f"batch {compression}"] = batch(endpoint, compression)
    inferwatch.shutdown(5.0)
    return out


def run_worker(endpoint: str, sdk_src: Path | None) -> dict[str, Any]:
    """The worker cases in a child process: this checkout's SDK, or the one at ``sdk_src``."""
    env = dict(os.environ)
    if sdk_src is not None:
        # Ahead of the editable install: `import inferwatch` finds that SDK.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(sdk_src), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", endpoint],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"the worker failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if sdk_src is not None:
        assert result["inferwatch"].startswith(str(sdk_src)), result["inferwatch"]
    return result


def measure_versions(endpoint: str, before: str | None, rounds: int) -> dict[str, dict[str, Any]]:
    """The worker cases of this checkout and, with ``before``, of that commit: ``rounds``
    workers each, alternating, so that a change in the machine's load hits both; each timing
    is the median over a version's workers."""
    samples: dict[str, list[dict[str, Any]]] = {"this checkout": []}
    with tempfile.TemporaryDirectory(prefix="bench-sdk-before-") as folder:
        versions: list[tuple[str, Path | None]] = [("this checkout", None)]
        if before:
            rev = subprocess.run(
                ["git", "-C", str(HERE.parent), "rev-parse", "--short", before],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            versions.append((f"before ({rev})", sdk_at(before, Path(folder))))
        for _ in range(max(rounds, 1)):
            for name, src in versions:
                samples.setdefault(name, []).append(run_worker(endpoint, src))
    return {name: median_of_workers(results) for name, results in samples.items()}


def median_of_workers(results: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {"inferwatch": results[0]["inferwatch"]}
    for group, cases in results[0].items():
        if group == "inferwatch":
            continue
        merged[group] = {
            case: median_timing([result[group][case] for result in results]) for case in cases
        }
    return merged


def sdk_at(rev: str, folder: Path) -> Path:
    """The SDK source of commit ``rev``, extracted into ``folder``."""
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", "--format=tar", rev, "sdk/src"],
        capture_output=True,
        check=True,
    ).stdout
    archive_path = folder / "sdk.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(folder, filter="data")
    return folder / "sdk" / "src"


# -- the peers ----------------------------------------------------------------------------------


def peers() -> tuple[dict[str, Timing], list[str]]:
    """Each peer's timings (keyed "<peer>: <case>") and what limited the comparison."""
    timings: dict[str, Timing] = {}
    notes: list[str] = []
    # bentoml keeps its state under BENTOML_HOME: a folder of this run's.
    os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="bench-bentoml-home-")
    for peer, requirements in (("bentoml", [BENTOML]), ("whylogs", WHYLOGS)):
        python = peer_python(peer, requirements)
        if python is None:
            notes.append(f"{peer}: its venv could not be made ({', '.join(requirements)})")
            continue
        try:
            answer = run_peer(python, HERE / "sdk_peer_cases.py", peer)
        except Exception as exc:
            notes.append(f"{peer}: {type(exc).__name__}: {str(exc)[-300:]}")
            continue
        notes.append(f"{peer} {answer['version']}")
        for case, timing in answer["timings"].items():
            wall, thread, process = timing
            timings[f"{peer}: {case}"] = (wall, thread, process)
    return timings, notes


# -- collector down and up (this checkout only) ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def collector_down_vs_up(port: int) -> list[str]:
    """Per-call latency at a steady 1-2k calls/s, the collector up then down; and how fast
    the export thread drains a full queue to a live receiver."""
    row = {f"feature_{j}": float(j) for j in range(FEATURES)}
    recorder = PredictionRecorder("bench", "1", "regression")

    def call() -> None:
        recorder.record(row, 1.0, start_ns=time.time_ns())

    lines = [
        f"| single-row record at ~1-2k calls/s ({PACED_CALLS} calls), real OTLP exporter "
        "| p50 µs | p99 µs | spans exported | spans lost | flush took |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    try:
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
        export.start(
            Settings(
                endpoint=f"http://127.0.0.1:{port}",
                api_key=None,
                service_name="bench",
                sample_rate=1.0,
            )
        )
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
    return lines


# -- the tables ---------------------------------------------------------------------------------


def added(timing: Timing, base: Timing) -> Timing:
    return (timing[0] - base[0], timing[1] - base[1], timing[2] - base[2])


def single_table(runs: dict[str, dict[str, Any]], peer: dict[str, Timing]) -> list[str]:
    after = runs["this checkout"]
    bare = after["single none"]["bare"]
    monitored = added(after["single none"]["monitored"], after["single none"]["function"])
    lines = [
        "| single row (dict of 20 floats), µs a call added to the bare function "
        "| CPU, calling thread | CPU, whole process | whole process / (a) "
        "| whole process / @monitor |",
        "|---|---:|---:|---:|---:|",
    ]

    def line(label: str, timing: Timing, base: Timing, bold: bool = False) -> str:
        ratio = f"{timing[2] / base[2]:.2f}x"
        mine = f"{timing[2] / monitored[2]:.2f}x"
        if bold:
            ratio = f"**{ratio}**"
        return f"| {label} | {timing[1]:.1f} | {timing[2]:.1f} | {ratio} | {mine} |"

    for version, run in runs.items():
        for compression in COMPRESSIONS:
            cases = run[f"single {compression}"]
            base = cases["bare"]
            wire = "uncompressed" if compression == "none" else "gzip"
            if version == "this checkout":
                lines.append(
                    line(f"(a) bare OTel span, 20 attributes, OTLP/HTTP {wire}", base, base)
                )
                lines.append(
                    line(
                        f"(a') idiomatic `start_as_current_span` + `set_attributes`, {wire}",
                        cases["idiomatic"],
                        base,
                    )
                )
            default = (version == "this checkout") == (compression == "none")
            lines.append(
                line(
                    f"(b) @monitor, {version}, {wire}{' (its default)' if default else ''}",
                    added(cases["monitored"], cases["function"]),
                    base,
                    bold=version == "this checkout" and compression == "none",
                )
            )
    for label, key in (
        ("bentoml.monitor (file monitor)", "bentoml: bentoml.monitor"),
        ("whylogs `why.log(row)` per call", "whylogs: why.log"),
        ("whylogs rolling logger `log(row)`", "whylogs: rolling logger"),
    ):
        peer_name = key.split(":")[0]
        if key in peer:
            lines.append(line(label, added(peer[key], peer[f"{peer_name}: function"]), bare))
    return lines


def batch_table(runs: dict[str, dict[str, Any]], peer: dict[str, Timing]) -> list[str]:
    lines = [
        f"| {BATCH_ROWS} rows x {FEATURES} features, ms a call added to the bare function "
        f"(goal <= {BATCH_GOAL_MS} ms whole process) | CPU, calling thread "
        "| CPU, whole process | whole process / (a) |",
        "|---|---:|---:|---:|",
    ]

    def line(label: str, timing: Timing, base: Timing, bold: bool = False) -> str:
        whole = f"{timing[2] / 1000:.3f}"
        if bold:
            whole = f"**{whole}**"
        return f"| {label} | {timing[1] / 1000:.3f} | {whole} | {timing[2] / base[2]:.2f}x |"

    for version, run in runs.items():
        for compression in COMPRESSIONS:
            cases = run[f"batch {compression}"]
            base = added(cases["bare"], cases["function numpy"])
            wire = "uncompressed" if compression == "none" else "gzip"
            if version == "this checkout":
                lines.append(
                    line(f"(a) bare OTel span: 20 column + ids attributes, {wire}", base, base)
                )
            for name in ("numpy", "DataFrame", "list of dicts"):
                if f"monitored {name}" in cases:
                    lines.append(
                        line(
                            f"(c) @monitor, {name}, {version}, {wire}",
                            added(cases[f"monitored {name}"], cases[f"function {name}"]),
                            base,
                            bold=version == "this checkout" and compression == "none",
                        )
                    )
    after = runs["this checkout"]["batch none"]
    base = added(after["bare"], after["function numpy"])
    for label, key in (
        ("bentoml.monitor `log_batch` a column", "bentoml: batch bentoml.monitor"),
        ("whylogs `why.log(pandas=df)` per call", "whylogs: batch why.log"),
        ("whylogs rolling logger `log(df)`", "whylogs: batch rolling logger"),
    ):
        peer_name = key.split(":")[0]
        if key in peer:
            lines.append(line(label, added(peer[key], peer[f"{peer_name}: batch function"]), base))
    ids_alone = after["ids"]
    lines.append(
        f"| {BATCH_ROWS} prediction ids alone (UUIDv7) | {ids_alone[1] / 1000:.3f} "
        f"| {ids_alone[2] / 1000:.3f} | |"
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
    return f"{os.cpu_count()} cores (nproc), {cpu}, Python {platform.python_version()}"


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a commit whose SDK is measured in the same run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="worker processes a version, alternating with --before's (medians over them)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return 0

    logging.getLogger("inferwatch").setLevel(logging.ERROR)
    load_at_start = load()
    started = time.monotonic()
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port)
        runs = measure_versions(endpoint, args.before, args.rounds)
        peer_timings, peer_notes = peers()
        down_up = collector_down_vs_up(port)
    finally:
        receiver.kill()
        receiver.wait()
    after = runs["this checkout"]
    single = after["single none"]
    ratio = (single["monitored"][2] - single["function"][2]) / single["bare"][2]
    minutes = (time.monotonic() - started) / 60
    text = "\n".join(
        [
            "## SDK: cost of @monitor (`bench/bench_sdk.py`)",
            "",
            f"{machine()}; {datetime.date.today().isoformat()}; load average {load_at_start} at "
            f"start, {load()} at the end ({minutes:.0f} min). Medians of interleaved repetitions "
            f"(loops of {SINGLE_LOOP} single-row or {BATCH_LOOP} batch calls), medians over "
            f"{max(args.rounds, 1)} worker process(es) a version, alternating; every span over "
            "OTLP/HTTP to a receiver in a child process. Peers: " + "; ".join(peer_notes) + ".",
            "",
            *single_table(runs, peer_timings),
            "",
            *batch_table(runs, peer_timings),
            "",
            *down_up,
            "",
        ]
    )
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(text)
    print(text)
    return 0 if ratio <= RATIO_GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
