"""The collector on PostgreSQL beside SQLite, same run: ingest rows/s and label joins/s for one
SQLite collector, one PostgreSQL replica and two replicas sharing one database; then the label
join rate of one replica at a small prediction-id index and with the index filled to 10 M ids.

Payload and clients as bench_collector.py (OTLP/HTTP protobuf requests of 10 spans x 100 rows x
20 float features, UUIDv7 prediction ids, 4 client threads); with two replicas the clients
alternate between them. Labels: POST /v1/labels of 10,000 labels for ingested ids, from one
thread per collector at once. PostgreSQL is the local server (a database of this run's own,
dropped after), with its default synchronous_commit = on. Nothing is pinned: on this 2-core
machine the clients, the collectors and the PostgreSQL server share both cores, so two replicas
show the cost of coordination, not the gain of a second machine (docs/scaling.md works that out).

The 10 M index: one replica ingests 120 requests (120,000 rows) over HTTP and joins the labels of
half of them (the small index); then the server fills prediction_ids to ``--index-ids`` with
INSERT ... SELECT from generate_series (UUIDv7-like keys: 6 bytes of milliseconds then random
bytes, as the SDK's), spread over ``FILL_DAYS`` day partitions as a month of retention spreads
them, and the replica joins the labels of the other half. The table and index size on disk is
PostgreSQL's, summed over the partitions.

Usage: python bench/bench_postgres.py [--rows 300000] [--index-ids 10000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from bench_collector import (
    LABELS_PER_REQUEST,
    ROWS_PER_REQUEST,
    Requests,
    cpu_seconds,
    free_port,
    prediction_id,
    wait_ready,
)

from inferwatch.collector.labels.reach import IdReach, id_reach
from inferwatch.collector.labels.store import LabelRecord
from inferwatch.collector.settings.limits import IngestLimits
from inferwatch.collector.settings.model import ModelConfig
from inferwatch.collector.storage.postgres.database import Database
from inferwatch.collector.storage.postgres.labels import PostgresLabelStore
from inferwatch.collector.storage.postgres.prediction_index import DAY_MS, make_partitions
from inferwatch_testkit.postgres import TemporaryDatabase, admin_url

CLIENTS = 4
LABEL_REQUESTS = 6
RESULT = Path(__file__).resolve().parent / "results" / "postgres.md"
# Day partitions the 10 M filler ids are spread over: a month of retention, the day of the
# ingested ones among them.
FILL_DAYS = 30
# Rounds of the lookup comparison: each posts every label request once with each lookup.
LOOKUP_ROUNDS = 3
# Filler rows a statement inserts.
FILL_CHUNK = 1_000_000


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


def label_ids(r: int) -> list[str]:
    """The ids label request r names: those of ingest requests 10 r .. 10 r + 9."""
    return [
        prediction_id(r * 10 + s // 1000, (s // 100) % 10, s % 100)
        for s in range(LABELS_PER_REQUEST)
    ]


def join_labels(urls: Sequence[str], first: int = 0) -> float:
    """Labels joined a second: each collector posts its own share of requests at once; label
    request r counts from ``first``."""

    def post(url: str, requests: Sequence[int]) -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for r in requests:
                labels = [
                    {"prediction_id": pid, "label": float(s % 7)}
                    for s, pid in enumerate(label_ids(r))
                ]
                counts = http.post("/v1/labels", json={"model": "bench", "labels": labels}).json()
                assert counts["joined"] == LABELS_PER_REQUEST, counts

    shares = [list(range(first + i, first + LABEL_REQUESTS, len(urls))) for i in range(len(urls))]
    threads = [threading.Thread(target=post, args=pair) for pair in zip(urls, shares, strict=True)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LABEL_REQUESTS * LABELS_PER_REQUEST / (time.perf_counter() - started)


def server_cpu_seconds() -> float:
    """CPU time of this machine's PostgreSQL server processes (backends, WAL writer,
    checkpointer, ...) so far: what the database spends, beside the collectors. A backend that
    exits takes its time with it; the collectors keep their pools' connections while measured."""
    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        times = process.info["cpu_times"]
        if process.info["name"] in ("postgres", "postmaster") and times is not None:
            total += times.user + times.system
    return total


