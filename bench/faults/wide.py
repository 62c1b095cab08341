"""A window of 100,000 columns, checkpointed: what writing its state costs, and how long the
collector's event loop stalls meanwhile (a checkpoint runs in a thread, but a single long call
that holds the GIL stops the loop, and /healthz with it).

Before / after in the same run: format version 2 of the stored window summary (``to_dict()`` as
JSON, zlib level 6: the release before, rebuilt here as it wrote it) against version 3 (the
numeric columns as arrays, ``WindowSummary.to_bytes``). In-process: the event loop ticks every
millisecond while ``asyncio.to_thread`` writes (or reads) the summary; the longest gap between
ticks is the stall. Then a real collector: a span of 100,000 features (``columns_per_frame``
raised to let it in), and /healthz polled every 10 ms through the next checkpoints.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from inferwatch.collector.window.summaries import SummaryLayout, WindowSummary
from inferwatch.frame import Frame, numeric
from inferwatch_testkit.collector import SpanSender

from .process import Collector, load

WIDTH = 100_000
ROWS = 4
BINS = 20


def v2_bytes(summary: WindowSummary) -> bytes:
    """The stored summary as the release before wrote it (format version 2)."""
    payload = json.dumps(summary.to_dict(), separators=(",", ":"), allow_nan=False)
    compressed = zlib.compress(payload.encode(), 6)
    return struct.pack("<4sHHQ", b"IWSM", 2, 1, len(compressed)) + compressed


def wide_summary(binned: bool) -> WindowSummary:
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(WIDTH)]
    layout = None
    if binned:
        # Each column's own cuts, as a reference fits them (quantiles of its own values).
        base = np.quantile(rng.normal(size=10_000), np.linspace(0, 1, BINS + 1)[1:-1])
        shifts = rng.normal(scale=0.1, size=WIDTH)
        layout = SummaryLayout({("feature", n): base + shifts[i] for i, n in enumerate(names)})
    summary = WindowSummary(layout)
    for seed in range(3):
        x = np.random.default_rng(seed).normal(size=(ROWS, WIDTH))
        summary.update(Frame(ROWS, (numeric("x", x, names),)))
    return summary


async def _stall(work: Callable[[], Any]) -> tuple[float, float]:
    """(seconds ``work`` took in a thread, the longest gap between 1 ms ticks meanwhile)."""
    done = False
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await asyncio.to_thread(work)
    took = time.perf_counter() - started
    done = True
    await ticker
    return took, max(gaps)


def in_process() -> list[dict[str, Any]]:
    rows = []
    for binned in (False, True):
        summary = wide_summary(binned)
        old, new = v2_bytes(summary), summary.to_bytes()
        assert WindowSummary.from_bytes(old).to_dict() == WindowSummary.from_bytes(new).to_dict()
        for version, write, blob in (
            ("2 (before)", v2_bytes, old),
            ("3", WindowSummary.to_bytes, new),
        ):
            write_s, write_stall = asyncio.run(_stall(lambda w=write, s=summary: w(s)))
            read_s, read_stall = asyncio.run(_stall(lambda b=blob: WindowSummary.from_bytes(b)))
            rows.append(
                {
                    "binned": binned,
                    "version": version,
                    "bytes": len(blob),
                    "write_s": write_s,
                    "write_stall_s": write_stall,
                    "read_s": read_s,
                    "read_stall_s": read_stall,
                }
            )
            print(rows[-1], flush=True)
    return rows


def real_collector(folder: Path, seconds: float = 12.0) -> dict[str, Any]:
    collector = Collector(folder, config=f"[collector.limits]\ncolumns_per_frame = {WIDTH}\n")
    collector.start_and_wait()
    names = [f"f{i}" for i in range(WIDTH)]
    latencies: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                started = time.perf_counter()
                client.get(f"{collector.url}/healthz").raise_for_status()
                latencies.append(time.perf_counter() - started)
                stop.wait(0.01)

    poller = threading.Thread(target=poll)
    sender = SpanSender(collector.url)
    try:
        poller.start()
        now_ns = time.time_ns()
        for n in range(3):
            x = np.random.default_rng(n).normal(size=(ROWS, WIDTH))
            sender.send("wide", "1", now_ns + n, Frame(ROWS, (numeric("x", x, names),)),
                        [f"w{n}-{i}" for i in range(ROWS)])  # fmt: skip
            sender.flush()
        time.sleep(seconds)
        stop.set()
        poller.join()
        stored = collector.stored_rows("wide")
        rss = collector.rss_mib()
    finally:
        stop.set()
        sender.close()
        collector.stop()
    values = np.asarray(latencies) * 1000
    return {
        "load": load(),
        "polls": len(latencies),
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
        "stored": stored,
        "rss": rss,
    }


def run(folder: Path) -> dict[str, Any]:
    started_load = load()
    return {"load": started_load, "in_process": in_process(), "collector": real_collector(folder)}


def table(result: dict[str, Any]) -> str:
    lines = [
        "### A window of 100,000 columns, checkpointed (`faults/wide.py`)",
        "",
        f"Run {datetime.date.today().isoformat()}, {os.cpu_count()} cores (shared), "
        f"{result['load']} at start. A window summary of {WIDTH:,} numeric columns (3 batches "
        f"of {ROWS} rows), without bins and with {BINS} bins per column (each column its own "
        "cuts), written and read in a thread (`asyncio.to_thread`, as a checkpoint and a "
        "query do) while the event loop ticks every millisecond; the stall is the longest gap "
        "between ticks. Version 2 is the stored form of the release before (JSON, zlib 6), "
        "version 3 this one's (arrays, zlib 1).",
        "",
        "| columns | format version | stored size (MB) | write (s) | event-loop stall while "
        "writing (ms) | read (s) | stall while reading (ms) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["in_process"]:
        kind = f"{WIDTH:,}, {'20 bins each' if r['binned'] else 'no bins'}"
        lines.append(
            f"| {kind} | {r['version']} | {r['bytes'] / 1e6:.1f} | {r['write_s']:.2f} | "
            f"{r['write_stall_s'] * 1000:.0f} | {r['read_s']:.2f} | "
            f"{r['read_stall_s'] * 1000:.0f} |"
        )
    c = result["collector"]
    lines += [
        "",
        f"A real collector (this release) given 3 spans of {WIDTH:,} features (no reference, "
        f"so no bins), /healthz polled every 10 ms for 12 s after (checkpoints every 2 s): "
        f"{c['polls']} polls, p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms, max "
        f"{c['max_ms']:.0f} ms; {c['stored']} rows stored; collector RSS {c['rss']:.0f} MiB "
        f"({c['load']} at the end).",
    ]
    return "\n".join(lines) + "\n"
