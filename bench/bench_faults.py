"""A monitored service through collector outages: caller errors, latency, memory, recovery,
and the span accounting.

A thread of this process calls an ``@inferwatch.monitor`` function (one row of 10 features) at
a steady rate, as a model server would; the collector is a real process
(``python -m inferwatch collector``, SQLite in a temporary folder). For each outage length it
runs ``--normal`` seconds with the collector up, stops the collector (SIGTERM) for the outage,
starts it again on the same port and runs ``--after`` seconds more. Reported per outage:

- caller errors: exceptions the monitored function raised to its caller (goal: 0);
- p99 call latency with the collector up and during the outage (goal: within 1 ms);
- the process's RSS before, at its peak during the outage and at the end (bounded by the
  export queue: ``max_queue_spans`` spans);
- the time from the collector answering /healthz again to the SDK's next successful export
  (goal: within 2 s; negative when an export landed before the health check saw it up), and
  the spans dropped in the 5 s after the return (the queue is still full until the first
  export succeeds);
- the SDK's counters at the end of the run (after ``inferwatch.shutdown``): recorded =
  exported + dropped + failed, and the rows the collector stored.

Then the scenarios of ``bench/faults/`` (each module's docstring says what it measures), each
with real collector processes on 127.0.0.1 and bounded in time:

- ``kill``: SIGKILL mid-stream, rounds of kill and restart on the same database (~3 min);
- ``disk``: the database on a tmpfs that fills, every write route, then room again (~2 min;
  needs root for ``mount``, skipped otherwise);
- ``overload``: sender processes flooding the collector, with default and tight limits (~3 min);
- ``soak``: 3 minutes of 4 monitored worker processes with labels;
- ``wide``: a window of 100,000 columns checkpointed, the stored form of the release before
  against this one's, and /healthz of a real collector holding such a window (~2 min).

Usage: python bench/bench_faults.py [--outages 60,150] [--rate 500] [--normal 10] [--after 10]
       [--scenarios outages,kill,disk,overload,soak,wide] [--soak-seconds 180]
(``make bench`` runs the defaults; ``--outages 10 --soak-seconds 30`` for a short check.)
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from faults.process import START_TIMEOUT_S, Collector

import inferwatch
from inferwatch_testkit import wait_for

RESULT = Path(__file__).resolve().parent / "results" / "faults.md"
FEATURES = 10
MODEL = "faults"
GOAL_ERRORS = 0
GOAL_P99_MS = 1.0
GOAL_RESUME_S = 2.0
WINDOW_AFTER_RETURN_S = 5.0


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Service:
    """Calls the monitored function ``rate`` times a second in a thread; keeps each call's
    latency with the phase it fell in."""

    rate: float
    phase: str = "normal"
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    calls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        rng = np.random.default_rng(0)
        names = [f"f{j}" for j in range(FEATURES)]
        weights = rng.normal(size=FEATURES).tolist()

        @inferwatch.monitor(model=MODEL, version="1", task="regression")
        def predict(features: dict[str, float]) -> float:
            return float(sum(w * v for w, v in zip(weights, features.values(), strict=True)))

        rows = [
            dict(zip(names, r, strict=True)) for r in rng.normal(size=(1000, FEATURES)).tolist()
        ]

        def run() -> None:
            interval = 1.0 / self.rate
            next_call = time.perf_counter()
            while not self._stop.is_set():
                row = rows[self.calls % len(rows)]
                start = time.perf_counter()
                try:
                    predict(row)
                except Exception:
                    self.errors += 1
                self.latencies.setdefault(self.phase, []).append(time.perf_counter() - start)
                self.calls += 1
                next_call += interval
                pause = next_call - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                else:
                    next_call = time.perf_counter()  # behind: do not burst to catch up

        self._thread = threading.Thread(target=run, name="service", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def p99_ms(values: list[float]) -> float:
    return float(np.percentile(values, 99) * 1000) if values else float("nan")


def dropped(stats: inferwatch.Stats) -> int:
    return int(stats.spans_dropped)


def run_outage(outage: float, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    collector = Collector(folder)
    try:
        return _run_outage(collector, outage, args)
    finally:
        collector.stop()


def _run_outage(collector: Collector, outage: float, args: argparse.Namespace) -> dict[str, Any]:
    launched = time.monotonic()
    collector.start()
    # Generous: on a loaded machine the collector's imports alone can take a minute.
    wait_for(collector.healthy, timeout=START_TIMEOUT_S, what="the collector")
    # The collector is started again this much before the outage is to end, so that it is
    # back about when asked (the table gives the actual length).
    startup = time.monotonic() - launched
    inferwatch.init(endpoint=collector.url, service_name="bench-faults")
    before = inferwatch.stats()
    service = Service(args.rate)
    rss_start = rss_mib()
    service.start()
    time.sleep(args.normal)

    service.phase = "outage"
    stopped_at = time.monotonic()
    collector.stop()
    rss_peak = rss_mib()
    restart_at = stopped_at + max(outage - startup, 0.0)
    while time.monotonic() < restart_at:
        time.sleep(0.2)
        rss_peak = max(rss_peak, rss_mib())

    exported_at_return = inferwatch.stats().spans_exported
    collector.start()
    returned_at = resumed_at = None
    dropped_at_return = None
    deadline = time.monotonic() + START_TIMEOUT_S
    # Poll both at 10 ms: when the collector answers again, and when an export succeeds.
    while resumed_at is None or returned_at is None:
        now = time.monotonic()
        if now > deadline:
            break
        if returned_at is None and collector.healthy():
            returned_at = time.monotonic()
            service.phase = "after"
            dropped_at_return = dropped(inferwatch.stats())
        if returned_at is None:
            rss_peak = max(rss_peak, rss_mib())
        if resumed_at is None and inferwatch.stats().spans_exported > exported_at_return:
            resumed_at = time.monotonic()
        time.sleep(0.01)
    assert returned_at is not None, "the collector did not come back"
    time.sleep(max(returned_at + WINDOW_AFTER_RETURN_S - time.monotonic(), 0.0))
    dropped_after_return = dropped(inferwatch.stats()) - (dropped_at_return or 0)
    time.sleep(max(returned_at + max(args.after, WINDOW_AFTER_RETURN_S) - time.monotonic(), 0.0))
    service.stop()
    rss_end = rss_mib()
    flushed = inferwatch.flush(timeout=30)
    inferwatch.shutdown(timeout=10)
    after = inferwatch.stats()
    change = {k: v - before.as_dict()[k] for k, v in after.as_dict().items()}
    # The collector has stored what it took once its windows close; the stats say how much.
    time.sleep(1.0)
    try:
        stored = collector.stored_rows(MODEL)
    except httpx.HTTPError:
        stored = -1
    return {
        "outage": outage,
        # Longer than asked: the collector takes a while to start again (its imports).
        "actual_outage": returned_at - stopped_at,
        "calls": service.calls,
        "errors": service.errors,
        "p99_normal": p99_ms(service.latencies.get("normal", [])),
        "p99_outage": p99_ms(service.latencies.get("outage", [])),
        "rss_start": rss_start,
        "rss_peak": rss_peak,
        "rss_end": rss_end,
        "resume": (resumed_at - returned_at) if resumed_at is not None else float("nan"),
        "dropped_after_return": dropped_after_return,
        "flushed": flushed,
        "stored": stored,
        **change,
    }


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def met(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = [
        "## Faults: a monitored service through collector outages (`bench/bench_faults.py`)",
        "",
        f"Run {datetime.date.today().isoformat()}, {os.cpu_count()} cores (shared). One thread "
        f"calls an `@inferwatch.monitor` function (one row of {FEATURES} features) "
        f"{args.rate:g} times a second; the collector is a real process stopped (SIGTERM) for "
        f"the outage and started again on the same port. {args.normal:g} s with the collector "
        f"up before each outage, {max(args.after, WINDOW_AFTER_RETURN_S):g} s after. SDK "
        "defaults (queue of 2048 spans, `max_retry_delay` 0.5 s). Goals: 0 caller errors, p99 "
        f"during the outage within {GOAL_P99_MS:g} ms of normal, export resuming within "
        f"{GOAL_RESUME_S:g} s of the collector's return, every span accounted for.",
        "",
        "| outage (s): asked, actual | calls | caller errors | p99 up (ms) | p99 outage (ms) "
        "| RSS start / peak / end (MiB) | resume after return (s) "
        "| dropped in the 5 s after return | goals |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in results:
        ok = (
            r["errors"] <= GOAL_ERRORS
            and r["p99_outage"] - r["p99_normal"] <= GOAL_P99_MS
            and r["resume"] <= GOAL_RESUME_S
        )
        lines.append(
            f"| {r['outage']:g}, {r['actual_outage']:.0f} | {r['calls']} | {r['errors']} | "
            f"{r['p99_normal']:.3f} | {r['p99_outage']:.3f} | "
            f"{r['rss_start']:.0f} / {r['rss_peak']:.0f} / "
            f"{r['rss_end']:.0f} | {r['resume']:.2f} | {r['dropped_after_return']} | {met(ok)} |"
        )
    lines += [
        "",
        "Span accounting (the SDK's counters over each run, after `inferwatch.shutdown`), and "
        "the rows the collector stored:",
        "",
        "| outage (s) | recorded | exported | dropped: queue full | dropped: shutdown | "
        "dropped: rejected | failed | pending | recorded = exported + dropped + failed | "
        "rows stored |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        settled = r["spans_exported"] + r["spans_dropped"] + r["spans_failed"]
        lines.append(
            f"| {r['outage']:g} | {r['spans_recorded']} | {r['spans_exported']} | "
            f"{r.get('spans_dropped_queue_full', '-')} | {r.get('spans_dropped_shutdown', '-')} | "
            f"{r.get('spans_dropped_rejected', '-')} | {r['spans_failed']} | "
            f"{r.get('spans_pending', '-')} | {met(settled == r['spans_recorded'])} "
            f"({settled}) | {r['stored']} |"
        )
    return "\n".join(lines) + "\n"


def scenario(name: str, run: Callable[..., dict[str, Any]], **options: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as folder:
        print(f"{name} ...", flush=True)
        started = time.monotonic()
        result = run(Path(folder), **options)
        print({k: v for k, v in result.items() if k != "rss"}, flush=True)
        print(f"{name}: {time.monotonic() - started:.0f} s", flush=True)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", default="60,150", help="outage lengths in seconds")
    parser.add_argument("--rate", type=float, default=500.0, help="calls a second")
    parser.add_argument("--normal", type=float, default=10.0, help="seconds up before each")
    parser.add_argument("--after", type=float, default=10.0, help="seconds up after each")
    parser.add_argument("--scenarios", default="outages,kill,disk,overload,soak,wide")
    parser.add_argument("--kill-rounds", type=int, default=3)
    parser.add_argument("--overload-seconds", type=float, default=60.0)
    parser.add_argument("--soak-seconds", type=float, default=180.0)
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    sections = []
    if "outages" in scenarios:
        outages = [float(o) for o in args.outages.split(",") if o]
        results = []
        for outage in outages:
            with tempfile.TemporaryDirectory(prefix="bench-faults-") as folder:
                print(f"outage of {outage:g} s ...", flush=True)
                results.append(run_outage(outage, args, Path(folder)))
                print(results[-1], flush=True)
        sections.append(table(results, args))
    # Imported once the outages are measured: the scenarios import the collector, whose
    # modules would add to this process's RSS, which the outages measure.
    from faults import disk_full, kill, overload, soak, wide

    sections.append(
        "## Faults: kill, full disk, overload, soak, wide windows "
        "(`bench/bench_faults.py`, `bench/faults/`)\n"
    )
    if "kill" in scenarios:
        sections.append(kill.table(scenario("kill", kill.run, rounds=args.kill_rounds)))
    if "disk" in scenarios:
        if os.geteuid() == 0:
            sections.append(disk_full.table(scenario("disk full", disk_full.run)))
        else:
            sections.append("### Disk full\n\nNot run: mounting a tmpfs needs root.\n")
    if "overload" in scenarios:
        runs = [
            scenario(f"overload ({name})", overload.run, config=name, seconds=args.overload_seconds)
            for name in overload.CONFIGS
        ]
        sections.append(overload.table(runs))
    if "soak" in scenarios:
        sections.append(soak.table(scenario("soak", soak.run, seconds=args.soak_seconds)))
    if "wide" in scenarios:
        sections.append(wide.table(scenario("wide", wide.run)))
    text = "\n".join(sections)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
