"""Soak: minutes of steady traffic. Worker processes (``worker.py``) call an
``@inferwatch.monitor`` function and post a label for every prediction once a second; a probe in
this process posts a request of 10 rows every 0.2 s and times it (the ingest request latency a
client sees). Measured: rows sent against rows stored, the collector's RSS at the start, the end
and its maximum (sampled every second with psutil), and the probe's latency percentiles."""

from __future__ import annotations

import datetime
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from .otlp import HEADERS, Requests
from .process import Collector, load
from .service import Services, summed

MODEL = "faults-soak"


def run(
    folder: Path, seconds: float = 180.0, workers: int = 4, rate: float = 100.0
) -> dict[str, Any]:
    collector = Collector(folder)
    started_load = load()
    collector.start_and_wait()
    services = Services(collector.url, MODEL, workers, rate, ["--labels"])
    probe = Requests(MODEL, 1, 10, seed=99)
    latencies: list[float] = []
    answers: dict[int, int] = {}
    probe_rows = 0
    rss: list[tuple[float, float]] = []
    begun = time.monotonic()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss.append((time.monotonic() - begun, collector.rss_mib()))
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with httpx.Client(base_url=collector.url, timeout=60) as client:
            next_probe = time.monotonic()
            while time.monotonic() - begun < seconds:
                body = probe.next()
                started = time.perf_counter()
                response = client.post("/v1/traces", content=body, headers=HEADERS)
                latencies.append(time.perf_counter() - started)
                answers[response.status_code] = answers.get(response.status_code, 0) + 1
                if response.status_code == 200:
                    probe_rows += probe.rows
                next_probe += 0.2
                time.sleep(max(next_probe - time.monotonic(), 0.0))
        service = summed(services.stop())
        time.sleep(2.0)
        stored = collector.stored_rows(MODEL)
        load_end = load()
    finally:
        stop.set()
        sampler.join()
        collector.stop()
    values = np.asarray(latencies) * 1000
    return {
        "load": started_load,
        "load_end": load_end,
        "seconds": seconds,
        "workers": workers,
        "rate": rate,
        "service": service,
        "probe_rows": probe_rows,
        "answers": answers,
        "stored": stored,
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
        "rss": rss,
    }


def table(result: dict[str, Any]) -> str:
    service = result["service"]
    stats = service["stats"]
    sent = stats["spans_exported"] + result["probe_rows"]
    rss = [mib for _, mib in result["rss"]]
    # The first minute is warm-up (imports, first windows); flat means the last minutes agree.
    minute = [mib for t, mib in result["rss"] if 60 <= t < 120]
    last = [mib for t, mib in result["rss"] if t >= result["seconds"] - 60]
    ok = result["stored"] == sent and service["errors"] == 0
    lines = [
        "### Soak (`faults/soak.py`)",
        "",
        f"Run {datetime.date.today().isoformat()}, {os.cpu_count()} cores (shared), "
        f"{result['load']} at start, {result['load_end']} at the end. {result['workers']} worker "
        f"processes each call an `@inferwatch.monitor` function {result['rate']:g} times a "
        f"second for {result['seconds']:g} s and post a label for each prediction once a "
        "second (`inferwatch.log_labels`); a probe posts a request of 10 rows every 0.2 s and "
        "times it. Goals: rows stored = rows sent, RSS flat, 0 caller errors.",
        "",
        "| calls | caller errors | labels sent / accepted / failed calls | rows sent (SDK + "
        "probe) | rows stored | stored = sent | collector RSS start / end / max (MiB) "
        "| RSS median, 2nd minute / last minute (MiB) | probe p50 / p99 / max (ms) "
        "| probe answers |",
        "|---:|---:|---|---:|---:|---|---|---|---|---|",
        f"| {service['calls']} | {service['errors']} | {service['labels']['sent']} / "
        f"{service['labels']['accepted']} / {service['labels']['failed_calls']} | {sent} | "
        f"{result['stored']} | {'met' if ok else '**missed**'} | {rss[0]:.0f} / {rss[-1]:.0f} / "
        f"{max(rss):.0f} | {np.median(minute) if minute else float('nan'):.0f} / "
        f"{np.median(last) if last else float('nan'):.0f} | {result['p50_ms']:.1f} / "
        f"{result['p99_ms']:.1f} / {result['max_ms']:.0f} | "
        f"{', '.join(f'{k}: {v}' for k, v in sorted(result['answers'].items()))} |",
    ]
    return "\n".join(lines) + "\n"
