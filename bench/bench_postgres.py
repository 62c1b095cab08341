"""The collector on PostgreSQL beside SQLite, same run: ingest rows/s and label joins/s for one
SQLite collector, one PostgreSQL replica and two replicas sharing one database.

Payload and clients as bench_collector.py (OTLP/HTTP protobuf requests of 10 spans x 100 rows x
20 float features, UUIDv7 prediction ids, 4 client threads); with two replicas the clients
alternate between them. Labels: POST /v1/labels of 10,000 labels for ingested ids, from one
thread per collector at once. PostgreSQL is the local server (a database of this run's own,
dropped after), with its default synchronous_commit = on. Nothing is pinned: on this 2-core
machine the clients, the collectors and the PostgreSQL server share both cores, so two replicas
show the cost of coordination, not the gain of a second machine (docs/scaling.md works that out).

Usage: python bench/bench_postgres.py [--rows 300000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
from bench_collector import (
    LABELS_PER_REQUEST,
    ROWS_PER_REQUEST,
    Requests,
    cpu_seconds,
    free_port,
    prediction_id,
    wait_ready,
)

from inferwatch_testkit.postgres import TemporaryDatabase, admin_url

CLIENTS = 4
LABEL_REQUESTS = 6
RESULT = Path(__file__).resolve().parent / "results" / "postgres.md"


def start(db: str, tmp: str, instance: str) -> tuple[str, subprocess.Popen[bytes]]:
    config = Path(tmp) / f"{instance}.toml"
    config.write_text(f'[collector]\ninstance_id = "{instance}"\n')
    port = free_port()
    args = [sys.executable, "-m", "inferwatch", "collector", "--db", db, "--config", str(config)]
    process = subprocess.Popen([*args, "--port", str(port), "--log-level", "warning"])
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, process)
    return url, process


def ingest(urls: Sequence[str], count: int) -> float:
    """Post requests 0 .. count-1 from CLIENTS threads, thread i to ``urls[i % len(urls)]``."""
    next_number = [0]
    lock = threading.Lock()

    def client(url: str) -> None:
        requests = Requests()
        with httpx.Client(base_url=url, timeout=60) as http:
            while True:
                with lock:
                    number = next_number[0]
                    if number >= count:
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

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(urls[i % len(urls)],)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def join_labels(urls: Sequence[str]) -> float:
    """Labels joined a second: each collector posts its own share of requests at once."""

    def post(url: str, requests: Sequence[int]) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for r in requests:
                labels = [
                    {
                        "prediction_id": prediction_id(
                            r * 10 + s // 1000, (s // 100) % 10, s % 100
                        ),
                        "label": float(s % 7),
                    }
                    for s in range(LABELS_PER_REQUEST)
                ]
                counts = http.post("/v1/labels", json={"model": "bench", "labels": labels}).json()
                assert counts["joined"] == LABELS_PER_REQUEST, counts

    shares = [list(range(i, LABEL_REQUESTS, len(urls))) for i in range(len(urls))]
    threads = [threading.Thread(target=post, args=pair) for pair in zip(urls, shares, strict=True)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LABEL_REQUESTS * LABELS_PER_REQUEST / (time.perf_counter() - started)


def measure(name: str, dbs: Sequence[str], requests: int, tmp: str) -> dict[str, float | str]:
    started = [start(db, tmp, f"{name}-{i}") for i, db in enumerate(dbs)]
    urls = [url for url, _ in started]
    try:
        cpu_before = sum(cpu_seconds(p.pid) for _, p in started)
        seconds = ingest(urls, requests)
        cpu = (sum(cpu_seconds(p.pid) for _, p in started) - cpu_before) / (
            requests * ROWS_PER_REQUEST
        )
        labels = join_labels(urls)
    finally:
        for _, process in started:
            process.terminate()
            process.wait()
    rate = requests * ROWS_PER_REQUEST / seconds
    print(f"{name}: {rate:,.0f} rows/s, {labels:,.0f} labels/s", flush=True)
    return {"name": name, "rows": rate, "cpu_us": cpu * 1e6, "labels": labels}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000, help="rows to ingest per setup")
    args = parser.parse_args()
    admin, why = admin_url()
    if admin is None:
        raise SystemExit(f"bench_postgres needs the PostgreSQL server on 127.0.0.1:5432: {why}")
    when = datetime.now(UTC)
    load = os.getloadavg()[0]
    requests = max(LABEL_REQUESTS * 10, args.rows // ROWS_PER_REQUEST)
    rows: list[dict[str, float | str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(measure("SQLite, one collector", [f"sqlite:///{tmp}/bench.db"], requests, tmp))
        for replicas in (1, 2):
            database = TemporaryDatabase(admin)
            try:
                name = f"PostgreSQL, {replicas} replica{'s' if replicas > 1 else ''}"
                rows.append(measure(name, [database.url] * replicas, requests, tmp))
            finally:
                database.drop()
    base = rows[0]
    lines = [
        "## PostgreSQL beside SQLite (`bench/bench_postgres.py`)",
        "",
        f"Ingest as bench_collector.py ({requests * ROWS_PER_REQUEST:,} rows a setup, {CLIENTS} "
        "client threads, nothing pinned: clients, collectors and the PostgreSQL server share "
        f"this machine's {os.cpu_count()} cores); labels: {LABEL_REQUESTS} requests of "
        f"{LABELS_PER_REQUEST:,} labels for ingested ids, split across the collectors.",
        "",
        f"Run {when:%Y-%m-%d %H:%M} UTC, load average {load:.2f} at the start.",
        "",
        "| setup | ingest rows/s | vs SQLite | collectors' CPU a row | labels joined/s "
        "| vs SQLite |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r['name']} | {r['rows']:,.0f} | {float(r['rows']) / float(base['rows']):.2f} | "
            f"{r['cpu_us']:.1f} us | {r['labels']:,.0f} | "
            f"{float(r['labels']) / float(base['labels']):.2f} |"
            for r in rows
        ),
        "",
    ]
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
