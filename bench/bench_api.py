"""The query API: GET /v1/models/{model}/windows over 1,000 evaluated windows.

Each window has 30 result rows (a detector row and 29 feature rows of univariate drift, with the
effect sizes a real row carries) and the summary details an evaluation stores. The database is
written once through the storage interface; then a collector process (uvicorn, no lifespan: only
the query routes run) serves it on loopback, and one client times whole responses, body read.

``--baseline PYTHON`` also serves the same database with another interpreter (e.g. the .venv of a
checkout of main, which must read this checkout's storage schema) and interleaves the two
servers' requests, so that before and after come from the same run on the same machine.

The benchmark also times, in its own process, the storage read and the two ways of turning the
records into the response body: main's before FastAPI (dicts, json.dumps) and the models'.

Usage: python bench/bench_api.py [--windows 1000] [--requests 41] [--baseline PYTHON]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import TypeAdapter
from starlette.responses import JSONResponse

from inferwatch.collector.alerts.model import iso
from inferwatch.collector.api.bodies import Window, WindowList
from inferwatch.collector.detectors.result import Decision, Result
from inferwatch.collector.runtime.loading import load_config
from inferwatch.collector.storage import open_storage
from inferwatch.collector.window.store import IncomingBatch, WindowKey, WindowRecord

RESULTS_PER_WINDOW = 30
RESULT = Path(__file__).resolve().parent / "results" / "api.md"
_T0_MS = 1_767_225_600_000
_SERVER = """
import sys, uvicorn
from inferwatch.collector import create_app
from inferwatch.collector.runtime.loading import load_config
app = create_app(load_config(None, db=sys.argv[1]))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), lifespan="off", log_level="warning")
"""


def results(window: int) -> list[Result]:
    rows = [
        Result(
            detector="univariate_drift",
            decision=Decision.OK,
            score=0.12,
            p_value=0.4,
            threshold=0.05,
            message="no feature drifted (29 tested, Bonferroni-corrected)",
            details={"features": 29, "drifted": 0, "correction": "bonferroni"},
        )
    ]
    for f in range(RESULTS_PER_WINDOW - 1):
        drifted = (window + f) % 17 == 0
        rows.append(
            Result(
                detector="univariate_drift",
                feature=f"feature_{f}",
                decision=Decision.ALERT if drifted else Decision.OK,
                score=0.3 if drifted else 0.04,
                p_value=0.0001 if drifted else 0.6,
                threshold=0.05,
                message=f"feature_{f}: KS statistic 0.04, p = 0.6",
                details={
                    "test": "ks",
                    "statistic": 0.04,
                    "adjusted_p_value": 1.0,
                    "effect_sizes": {"psi": 0.01, "wasserstein": 0.02, "hellinger": 0.03},
                    "n_reference": 1000,
                    "n_window": 1000,
                },
            )
        )
    return rows


def build_database(path: Path, windows: int) -> None:
    storage = open_storage(load_config(None, db=f"sqlite:///{path}"))
    minute = 60_000
    details = {
        "error_rate": 0.01,
        "latency": {"p50": 5.0, "p95": 9.0, "max": 20.0},
        "performance": {"task": "classification", "rows": 1000, "labelled": 0},
    }
    for w in range(windows):
        key = WindowKey("bench", "1", _T0_MS + w * minute, _T0_MS + (w + 1) * minute)
        batch = IncomingBatch(
            w.to_bytes(16, "big"), bytes(8), key, 1000, b"", (), key.start_ms, b""
        )
        (stored,) = storage.windows.ingest([batch], key.end_ms).stored
        assert stored is not None
        storage.windows.save_evaluation(
            stored.window_id, results(w), details, key.end_ms, close=True
        )
    storage.close()


def main_window_json(record: WindowRecord) -> dict[str, Any]:
    """How main built a window's JSON before FastAPI (the in-process baseline)."""
    details = record.details or {}
    return {
        "id": record.id,
        "model": record.model,
        "version": record.version,
        "start": iso(record.start_ms),
        "end": iso(record.end_ms),
        "closed": record.closed,
        "requests": record.requests,
        "rows": record.rows,
        "labelled": record.labelled,
        "label_coverage": record.labelled / record.rows if record.rows else None,
        "error_rate": details.get("error_rate"),
        "evaluated_at": iso(record.evaluated_ms),
        "results": [r.model_dump(mode="json") for r in record.results or ()],
    }


