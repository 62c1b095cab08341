"""Request latency of a BentoML service with and without InferwatchMiddleware.

Two ``bentoml serve`` processes (one worker each) run the same iris classifier
(tests/middleware/mw_iris_service.py); one adds the middleware, exporting to a small OTLP receiver
in this process. One keep-alive httpx client per server sends the same request to each in turn
(A, B, A, B, ...), so that drifts in machine load hit both sides alike and each server has the
other's round trip to finish what it does after its response. Baseline: the
server without the middleware. Goal: p50 within 5%.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import inferwatch
import numpy as np
from inferwatch.middleware import InferwatchMiddleware

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


def in_process_costs(rows: int, calls: int = 3000) -> dict[str, float]:
    """Median microseconds per call of the middleware around a trivial ASGI app (no server):
    the whole call, and the part before the response starts (on the client's critical path)."""
    body = json.dumps({"input_data": [[5.1, 3.5, 1.4, 0.2]] * rows}).encode()
    answer = json.dumps([1] * rows).encode()
    started: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.append(time.perf_counter_ns())

    scope = {"type": "http", "method": "POST", "path": "/classify", "headers": []}
    middleware = InferwatchMiddleware(app, model="bench", task="classification")

    async def measure(target: Any) -> tuple[list[float], list[float]]:
        total, before = [], []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            await target(scope, receive, send)
            total.append((time.perf_counter_ns() - t0) / 1e3)
            before.append((started[-1] - t0) / 1e3)
        return total, before

    async def both() -> dict[str, float]:
        bare_total, bare_before = await measure(app)
        total, before = await measure(middleware)
        return {
            "total": statistics.median(total) - statistics.median(bare_total),
            "before": statistics.median(before) - statistics.median(bare_before),
        }

    return asyncio.run(both())


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
    inferwatch.init(endpoint=receiver.url)
    costs = {rows: in_process_costs(rows) for _, rows, _ in CASES}
    inferwatch.shutdown()
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
        "| p99 with (ms) | p99 ratio | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, _, latencies in results:
        p50 = {k: statistics.median(v) for k, v in latencies.items()}
        p99 = {k: float(np.percentile(v, 99)) for k, v in latencies.items()}
        ratio50 = p50["with"] / p50["without"]
        ratio99 = p99["with"] / p99["without"]
        verdict = "met" if ratio50 <= GOAL_P50_RATIO else "not met"
        lines.append(
            f"| {label} | {len(latencies['with'])} | {p50['without']:.3f} | {p50['with']:.3f} | "
            f"{ratio50:.3f} | {p99['without']:.3f} | {p99['with']:.3f} | {ratio99:.3f} | "
            f"{verdict} |"
        )
        print(f"{label}: p50 {p50} ratio {ratio50:.3f}; p99 {p99} ratio {ratio99:.3f}")
    lines += [
        "",
        "Where the time goes: the middleware's CPU time per call in process, around a trivial "
        "ASGI app (median, microseconds, the bare app's time subtracted); the rest of the call "
        "(recording, by `PredictionRecorder`) runs after the response's last chunk is sent.",
        "",
        "| request | whole call (us) | before the response starts (us) |",
        "|---|---:|---:|",
    ]
    for label, rows, _ in CASES:
        cost = costs[rows]
        lines.append(f"| {label} | {cost['total']:.0f} | {cost['before']:.0f} |")
        print(f"{label}: in process {cost}")
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