def measure(name: str, dbs: Sequence[str], requests: int, tmp: str) -> dict[str, float | str]:
    started = [start(db, tmp, f"{name}-{i}") for i, db in enumerate(dbs)]
    urls = [url for url, _ in started]
    on_server = not dbs[0].startswith("sqlite")
    try:
        cpu_before = sum(cpu_seconds(p.pid) for _, p in started)
        server_before = server_cpu_seconds()
        seconds = ingest(urls, requests)
        rows = requests * ROWS_PER_REQUEST
        cpu = (sum(cpu_seconds(p.pid) for _, p in started) - cpu_before) / rows
        server = (server_cpu_seconds() - server_before) / rows if on_server else 0.0
        labels = join_labels(urls)
    finally:
        for _, process in started:
            process.terminate()
            process.wait()
    rate = requests * ROWS_PER_REQUEST / seconds
    print(f"{name}: {rate:,.0f} rows/s, {labels:,.0f} labels/s", flush=True)
    return {
        "name": name,
        "rows": rate,
        "cpu_us": cpu * 1e6,
        "server_us": server * 1e6,
        "labels": labels,
    }


def server_cell(row: dict[str, Any]) -> str:
    return f"{row['server_us']:.1f} us" if row["server_us"] else "(in the collector)"


def share_cell(row: dict[str, Any]) -> str:
    if not row["server_us"]:
        return "-"
    return f"{row['server_us'] / (row['server_us'] + row['cpu_us']):.0%}"


