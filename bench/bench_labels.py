"""The label join: POST /v1/labels against a bare SQLite executemany of the same updates.

The same predictions (batches of 100 rows, UUIDv7 ids of one millisecond a batch, as the SDK
makes them) are in a SQLite collector database written through the storage interface, in a bare
table, and in a collector process, which the SDK sent them to over OTLP. Labels come 10,000 a
request, each for a stored prediction (joined), in the order the predictions were made; every
request names ids not labelled before.

- baseline: a bare SQLite table of the same ids (``id TEXT PRIMARY KEY`` and the label's text,
  number and time), the same pragmas as the collector's database (WAL, synchronous=FULL), and
  one ``executemany("UPDATE ... WHERE id = ?")`` of the request's labels in one transaction;
- the store: ``LabelStore.apply`` of the parsed labels, in this process;
- over HTTP: ``POST /v1/labels`` to ``inferwatch collector`` (one uvicorn worker) on loopback,
  the body encoded beforehand, timed from send to the answer read. Goal: at least 0.5x the
  baseline's labels/s.

Medians over the requests, interleaved (a request of each kind in turn), so that load hits all.

``--before REV`` also runs the collector of that commit (``git archive``; same interpreter), sent
the same predictions and labels, interleaved with this checkout's.

Usage: python bench/bench_labels.py [--predictions 300000] [--requests 12] [--before REV]
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

import inferwatch
from inferwatch import ids
from inferwatch.collector.labels.join import parse_labels
from inferwatch.collector.runtime.loading import load_config
from inferwatch.collector.storage import open_storage
from inferwatch.collector.window.store import IncomingBatch, WindowKey
from inferwatch.recorder import PredictionRecorder

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "labels.md"
ROWS_PER_BATCH = 100
LABELS_PER_REQUEST = 10_000
GOAL = 0.5
_T0_MS = 1_767_225_600_000
_HOUR_MS = 3_600_000
# Three copies of the predictions: the store's, the bare table's and the collector's database.
_STORE, _SERVED = "store.db", "served.db"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prediction_batches(count: int) -> list[list[str]]:
    """The ids of ``count`` predictions, a batch of ROWS_PER_BATCH at a time, as the SDK makes
    them."""
    return [ids.new_ids(ROWS_PER_BATCH) for _ in range(count // ROWS_PER_BATCH)]


def stored_predictions(path: Path, batches: list[list[str]]) -> None:
    """A collector database holding the predictions, written through the storage interface."""
    storage = open_storage(load_config(None, db=f"sqlite:///{path}"))
    key = WindowKey("bench", "1", _T0_MS, _T0_MS + _HOUR_MS)
    for start in range(0, len(batches), 100):
        incoming = [
            IncomingBatch(
                number.to_bytes(16, "big"),
                bytes(8),
                key,
                ROWS_PER_BATCH,
                b"",
                prediction_ids,
                _T0_MS + number,
                b"",
            )
            for number, prediction_ids in enumerate(batches[start : start + 100], start)
        ]
        storage.windows.ingest(incoming, _T0_MS + _HOUR_MS // 2)
    storage.close()


def sent_predictions(url: str, batches: list[list[str]]) -> None:
    """The same predictions sent to the collector at ``url`` by the SDK, over OTLP."""
    # A queue for all of them: they are recorded faster than a collector takes them.
    inferwatch.init(
        endpoint=url, service_name="bench-labels", max_queue_spans=max(2048, len(batches))
    )
    recorder = PredictionRecorder("bench", "1", "regression")
    exported = inferwatch.stats().spans_exported  # counted over the process's life
    inputs = np.zeros((ROWS_PER_BATCH, 2))
    outputs = np.arange(ROWS_PER_BATCH, dtype=np.float64) % 7
    for prediction_ids in batches:
        recorder.record(inputs, outputs, ids=prediction_ids, start_ns=time.time_ns())
    assert inferwatch.flush(timeout=300.0), "the collector did not take the predictions"
    assert inferwatch.stats().spans_exported - exported == len(batches), inferwatch.stats()
    inferwatch.shutdown()


def bare_table(path: Path, prediction_ids: list[str]) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE predictions (id TEXT PRIMARY KEY, label_text TEXT, label_num REAL, "
        "label_ms INTEGER)"
    )
    db.execute("BEGIN")
    db.executemany("INSERT INTO predictions (id) VALUES (?)", ((pid,) for pid in prediction_ids))
    db.execute("COMMIT")
    return db


def label_bodies(prediction_ids: list[str], requests: int) -> list[dict[str, object]]:
    bodies = []
    for r in range(requests):
        chunk = prediction_ids[r * LABELS_PER_REQUEST : (r + 1) * LABELS_PER_REQUEST]
        labels = [{"prediction_id": pid, "label": float(i % 7)} for i, pid in enumerate(chunk)]
        bodies.append({"model": "bench", "labels": labels})
    return bodies


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, timeout: float = 300.0) -> None:
    """Until the collector has folded what it was sent (under 2% of a core over half a
    second), so that its background work does not run during the label requests."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - before < 0.01:
            return
        before = now
    raise RuntimeError("the collector did not settle")


