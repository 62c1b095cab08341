"""The timing harness of bench/bench_sdk.py, and the peers' cases it runs in their own venvs.

Standard library only at import, so that it runs under a peer's interpreter (bench/peers.py):
``python bench/sdk_peer_cases.py whylogs`` or ``... bentoml`` times what a user of that tool
would write around the same predict calls as bench_sdk.py's, and prints one JSON document:
{"version": ..., "timings": {case: [wall, calling-thread CPU, whole-process CPU] in µs a call}}.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

FEATURES = 20
BATCH_ROWS = 1000
REPEATS = int(os.environ.get("BENCH_SDK_REPEATS", "41"))
SINGLE_LOOP = 300
BATCH_LOOP = 20

Timing = tuple[float, float, float]  # wall, calling-thread CPU, whole-process CPU; µs a call
Case = tuple[Callable[[], object], Callable[[], object]]  # a call, and what settles after a loop


def nothing() -> None:
    pass


def per_call(fn: Callable[[], object], settle: Callable[[], object], loop: int) -> Timing:
    """One call's wall and CPU time over a loop of calls.

    The process CPU time also covers ``settle`` (waiting until a pipeline has built and
    exported every span of the loop), so it includes the work of background threads.
    """
    wall, cpu, process = time.perf_counter_ns(), time.thread_time_ns(), time.process_time_ns()
    for _ in range(loop):
        fn()
    wall, cpu = time.perf_counter_ns() - wall, time.thread_time_ns() - cpu
    settle()
    process = time.process_time_ns() - process
    return wall / loop / 1000, cpu / loop / 1000, process / loop / 1000


def medians(cases: dict[str, Case], loop: int, repeats: int = REPEATS) -> dict[str, Timing]:
    """Median timings of each (call, settle) case, interleaved so that drift hits all."""
    samples: dict[str, list[Timing]] = {name: [] for name in cases}
    for fn, settle in cases.values():  # warm up caches (and a pipeline's connection)
        per_call(fn, settle, max(loop // 10, 2))
    for _ in range(repeats):
        for name, (fn, settle) in cases.items():
            samples[name].append(per_call(fn, settle, loop))
    return {name: median_timing(values) for name, values in samples.items()}


def median_timing(values: list[Timing]) -> Timing:
    return (
        statistics.median(t[0] for t in values),
        statistics.median(t[1] for t in values),
        statistics.median(t[2] for t in values),
    )


def the_row() -> dict[str, float]:
    """The single-row call's inputs: 20 named floats (the same in every process)."""
    rng = random.Random(0)
    return {f"feature_{j}": rng.gauss(0.0, 1.0) for j in range(FEATURES)}


def the_weights() -> list[float]:
    rng = random.Random(1)
    return [rng.gauss(0.0, 1.0) for _ in range(FEATURES)]


def predict_row(features: dict[str, float], weights: list[float] = the_weights()) -> float:  # noqa: B008
    return sum(w * v for w, v in zip(weights, features.values(), strict=True))


# -- the peers ------------------------------------------------------------------------------------


def whylogs_cases() -> tuple[str, dict[str, Timing]]:
    """whylogs: a profile per call (``why.log(row=...)``), and the rolling logger that merges
    calls into one profile written every few minutes (its local writer in a temp folder)."""
    import numpy as np
    import pandas as pd
    import whylogs as why

    row = the_row()
    x = np.random.default_rng(1).normal(size=(BATCH_ROWS, FEATURES))
    frame = pd.DataFrame(x, columns=list(row))
    weights = np.asarray(the_weights())
    folder = tempfile.mkdtemp(prefix="bench-whylogs-")
    rolling = why.logger(mode="rolling", interval=5, when="M", base_name="bench")
    rolling.append_writer("local", base_dir=folder)

    def per_call_row() -> float:
        prediction = predict_row(row)
        why.log(row={**row, "prediction": prediction})
        return prediction

    def rolling_row() -> float:
        prediction = predict_row(row)
        rolling.log({**row, "prediction": prediction})
        return prediction

    def bare_batch() -> np.ndarray:
        return frame.to_numpy() @ weights

    def per_call_batch() -> np.ndarray:
        prediction = frame.to_numpy() @ weights
        why.log(pandas=frame.assign(prediction=prediction))
        return prediction

    def rolling_batch() -> np.ndarray:
        prediction = frame.to_numpy() @ weights
        rolling.log(frame.assign(prediction=prediction))
        return prediction

    timings = medians(
        {
            "function": (lambda: predict_row(row), nothing),
            "why.log": (per_call_row, nothing),
            "rolling logger": (rolling_row, nothing),
        },
        SINGLE_LOOP,
        repeats=11,  # why.log costs ~3 ms a call
    )
    batch = medians(
        {
            "batch function": (bare_batch, nothing),
            "batch why.log": (per_call_batch, nothing),
            "batch rolling logger": (rolling_batch, nothing),
        },
        BATCH_LOOP,
        repeats=11,
    )
    rolling.close()
    return why.__version__, {**timings, **batch}


def bentoml_cases() -> tuple[str, dict[str, Timing]]:
    """bentoml.monitor with its default (file) monitor: one JSON line a row through Python
    logging into files under a temp folder; a batch logged column by column (``log_batch``)."""
    import bentoml
    import numpy as np

    row = the_row()
    x = np.random.default_rng(1).normal(size=(BATCH_ROWS, FEATURES))
    weights = np.asarray(the_weights())
    names = list(row)
    options = {"log_path": tempfile.mkdtemp(prefix="bench-bentoml-"), "log_config_file": None}

    def monitored_row() -> float:
        prediction = predict_row(row)
        with bentoml.monitor("bench", monitor_options=options) as mon:
            for name, value in row.items():
                mon.log(value, name=name, role="feature", data_type="numerical")
            mon.log(prediction, name="prediction", role="prediction", data_type="numerical")
        return prediction

    def bare_batch() -> np.ndarray:
        return x @ weights

    def monitored_batch() -> np.ndarray:
        prediction = x @ weights
        with bentoml.monitor("bench_batch", monitor_options=options) as mon:
            for j, name in enumerate(names):
                mon.log_batch(x[:, j].tolist(), name=name, role="feature", data_type="numerical")
            mon.log_batch(
                prediction.tolist(), name="prediction", role="prediction", data_type="numerical"
            )
        return prediction

    timings = medians(
        {
            "function": (lambda: predict_row(row), nothing),
            "bentoml.monitor": (monitored_row, nothing),
        },
        SINGLE_LOOP,
    )
    batch = medians(
        {
            "batch function": (bare_batch, nothing),
            "batch bentoml.monitor": (monitored_batch, nothing),
        },
        BATCH_LOOP,
        repeats=11,  # ~20 ms a batch: a JSON line a row
    )
    return bentoml.__version__, {**timings, **batch}


PEERS = {"whylogs": whylogs_cases, "bentoml": bentoml_cases}


if __name__ == "__main__":
    # Any file a peer writes goes to a temp folder (bentoml also under its home).
    os.chdir(tempfile.mkdtemp(prefix="bench-peer-"))
    version, timings = PEERS[sys.argv[1]]()
    print(json.dumps({"version": version, "timings": timings}))
