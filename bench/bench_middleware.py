"""Request latency of a BentoML service with and without InferwatchMiddleware.

Two ``bentoml serve`` processes (one worker each) run the same iris classifier
(tests/middleware/mw_iris_service.py); one adds the middleware, exporting to a small OTLP receiver
in this process. One keep-alive httpx client per server sends the same request to each in turn
(A, B, A, B, ...), so that drifts in machine load hit both sides alike and each server has the
other's round trip to finish what it does after its response. Baseline: the
server without the middleware. Goal: p50 within 5%.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "middleware"))

from mw_bento import BentoServer, start_bentoml, stop_bentoml, wait_ready  # noqa: E402
from mw_receiver import start_receiver  # noqa: E402

RESULT = Path(__file__).resolve().parent / "results" / "middleware.md"
WARMUP = 300
CASES = [("1 row", 1, 3000), ("100 rows", 100, 1000)]
GOAL_P50_RATIO = 1.05


def timed(client: httpx.Client, url: str, body: bytes) -> float:
    start = time.perf_counter_ns()
    response = client.post(url, content=body, headers={"content-type": "application/json"})
    elapsed = time.perf_counter_ns() - start
    response.raise_for_status()
    return elapsed / 1e6


def run_case(servers: dict[str, BentoServer], rows: int, requests: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(rows)
    batch = rng.normal([5.8, 3.0, 3.8, 1.2], [0.8, 0.4, 1.8, 0.8], size=(rows, 4)).round(2)
    body = ('{"input_data": ' + str(batch.tolist()) + "}").encode()
    latencies: dict[str, list[float]] = {name: [] for name in servers}
    clients = {name: httpx.Client(timeout=30) for name in servers}
    try:
        for i in range(WARMUP + requests):
            for name in servers:
                ms = timed(clients[name], servers[name].url + "/classify", body)
                if i >= WARMUP:
                    latencies[name].append(ms)
    finally:
        for client in clients.values():
            client.close()
    return latencies


def main() -> int:
    receiver, stop_receiver = start_receiver()
    with tempfile.TemporaryDirectory(prefix="bench-middleware-") as tmp:
        servers = {
            "without": start_bentoml(Path(tmp) / "without", {}),
            "with": start_bentoml(Path(tmp) / "with", {"IW_TEST_ENDPOINT": receiver.url}),
        }
        try:
            for server in servers.values():
                wait_ready(server)
            results = [(label, rows, run_case(servers, rows, n)) for label, rows, n in CASES]
        finally:
            for server in servers.values():
                stop_bentoml(server)
    expected_spans = sum(WARMUP + n for _, _, n in CASES)
    spans = receiver.predictions("iris", expected_spans, timeout=30)
    stop_receiver()

    lines = [
        "## Middleware: BentoML request latency (`bench/bench_middleware.py`)",
        "",
        "`bentoml serve` (1 worker) of a scikit-learn iris classifier, POST /classify, one "
        "keep-alive httpx client per server, requests to the two servers interleaved. Baseline: "
        "the same service without the middleware, measured in the same run. Goal: p50 within 5%. "
        f"The middleware's spans received by an OTLP receiver: {len(spans)} of {expected_spans}.",
        "",
        "| request | requests | p50 without (ms) | p50 with (ms) | p50 ratio | p99 without (ms) "
        "| p99 with (ms) | p99 ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    worst = 0.0
    for label, _, latencies in results:
        p50 = {k: statistics.median(v) for k, v in latencies.items()}
        p99 = {k: float(np.percentile(v, 99)) for k, v in latencies.items()}
        ratio50 = p50["with"] / p50["without"]
        ratio99 = p99["with"] / p99["without"]
        worst = max(worst, ratio50)
        lines.append(
            f"| {label} | {len(latencies['with'])} | {p50['without']:.3f} | {p50['with']:.3f} | "
            f"{ratio50:.3f} | {p99['without']:.3f} | {p99['with']:.3f} | {ratio99:.3f} |"
        )
        print(f"{label}: p50 {p50} ratio {ratio50:.3f}; p99 {p99} ratio {ratio99:.3f}")
    verdict = "met" if worst <= GOAL_P50_RATIO else "NOT met"
    lines += ["", f"Goal (p50 ratio <= {GOAL_P50_RATIO}): {verdict}."]
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
