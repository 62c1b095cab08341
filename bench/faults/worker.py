"""A monitored service in a process of its own: calls an ``@inferwatch.monitor`` function (one
row of 10 features) ``--rate`` times a second until SIGTERM (or ``--seconds``), optionally posting
a label for every prediction once a second with ``inferwatch.log_labels``; then flushes, shuts
the SDK down and prints one JSON line: calls, caller errors and latencies, the SDK's counters,
the labels sent and what the collector did with them.

Usage: python bench/faults/worker.py ENDPOINT MODEL [--rate 200] [--seconds 0] [--labels]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

import numpy as np

import inferwatch

FEATURES = 10


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("endpoint")
    parser.add_argument("model")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=0.0, help="0: until SIGTERM")
    parser.add_argument("--labels", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queue", type=int, default=2048, help="max_queue_spans")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    inferwatch.init(endpoint=args.endpoint, service_name="bench-faults", max_queue_spans=args.queue)
    rng = np.random.default_rng(args.seed)
    names = [f"f{j}" for j in range(FEATURES)]
    weights = rng.normal(size=FEATURES).tolist()

    @inferwatch.monitor(model=args.model, version="1", task="regression")
    def predict(features: dict[str, float]) -> float:
        return float(sum(w * v for w, v in zip(weights, features.values(), strict=True)))

    rows = [dict(zip(names, r, strict=True)) for r in rng.normal(size=(1000, FEATURES)).tolist()]
    latencies: list[float] = []
    errors = calls = 0
    to_label: list[tuple[str, float]] = []
    labels = {"sent": 0, "accepted": 0, "failed_calls": 0}
    lock = threading.Lock()
    done = threading.Event()

    def post_labels() -> None:
        # A thread of its own, as an application's label job would be: log_labels waits out
        # the collector's Retry-After, which must not slow the predictions down.
        nonlocal to_label
        while True:
            finished = done.wait(1.0)
            with lock:
                batch, to_label = to_label, []
            if batch:
                try:
                    report = inferwatch.log_labels(args.model, batch)
                except Exception:
                    labels["failed_calls"] += 1
                else:
                    labels["accepted"] += report.accepted
                labels["sent"] += len(batch)
            if finished:
                return

    labeller = threading.Thread(target=post_labels, name="labels")
    if args.labels:
        labeller.start()
    interval = 1.0 / args.rate
    started = next_call = time.perf_counter()
    while not stop.is_set():
        if args.seconds and time.perf_counter() - started >= args.seconds:
            break
        row = rows[calls % len(rows)]
        begin = time.perf_counter()
        try:
            value = predict(row)
        except Exception:
            errors += 1
        else:
            if args.labels:
                with lock:
                    to_label.extend((pid, value) for pid in inferwatch.last_prediction_ids())
        latencies.append(time.perf_counter() - begin)
        calls += 1
        next_call += interval
        pause = next_call - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        else:
            next_call = time.perf_counter()  # behind: do not burst to catch up
    done.set()
    if args.labels:
        labeller.join()
    flushed = inferwatch.flush(timeout=60)
    inferwatch.shutdown(timeout=30)
    values = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    print(
        json.dumps(
            {
                "calls": calls,
                "errors": errors,
                "p50_ms": float(np.percentile(values, 50)),
                "p99_ms": float(np.percentile(values, 99)),
                "flushed": flushed,
                "labels": labels,
                "stats": inferwatch.stats().as_dict(),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
