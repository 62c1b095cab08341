"""Overload: more senders than the collector can take. Sender processes (``flood.py``) post
requests back to back, ignoring Retry-After, while a monitored service (``worker.py``) sends
through the SDK. Measured: the answers by status (goal: 200, 429 or 503 only, never 500), the
collector's RSS sampled with psutil (goal: bounded), the service's caller errors (goal: 0) and
the rows answered 200 against the rows stored."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from .process import Collector, load
from .service import Services, summed

MODEL = "faults-overload"
BENCH = Path(__file__).resolve().parent.parent
# A second run with tight limits shows the refusals the defaults need far more senders for.
CONFIGS = {
    "defaults": None,
    "tight": "[collector]\nmax_queue_rows = 20000\nmax_inflight_bytes = 4194304\n",
}


def run(
    folder: Path,
    config: str,
    senders: int = 6,
    threads: int = 4,
    seconds: float = 60.0,
    spans: int = 50,
    rows: int = 100,
) -> dict[str, Any]:
    collector = Collector(folder, config=CONFIGS[config])
    started_load = load()
    collector.start_and_wait()
    rss = [collector.rss_mib()]
    services = Services(collector.url, MODEL, 1, 100.0, ["--queue", "200000"])
    floods = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faults.flood",
                collector.url,
                MODEL,
                "--threads",
                str(threads),
                "--seconds",
                str(seconds),
                "--spans",
                str(spans),
                "--rows",
                str(rows),
                "--seed",
                str(n),
            ],
            stdout=subprocess.PIPE,
            cwd=BENCH,
        )
        for n in range(senders)
    ]
    try:
        while any(flood.poll() is None for flood in floods):
            rss.append(collector.rss_mib())
            time.sleep(0.5)
        reports = [
            json.loads(flood.communicate()[0].decode().strip().splitlines()[-1]) for flood in floods
        ]
        time.sleep(5.0)  # the SDK's queue drains once the flood is over
        rss.append(collector.rss_mib())
        service = summed(services.stop())
        time.sleep(2.0)
        stored = collector.stored_rows(MODEL)
        rss.append(collector.rss_mib())
    finally:
        for flood in floods:
            if flood.poll() is None:
                flood.kill()
        collector.stop()
    answers: Counter[str] = Counter()
    for report in reports:
        answers.update(report["answers"])
    latencies = np.concatenate([report["latencies_ms"] for report in reports])
    return {
        "config": config,
        "load": started_load,
        "senders": senders,
        "threads": threads,
        "seconds": seconds,
        "spans": spans,
        "rows": rows,
        "answers": dict(answers),
        "p50_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "rss_start": rss[0],
        "rss_max": max(rss),
        "rss_end": rss[-1],
        "service": service,
        "accepted_rows": sum(report["accepted_rows"] for report in reports),
        "stored": stored,
    }


def table(results: list[dict[str, Any]]) -> str:
    first = results[0]
    lines = [
        "### Overload (`faults/overload.py`)",
        "",
        f"Run {datetime.date.today().isoformat()}, {os.cpu_count()} cores (shared), "
        f"{first['load']} at start. {first['senders']} sender processes of {first['threads']} "
        f"threads post requests of {first['spans']} spans x {first['rows']} rows x 10 features "
        f"(OTLP/JSON) back to back for {first['seconds']:g} s, ignoring Retry-After, while a "
        "worker process calls an `@inferwatch.monitor` function 100 times a second through "
        "the SDK. `tight`: `max_queue_rows = 20000`, `max_inflight_bytes = 4 MiB`. Goals: "
        "no 500, bounded RSS, 0 caller errors, rows stored = rows answered 200.",
        "",
        "| limits | answers (status: count) | request p50 / p99 (ms) "
        "| collector RSS start / max / end (MiB) | caller errors (calls) "
        "| SDK exported / dropped / failed | rows answered 200 | rows stored | stored = answered |",
        "|---|---|---|---|---|---|---:|---:|---|",
    ]
    for r in results:
        stats = r["service"]["stats"]
        answered = r["accepted_rows"] + stats["spans_exported"]
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(r["answers"].items()))
        ok = r["stored"] == answered and not any(
            k.startswith("5") and k != "503" for k in r["answers"]
        )
        lines.append(
            f"| {r['config']} | {shown} | {r['p50_ms']:.0f} / {r['p99_ms']:.0f} | "
            f"{r['rss_start']:.0f} / {r['rss_max']:.0f} / {r['rss_end']:.0f} | "
            f"{r['service']['errors']} ({r['service']['calls']}) | {stats['spans_exported']} / "
            f"{stats['spans_dropped']} / {stats['spans_failed']} | {answered} | {r['stored']} | "
            f"{'met' if ok else '**missed**'} |"
        )
    return "\n".join(lines) + "\n"