def index_rows(url: str) -> tuple[int, int]:
    """prediction_ids' rows, and its bytes on disk (tables and indexes of every partition)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT COUNT(*) FROM prediction_ids), COALESCE(SUM("
            "pg_total_relation_size(i.inhrelid)), 0)::bigint FROM pg_inherits i "
            "WHERE i.inhparent = to_regclass('prediction_ids')"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def fill_index(url: str, total: int) -> float:
    """Fill prediction_ids to ``total`` rows on the server; the seconds it took."""
    have, _ = index_rows(url)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        (model_key,) = conn.execute(
            "SELECT key FROM model_keys WHERE model = 'bench'"
        ).fetchone() or (None,)
        assert model_key is not None, "the replica ingested nothing"
        (last_end,) = conn.execute("SELECT MAX(window_end_ms) FROM prediction_ids").fetchone() or (
            0,
        )
        first_day = int(last_end) // DAY_MS - FILL_DAYS + 1
        with conn.transaction():
            make_partitions(conn, range(first_day, first_day + FILL_DAYS))
        missing = max(0, total - have)
        per_day = -(-missing // FILL_DAYS)
        for d in range(FILL_DAYS):
            day_start = (first_day + d) * DAY_MS
            left = min(per_day, missing - d * per_day)
            for offset in range(0, max(0, left), FILL_CHUNK):
                n = min(FILL_CHUNK, left - offset)
                # Ids in the order of their milliseconds, as the SDK's UUIDv7 arrive.
                conn.execute(
                    "INSERT INTO prediction_ids (model_key, id_key, window_end_ms, batch, row) "
                    "SELECT %s, '\\x00'::bytea || substring(int8send(%s + g * 8) FROM 3) "
                    "|| substring(uuid_send(gen_random_uuid()) FROM 7), %s + 86399999, "
                    "-1 - g / 1000, g %% 1000 FROM generate_series(%s::bigint, %s::bigint) AS g",
                    (model_key, day_start, day_start, offset, offset + n - 1),
                )
        conn.execute("VACUUM ANALYZE prediction_ids")
    return time.perf_counter() - started


def compare_lookups(url: str) -> dict[str, list[float]]:
    """Labels joined a second by the label store in this process, on the filled index, with
    the lookup of every day partition (no reach: the join as it was) and with the lookup near
    each UUIDv7 id's time (the default model's reach, as the collector passes it): the same
    label requests (their ids labelled already, so each is replaced), the two interleaved."""
    reach = id_reach(ModelConfig(), IngestLimits())
    database = Database(url)
    store = PostgresLabelStore(database)
    rates: dict[str, list[float]] = {"every partition": [], "near the id's time": []}
    modes: list[tuple[str, IdReach | None]] = [("every partition", None)]
    modes.append(("near the id's time", reach))
    try:
        for round_number in range(LOOKUP_ROUNDS):
            for r in range(2 * LABEL_REQUESTS):
                labels = [LabelRecord(pid, "1", 1.0) for pid in label_ids(r)]
                order = modes if (round_number + r) % 2 == 0 else modes[::-1]
                for name, mode in order:
                    started = time.perf_counter()
                    outcome = store.apply("bench", labels, 0, mode)
                    rates[name].append(len(labels) / (time.perf_counter() - started))
                    assert outcome.joined == len(labels), outcome
    finally:
        database.close()
    return rates


def measure_index(admin: str, tmp: str, index_ids: int) -> dict[str, Any]:
    """One replica's label joins/s at a small index and at ``index_ids`` ids, same process."""
    database = TemporaryDatabase(admin)
    try:
        url, process = start(database.url, tmp, "index")
        try:
            ingest([url], 2 * LABEL_REQUESTS * 10)
            small_rows, small_bytes = index_rows(database.url)
            small = join_labels([url])
            fill_seconds = fill_index(database.url, index_ids)
            big_rows, big_bytes = index_rows(database.url)
            big = join_labels([url], first=LABEL_REQUESTS)
        finally:
            process.terminate()
            process.wait()
        lookups = compare_lookups(database.url)
    finally:
        database.drop()
    print(f"index: {small:,.0f} labels/s at {small_rows:,} ids, {big:,.0f} at {big_rows:,}")
    return {
        "small_rows": small_rows,
        "small_labels": small,
        "big_rows": big_rows,
        "big_labels": big,
        "bytes_per_million": (big_bytes - small_bytes) / ((big_rows - small_rows) / 1e6),
        "fill_seconds": fill_seconds,
        "lookups": lookups,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000, help="rows to ingest per setup")
    parser.add_argument(
        "--index-ids", type=int, default=10_000_000, help="prediction ids of the large index"
    )
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
        index = measure_index(admin, tmp, args.index_ids)
    lookups: dict[str, list[float]] = index["lookups"]
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
        "| setup | ingest rows/s | vs SQLite | collectors' CPU a row | database server's "
        "CPU a row | the server's share | labels joined/s | vs SQLite |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {r['name']} | {r['rows']:,.0f} | {float(r['rows']) / float(base['rows']):.2f} | "
            f"{r['cpu_us']:.1f} us | {server_cell(r)} | {share_cell(r)} | "
            f"{r['labels']:,.0f} | {float(r['labels']) / float(base['labels']):.2f} |"
            for r in rows
        ),
        "",
        "The server's CPU is that of every PostgreSQL process on the machine during the ingest "
        "(nothing else used the server); SQLite's is inside the collector's own.",
        "",
        "### Label joins against a 10 M prediction-id index (one replica)",
        "",
        f"One replica, one database: {LABEL_REQUESTS} requests of {LABELS_PER_REQUEST:,} labels "
        "joined at the small index the replica's own ingest made, then as many (other ids) "
        f"once the server filled prediction_ids to {index['big_rows']:,} ids over "
        f"{FILL_DAYS} day partitions ({index['fill_seconds']:.0f} s to fill, "
        "INSERT ... SELECT generate_series).",
        "",
        "| prediction ids in the index | labels joined/s | vs the small index |",
        "|---|---|---|",
        f"| {index['small_rows']:,.0f} | {index['small_labels']:,.0f} | 1.00 |",
        f"| {index['big_rows']:,.0f} | {index['big_labels']:,.0f} | "
        f"{index['big_labels'] / index['small_labels']:.2f} |",
        "",
        f"prediction_ids on disk (table and index): {index['bytes_per_million'] / 1e6:.0f} MB "
        "per million ids.",
        "",
        "### The lookup of each label's id: every day partition, or near the id's time",
        "",
        f"The same filled database, the label store in the bench's process: each of the "
        f"{2 * LABEL_REQUESTS} label requests ({LABELS_PER_REQUEST:,} ids labelled already, so "
        f"replaced) posted {LOOKUP_ROUNDS} times with each lookup, the two interleaved: with "
        "no reach every day partition's index is probed for every id (the join as it was); "
        "with the default model's reach (1 h windows, 5 min lateness, 1 h max_clock_skew) "
        "only the partition of the day near each UUIDv7 id's time.",
        "",
        "| lookup | median labels joined/s | min | max | vs every partition |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {statistics.median(values):,.0f} | {min(values):,.0f} | "
            f"{max(values):,.0f} | "
            f"{statistics.median(values) / statistics.median(lookups['every partition']):.2f} |"
            for name, values in lookups.items()
        ),
        "",
    ]
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
