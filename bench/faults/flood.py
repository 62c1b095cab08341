"""A hostile sender in a process of its own: ``--threads`` threads each post OTLP/JSON requests
back to back for ``--seconds``, ignoring Retry-After, and count the answers; prints one JSON
line: answers by status (or the exception's name), rows answered 200, request latencies.

Usage: python -m faults.flood URL MODEL [--threads 2] [--seconds 60] [--spans 50] [--rows 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter

import httpx
import numpy as np

from faults.otlp import HEADERS, Requests


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--spans", type=int, default=50)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    answers: Counter[str] = Counter()
    latencies: list[float] = []
    accepted = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def send(thread: int) -> None:
        requests = Requests(args.model, args.spans, args.rows, seed=args.seed * 64 + thread)
        with httpx.Client(base_url=args.url, timeout=60) as client:
            while time.monotonic() < deadline:
                body = requests.next()
                started = time.perf_counter()
                try:
                    status = str(
                        client.post("/v1/traces", content=body, headers=HEADERS).status_code
                    )
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                took = time.perf_counter() - started
                with lock:
                    answers[status] += 1
                    latencies.append(took)
                    if status == "200":
                        accepted[0] += args.spans * args.rows

    threads = [threading.Thread(target=send, args=(n,)) for n in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    values = np.asarray(latencies or [0.0]) * 1000
    report = {
        "answers": dict(answers),
        "accepted_rows": accepted[0],
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "latencies_ms": values.round(2).tolist(),
    }
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