@dataclass
class Collector:
    """``inferwatch collector`` in a process of its own, and a client of it."""

    process: subprocess.Popen[bytes]
    url: str
    http: httpx.Client

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        self.process.wait()


def start_collector(database: Path, source: Path | None) -> Collector:
    """A collector on ``database``: this checkout's, or the one whose ``sdk/src`` and
    ``collector/src`` are under ``source`` (ahead of the editable installs)."""
    env = dict(os.environ)
    if source is not None:
        paths = [str(source / "sdk" / "src"), str(source / "collector" / "src")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [*paths, env.get("PYTHONPATH")]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "inferwatch",
            "collector",
            "--db",
            f"sqlite:///{database}",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    wait_ready(url, process)
    return Collector(process, url, httpx.Client(base_url=url, timeout=120))


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


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the collector exited with {process.returncode}")
        try:
            httpx.get(f"{url}/v1/models", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("the collector did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=300_000)
    parser.add_argument("--requests", type=int, default=12, help="the first is not timed")
    parser.add_argument("--before", help="a commit whose collector is measured in the same run")
    args = parser.parse_args()
    needed = args.requests * LABELS_PER_REQUEST
    if args.predictions < needed:
        parser.error(f"--predictions must be at least {needed} (requests x 10,000)")
    load_at_start = os.getloadavg()[0]
    timings: dict[str, list[float]] = {"bare": [], "store": []}
    with tempfile.TemporaryDirectory(prefix="bench-labels-") as tmp:
        folder = Path(tmp)
        batches = prediction_batches(args.predictions)
        made = [pid for batch in batches for pid in batch]
        stored_predictions(folder / _STORE, batches)
        bare = bare_table(folder / "bare.db", made)
        store = open_storage(load_config(None, db=f"sqlite:///{folder / _STORE}"))
        bodies = label_bodies(made, args.requests)
        encoded = [json.dumps(body).encode() for body in bodies]
        collectors: dict[str, Collector] = {}
        try:
            collectors["http"] = start_collector(folder / _SERVED, None)
            if args.before:
                source = sources_at(args.before, folder / "before")
                collectors["http before"] = start_collector(folder / "before.db", source)
            for collector in collectors.values():
                sent_predictions(collector.url, batches)
                wait_idle(collector.process.pid)
            # The first request of each kind warms caches (statements, pages): not timed.
            for number, (body, payload) in enumerate(zip(bodies, encoded, strict=True)):
                model, records = parse_labels(body, LABELS_PER_REQUEST)
                updates = [
                    (record.value_text, record.value_num, _T0_MS, record.prediction_id)
                    for record in records
                ]
                started = time.perf_counter()
                bare.execute("BEGIN IMMEDIATE")
                bare.executemany(
                    "UPDATE predictions SET label_text = ?, label_num = ?, label_ms = ? "
                    "WHERE id = ?",
                    updates,
                )
                bare.execute("COMMIT")
                if number:
                    timings["bare"].append(time.perf_counter() - started)

                started = time.perf_counter()
                model, records = parse_labels(body, LABELS_PER_REQUEST)
                outcome = store.labels.apply(model, records, _T0_MS + _HOUR_MS)
                if number:
                    timings["store"].append(time.perf_counter() - started)
                assert outcome.joined == LABELS_PER_REQUEST, outcome

                for name, collector in collectors.items():
                    started = time.perf_counter()
                    response = collector.http.post(
                        "/v1/labels",
                        content=payload,
                        headers={"content-type": "application/json"},
                    )
                    answer = response.json()
                    if number:
                        timings.setdefault(name, []).append(time.perf_counter() - started)
                    assert answer.get("joined") == LABELS_PER_REQUEST, (name, answer)
        finally:
            for collector in collectors.values():
                collector.stop()
            store.close()
            bare.close()
    rates = {name: LABELS_PER_REQUEST / statistics.median(t) for name, t in timings.items()}
    ratio = rates["http"] / rates["bare"]
    lines = [
        "## Labels: the label join (`bench/bench_labels.py`)",
        "",
        f"{os.cpu_count()} cores; {datetime.date.today().isoformat()}; load average "
        f"{load_at_start:.2f} at start, {os.getloadavg()[0]:.2f} at the end. "
        f"{args.predictions:,} stored predictions (batches of {ROWS_PER_BATCH}, UUIDv7), "
        f"{LABELS_PER_REQUEST:,} labels a request, each joining a prediction; medians of "
        f"{args.requests - 1} requests of each kind, interleaved, after one not timed; the "
        "collector idle (what it was sent folded) before the first.",
        "",
        "| path | labels/s | ms / 10,000 labels | vs bare executemany |",
        "|---|---:|---:|---:|",
    ]
    for label, name in (
        ("bare SQLite `executemany` UPDATE by id, one transaction (baseline)", "bare"),
        ("`LabelStore.apply` (parse + join + store), in process", "store"),
        (f"POST /v1/labels over HTTP, end to end (goal >= {GOAL}x)", "http"),
        (f"the same, the collector of {args.before}", "http before"),
    ):
        if name not in timings:
            continue
        ms = statistics.median(timings[name]) * 1000
        lines.append(
            f"| {label} | {rates[name]:,.0f} | {ms:.1f} | {rates[name] / rates['bare']:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(text)
    print(text)
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
