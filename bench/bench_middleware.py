"""Request latency of a BentoML service with and without InferwatchMiddleware.

Two ``bentoml serve`` processes (one worker each) run the same iris classifier
(middleware/tests/mw_iris_service.py); one adds the middleware, exporting to a small OTLP receiver
in a child process (so that decoding spans takes no CPU from the client's process). One
keep-alive httpx client per server sends the same request to each in turn (A, B, A, B, ...), so
that drifts in machine load hit both sides alike and each server has the other's round trip to
finish what it does after its response. The cases take turns, in rounds, so that a burst of load
on this shared machine lands in one round of each rather than in all of one case; each round's
p50 ratio is reported with the pooled one. Baseline: the server without the middleware. Goal:
p50 within 5%. The ids each response returns are checked against the recorded spans.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import numpy as np

import inferwatch
from inferwatch import contract
from inferwatch.middleware import InferwatchMiddleware

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "middleware" / "tests"))

from mw_bento import BentoServer, start_bentoml, stop_bentoml, wait_ready  # noqa: E402

from inferwatch_testkit.otlp import start_otlp_receiver  # noqa: E402

RESULT = Path(__file__).resolve().parent / "results" / "middleware.md"
WARMUP = 300
ROUNDS = 5
# (label, rows per request, requests per round to each server)
CASES = [("1 row", 1, 600), ("100 rows", 100, 300)]
GOAL_P50_RATIO = 1.05
ID_HEADER = "x-prediction-ids"


def receiver_process(conn: Connection) -> None:
    """Runs the OTLP receiver; answers each expected span count with the ids received."""
    with start_otlp_receiver() as receiver:
        conn.send(receiver.url)
        while (expected := conn.recv()) is not None:
            spans = receiver.predictions("iris", expected, timeout=30)
            conn.send([span.attributes[contract.ATTR_PREDICTION_IDS] for span in spans])


def request_body(rows: int) -> bytes:
    rng = np.random.default_rng(rows)
    batch = rng.normal([5.8, 3.0, 3.8, 1.2], [0.8, 0.4, 1.8, 0.8], size=(rows, 4)).round(2)
    return ('{"input_data": ' + str(batch.tolist()) + "}").encode()


def run_block(
    servers: dict[str, BentoServer],
    clients: dict[str, httpx.Client],
    body: bytes,
    requests: int,
    returned: list[str],
) -> dict[str, list[float]]:
    """Latencies (ms) of ``requests`` interleaved calls to each server; appends the ids headers
    returned to ``returned``."""
    latencies: dict[str, list[float]] = {name: [] for name in servers}
    headers = {"content-type": "application/json"}
    for _ in range(requests):
        for name, server in servers.items():
            start = time.perf_counter_ns()
            response = clients[name].post(server.url + "/classify", content=body, headers=headers)
            latencies[name].append((time.perf_counter_ns() - start) / 1e6)
            response.raise_for_status()
            if ID_HEADER in response.headers:
                returned.append(response.headers[ID_HEADER])
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
    conn, child_conn = multiprocessing.get_context("spawn").Pipe()
    receiver = multiprocessing.get_context("spawn").Process(
        target=receiver_process, args=(child_conn,), daemon=True
    )
    receiver.start()
    receiver_url: str = conn.recv()
    bodies = {rows: request_body(rows) for _, rows, _ in CASES}
    # latencies[label][round][server]
    latencies: dict[str, list[dict[str, list[float]]]] = {label: [] for label, _, _ in CASES}
    returned: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-middleware-") as tmp:
        servers = {
            "without": start_bentoml(Path(tmp) / "without", {}),
            "with": start_bentoml(Path(tmp) / "with", {"IW_TEST_ENDPOINT": receiver_url}),
        }
        clients = {name: httpx.Client(timeout=30) for name in servers}
        try:
            for server in servers.values():
                wait_ready(server)
            for _, rows, _ in CASES:
                run_block(servers, clients, bodies[rows], WARMUP, returned)
            for _ in range(ROUNDS):
                for label, rows, requests in CASES:
                    block = run_block(servers, clients, bodies[rows], requests, returned)
                    latencies[label].append(block)
            # Before the servers stop: spans recorded in the last second are still queued.
            expected_spans = sum(WARMUP + ROUNDS * n for _, _, n in CASES)
            conn.send(expected_spans)
            recorded = conn.recv()
        finally:
            for client in clients.values():
                client.close()
            for server in servers.values():
                stop_bentoml(server)
    inferwatch.init(endpoint=receiver_url)
    costs = {rows: in_process_costs(rows) for _, rows, _ in CASES}
    inferwatch.shutdown()
    conn.send(None)
    receiver.join(15)
    recorded_ids = {i for ids in recorded for i in ids}
    returned_ids = [i for header in returned for i in header.split(",")]
    returned_recorded = sum(i in recorded_ids for i in returned_ids)

    lines = [
        "## Middleware: BentoML request latency (`bench/bench_middleware.py`)",
        "",
        "`bentoml serve` (1 worker) of a scikit-learn iris classifier, POST /classify, one "
        "keep-alive httpx client per server, requests to the two servers interleaved, in "
        f"{ROUNDS} rounds that alternate the cases. Baseline: the same service without the "
        "middleware, measured in the same run. Goal: p50 within 5%. The middleware's spans "
        f"received by an OTLP receiver: {len(recorded)} of {expected_spans}; of the "
        f"{len(returned_ids)} ids returned in `X-Prediction-Ids`, {returned_recorded} are in "
        "those spans.",
        "",
        "| request | requests | p50 without (ms) | p50 with (ms) | p50 ratio | p50 ratio per "
        "round (min, median, max) | p99 without (ms) | p99 with (ms) | p99 ratio | goal |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for label, _, _ in CASES:
        rounds = latencies[label]
        pooled = {name: [ms for block in rounds for ms in block[name]] for name in rounds[0]}
        p50 = {k: statistics.median(v) for k, v in pooled.items()}
        p99 = {k: float(np.percentile(v, 99)) for k, v in pooled.items()}
        ratio50 = p50["with"] / p50["without"]
        ratio99 = p99["with"] / p99["without"]
        per_round = sorted(
            statistics.median(block["with"]) / statistics.median(block["without"])
            for block in rounds
        )
        spread = f"{per_round[0]:.3f}, {statistics.median(per_round):.3f}, {per_round[-1]:.3f}"
        verdict = "met" if ratio50 <= GOAL_P50_RATIO else "not met"
        lines.append(
            f"| {label} | {len(pooled['with'])} | {p50['without']:.3f} | {p50['with']:.3f} | "
            f"{ratio50:.3f} | {spread} | {p99['without']:.3f} | {p99['with']:.3f} | "
            f"{ratio99:.3f} | {verdict} |"
        )
        print(f"{label}: p50 {p50} ratio {ratio50:.3f} (rounds {spread}); p99 ratio {ratio99:.3f}")
    lines += [
        "",
        "Where the time goes: the middleware's CPU time per call in process, around a trivial "
        "ASGI app (median, microseconds, the bare app's time subtracted); the rest of the call "
        "(parsing the bodies and recording, by `PredictionRecorder`) runs after the response's "
        "last chunk is sent.",
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