def in_process(path: Path, repetitions: int) -> dict[str, list[float]]:
    """Seconds to read the windows from storage, and to turn them into the response body."""
    storage = open_storage(load_config(None, db=f"sqlite:///{path}"))
    adapter = TypeAdapter(WindowList)
    times: dict[str, list[float]] = {"read": [], "main": [], "models": []}
    for _ in range(repetitions):
        start = time.perf_counter()
        records = storage.windows.find("bench", limit=10_000)
        times["read"].append(time.perf_counter() - start)
        start = time.perf_counter()
        JSONResponse({"windows": [main_window_json(r) for r in records]})
        times["main"].append(time.perf_counter() - start)
        start = time.perf_counter()
        adapter.dump_json(WindowList(windows=[Window.from_record(r) for r in records]))
        times["models"].append(time.perf_counter() - start)
    storage.close()
    return times


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(python: str, db: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([python, "-c", _SERVER, db, str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{python}: the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{python}: the server did not start")
        time.sleep(0.1)


def timed_get(client: httpx.Client, url: str) -> tuple[float, int]:
    start = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - start
    response.raise_for_status()
    return elapsed, len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=41)
    parser.add_argument("--baseline", help="an interpreter serving the code to compare with")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    servers = {"this checkout": sys.executable}
    if args.baseline:
        servers = {"baseline": args.baseline, **servers}
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "bench.db"
        build_database(db_path, args.windows)
        local = in_process(db_path, args.requests)
        running = {name: serve(python, f"sqlite:///{db_path}") for name, python in servers.items()}
        times: dict[str, list[float]] = {name: [] for name in servers}
        sizes: dict[str, int] = {}
        try:
            with httpx.Client(timeout=120) as client:
                for _, url in running.values():  # warm up
                    timed_get(client, f"{url}/v1/models/bench/windows")
                for _ in range(args.requests):
                    for name, (_, url) in running.items():
                        elapsed, size = timed_get(client, f"{url}/v1/models/bench/windows")
                        times[name].append(elapsed)
                        sizes[name] = size
        finally:
            for process, _ in running.values():
                process.terminate()
                process.wait(30)
    lines = [
        "## api",
        "",
        f"GET /v1/models/{{model}}/windows on {args.windows:,} evaluated windows of "
        f"{RESULTS_PER_WINDOW} result rows each (SQLite, loopback, one client; uvicorn, one "
        f"worker). Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load:.2f} at the "
        f"start; {args.requests} requests a server, interleaved.",
        "",
        "| server | median ms | p90 ms | body KiB |",
        "|---|---:|---:|---:|",
    ]
    for name, samples in times.items():
        ordered = sorted(samples)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        lines.append(
            f"| {name} | {statistics.median(samples) * 1000:.1f} | {p90 * 1000:.1f} | "
            f"{sizes[name] / 1024:.0f} |"
        )
    if args.baseline:
        ratio = statistics.median(times["this checkout"]) / statistics.median(times["baseline"])
        lines.append(f"| **this checkout / baseline** | **{ratio:.2f}x** | | |")
    lines += [
        "",
        "In the benchmark's process, the same windows (medians of as many repetitions):",
        "",
        "| step | median ms |",
        "|---|---:|",
        f"| windows.find: read the windows | {statistics.median(local['read']) * 1000:.1f} |",
        "| body as main built it: dicts, Result.model_dump each, json.dumps (JSONResponse) | "
        f"{statistics.median(local['main']) * 1000:.1f} |",
        "| body as this checkout builds it: Window models, pydantic dump_json | "
        f"{statistics.median(local['models']) * 1000:.1f} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULT.write_text(text)


if __name__ == "__main__":
    main()
