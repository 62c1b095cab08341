"""The cost of a /metrics scrape with the per-model series: 100 models x 50 features.

Each model has one version with a day of hourly windows, all evaluated and closed but the last
(open), whose results are what a real evaluation stores: univariate drift per feature and its
summary row, multivariate, prediction and label drift, outliers, error rate, data quality, label
coverage and four performance metrics; its details carry the performance statistics (1,000-bin
score histograms per class) and a label delay. Every model has one open alert.

Timed in-process (the collector's own code, its SQLite storage): the storage reads, the figures
built from them, and the whole exposition, against the baseline of the exposition without the
per-model series (what /metrics was before). Then GET /metrics on a collector process serving the
same database, whole response read. Medians of ``--repetitions``, interleaved.

Usage: python bench/bench_metrics.py [--models 100] [--features 50] [--windows 24]
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from inferwatch.collector.alerts.model import Alert, Evidence
from inferwatch.collector.detectors.metrics import ClassificationStats
from inferwatch.collector.detectors.result import Decision, Result, Severity
from inferwatch.collector.labels.scoring import STATS, figures
from inferwatch.collector.runtime.collector import Collector
from inferwatch.collector.runtime.loading import load_config
from inferwatch.collector.runtime.model_figures import ModelFigures
from inferwatch.collector.runtime.prometheus import CollectorMetrics
from inferwatch.collector.storage import Storage, open_storage
from inferwatch.collector.window.store import IncomingBatch, WindowKey

RESULT = Path(__file__).resolve().parent / "results" / "metrics.md"
_T0_MS = 1_767_225_600_000
_HOUR = 3_600_000
_SERVER = """
import sys, uvicorn
from inferwatch.collector import create_app
from inferwatch.collector.runtime.loading import load_config
from inferwatch.collector.runtime.model_figures import ModelFigures
from inferwatch.collector.runtime.prometheus import CollectorMetrics
app = create_app(load_config(None, db=sys.argv[1]))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), lifespan="off", log_level="warning")
"""


def results(features: int, window: int) -> list[Result]:
    drifted = [f for f in range(features) if (window + f) % 17 == 0]
    rows = [
        Result(
            detector="univariate_drift",
            decision=Decision.ALERT if drifted else Decision.OK,
            score=0.2,
            p_value=0.001 if drifted else 0.4,
            threshold=0.05,
            message=f"{len(drifted)} of {features} features drifted (Bonferroni-corrected)",
            details={"features": features, "drifted": len(drifted), "correction": "bonferroni"},
        )
    ]
    for f in range(features):
        bad = f in drifted
        rows.append(
            Result(
                detector="univariate_drift",
                feature=f"feature_{f}",
                decision=Decision.ALERT if bad else Decision.OK,
                score=0.3 if bad else 0.04,
                p_value=0.0001 if bad else 0.6,
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
    for name in ("multivariate_drift", "prediction_drift", "label_drift", "outliers"):
        rows.append(
            Result(
                detector=name,
                decision=Decision.OK,
                score=0.01,
                p_value=0.5,
                threshold=0.05,
                message=f"{name}: nothing unusual",
                details={"expected_rate": 0.01} if name == "outliers" else {},
            )
        )
    rows.append(
        Result(
            detector="prediction_drift",
            feature="prediction",
            decision=Decision.OK,
            score=0.02,
            p_value=0.7,
            threshold=0.05,
            message="prediction: chi2 p = 0.7",
        )
    )
    for name in ("error_rate", "data_quality", "label_coverage"):
        rows.append(
            Result(detector=name, decision=Decision.OK, score=0.01, threshold=0.05, message=name)
        )
    for metric in ("accuracy", "f1_macro", "roc_auc", "log_loss"):
        rows.append(
            Result(
                detector="performance",
                decision=Decision.OK,
                score=0.9,
                threshold=0.8,
                message=f"{metric} 0.9",
                details={"metric": metric, "value": 0.9, "ready": True},
            )
        )
    return rows


def performance(rng: np.random.Generator) -> dict[str, Any]:
    true = rng.choice(["no", "yes"], size=500)
    proba = rng.dirichlet([1, 1], size=500)
    predicted = np.where(proba[:, 1] > 0.5, "yes", "no")
    stats = ClassificationStats(["no", "yes"]).update(true, predicted, proba)
    return {
        "task": "classification",
        "rows": 1000,
        "labelled": 500,
        "coverage": 0.5,
        **figures(stats),
        "label_delay_seconds": {"p50": 60.0, "p95": 300.0, "max": 900.0},
        STATS: stats.to_dict(),
    }


def build_database(path: Path, models: int, features: int, windows: int) -> None:
    storage = open_storage(load_config(None, db=f"sqlite:///{path}"))
    rng = np.random.default_rng(0)
    details = {"latency": {"p50": 5.0, "p95": 9.0, "max": 20.0}, "label_coverage": 0.5}
    span = 0
    for m in range(models):
        model = f"model_{m:03d}"
        for w in range(windows + 1):
            key = WindowKey(model, "1", _T0_MS + w * _HOUR, _T0_MS + (w + 1) * _HOUR)
            span += 1
            batch = IncomingBatch(
                span.to_bytes(16, "big"), bytes(8), key, 1000, b"", (), key.start_ms, b""
            )
            (stored,) = storage.windows.ingest([batch], key.end_ms).stored
            assert stored is not None
            if w < windows:
                window_details = {**details, "performance": performance(rng)}
                storage.windows.save_evaluation(
                    stored.window_id, results(features, w), window_details, key.end_ms, close=True
                )
        open_alert(storage, model, stored.window_id)
    storage.close()


def open_alert(storage: Storage, model: str, window_id: int) -> None:
    failing = Result(
        detector="univariate_drift",
        decision=Decision.ALERT,
        score=0.3,
        p_value=0.0001,
        message="drifted",
    )
    evidence = Evidence(window_id, _T0_MS, _T0_MS + _HOUR, failing)
    alert = Alert(
        None,
        model,
        "1",
        "univariate_drift",
        Severity.WARNING,
        "open",
        _T0_MS,
        None,
        _T0_MS,
        "drifted",
        window_id,
        window_id,
        (evidence,),
    )
    storage.alerts.save(model, "1", {}, [alert])


def in_process(path: Path, repetitions: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    # The collector's parts as an app has them (no lifespan: nothing runs in the background).
    runtime = Collector.build(load_config(None, db=f"sqlite:///{path}"))
    storage, metrics = runtime.storage, runtime.metrics

    def cold() -> object:
        """A scrape after every window changed (the first one after a start, say)."""
        figures = ModelFigures(storage, runtime.config)
        fresh = CollectorMetrics(runtime.receiver_stats, runtime.dispatcher, runtime.book, figures)
        return fresh.render(lambda model: True)

    steps: dict[str, Callable[[], object]] = {
        "versions()": storage.windows.versions,
        "latest_evaluated()": storage.windows.latest_evaluated,
        "open_alerts()": storage.alerts.open_alerts,
        "figures: the three reads, then the samples (windows already read)": runtime.figures.read,
        "exposition without the model series (baseline)": lambda: metrics.render(None),
        "exposition with the model series, windows unchanged since the last scrape": lambda: (
            metrics.render(lambda model: True)
        ),
        "exposition with the model series, every window changed": cold,
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repetitions):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    body = metrics.render(lambda model: True).decode()
    lines = [line for line in body.splitlines() if line and not line.startswith("#")]
    sizes = {
        "bytes": len(body),
        "series": len(lines),
        "model series": sum(1 for line in lines if line.startswith("inferwatch_model_")),
    }
    storage.close()
    return times, sizes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(db: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", _SERVER, db, str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.1)


def over_http(url: str, repetitions: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.get("/metrics").raise_for_status()
        for _ in range(repetitions):
            start = time.perf_counter()
            client.get("/metrics").raise_for_status()
            times.append(time.perf_counter() - start)
    return times


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--windows", type=int, default=24)
    parser.add_argument("--repetitions", type=int, default=21)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        build_database(db, args.models, args.features, args.windows)
        times, sizes = in_process(db, args.repetitions)
        process, url = serve(f"sqlite:///{db}")
        try:
            http = over_http(url, args.repetitions)
        finally:
            process.terminate()
            process.wait(30)
        db_bytes = db.stat().st_size
    baseline = statistics.median(times["exposition without the model series (baseline)"])
    lines = [
        "## Metrics: a /metrics scrape with the per-model series (`bench/bench_metrics.py`)",
        "",
        f"{os.cpu_count()} cores, load average {load:.2f} at start; {datetime.date.today()}. "
        f"{args.models} models x {args.features} features, {args.windows} closed hourly windows "
        f"each (database {db_bytes / 2**20:,.0f} MiB); medians of {args.repetitions}, "
        "interleaved. The exposition: "
        f"{sizes['series']:,} series ({sizes['model series']:,} per-model), "
        f"{sizes['bytes'] / 1024:,.0f} KiB.",
        "",
        "| step | ms | vs the baseline exposition |",
        "|---|---:|---:|",
    ]
    for name, values in times.items():
        ratio = statistics.median(values) / baseline
        lines.append(f"| {name} | {ms(values)} | {ratio:,.1f}x |")
    ratio = statistics.median(http) / baseline
    http_step = "GET /metrics on a collector process, body read (windows unchanged)"
    lines.append(f"| {http_step} | {ms(http)} | {ratio:,.1f}x |")
    RESULT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
