"""SIGKILL mid-stream: a collector killed while a monitored service sends, started again on the
same database and port; several rounds. Measured: the time from the kill to /healthz answering
and to the first row stored by the new process, and at the end rows sent (the SDK's exported
spans, one row each) against rows stored, with the duplicates the collector dropped (a batch
committed but not yet answered when the kill came is sent again by the SDK)."""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import Any

from .process import Collector, load
from .service import Services, summed

MODEL = "faults-kill"
DUPLICATES = 'inferwatch_ingest_batches_total{outcome="duplicate"}'
ROWS = "inferwatch_ingest_rows_total"


def run(folder: Path, rounds: int = 3, rate: float = 200.0, between: float = 8.0) -> dict[str, Any]:
    collector = Collector(folder)
    started_load = load()
    collector.start_and_wait()
    # A queue that holds the whole restart, so that every recorded span is sent.
    services = Services(collector.url, MODEL, 1, rate, ["--queue", "200000"])
    duplicates = 0.0
    results: list[dict[str, Any]] = []
    try:
        for _ in range(rounds):
            time.sleep(between)
            duplicates += collector.metric(DUPLICATES)
            rows_before = collector.stored_rows(MODEL)
            killed = time.monotonic()
            collector.kill()
            collector.start_and_wait()
            healthy = time.monotonic()
            stored = _first_row(collector)
            results.append(
                {
                    "rows_before": rows_before,
                    "healthy_s": healthy - killed,
                    "storing_s": stored - killed,
                }
            )
        time.sleep(between)
        reports = services.stop()
        time.sleep(2.0)
        duplicates += collector.metric(DUPLICATES)
        stored_rows = collector.stored_rows(MODEL)
    finally:
        collector.stop()
    service = summed(reports)
    return {
        "load": started_load,
        "rate": rate,
        "rounds": results,
        "service": service,
        "stored": stored_rows,
        "duplicates": int(duplicates),
    }


def _first_row(collector: Collector) -> float:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if collector.metric(ROWS) > 0:
            return time.monotonic()
        time.sleep(0.05)
    return float("nan")


def table(result: dict[str, Any]) -> str:
    service = result["service"]
    stats = service["stats"]
    sent = stats["spans_exported"]
    lines = [
        "### SIGKILL mid-stream (`faults/kill.py`)",
        "",
        f"Run {datetime.date.today().isoformat()}, {os.cpu_count()} cores (shared), "
        f"{result['load']} at start. One worker process calls an `@inferwatch.monitor` "
        f"function {result['rate']:g} times a second (queue of 200,000 spans, so the restart "
        "drops nothing); the collector (SQLite, defaults: fsync per group commit, checkpoint "
        "every 2 s) is killed with SIGKILL and started again at once on the same database and "
        "port, once per round. Goals: rows stored = rows sent, none twice; 0 caller errors.",
        "",
        "| round | rows stored before the kill | kill to /healthz 200 (s) "
        "| kill to first row stored again (s) |",
        "|---:|---:|---:|---:|",
    ]
    for n, r in enumerate(result["rounds"], 1):
        lines.append(f"| {n} | {r['rows_before']} | {r['healthy_s']:.1f} | {r['storing_s']:.1f} |")
    ok = result["stored"] == sent and stats["spans_recorded"] == sent
    lines += [
        "",
        "| calls | caller errors | spans recorded | rows sent (exported) | dropped | failed "
        "| rows stored | duplicates dropped by the collector | rows stored = rows sent |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {service['calls']} | {service['errors']} | {stats['spans_recorded']} | {sent} | "
        f"{stats['spans_dropped']} | {stats['spans_failed']} | {result['stored']} | "
        f"{result['duplicates']} | {'met' if ok else '**missed**'} |",
    ]
    return "\n".join(lines) + "\n"
