"""A batch answered 200 is in every evaluation that starts after the answer.

The ingest worker folds a committed group into window state while it commits the next one, so
for a moment a batch is durable (its window marked for re-evaluation) but not yet in the state
an evaluation reads. Evaluations fold it in first (IngestPipeline.settle)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np

from inferwatch.collector import load_config
from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.collector.runtime.collector import Collector
from inferwatch_testkit import FakeClock
from inferwatch_testkit.collector import T0, mixed_frames

WINDOW = 60


def batch(n: int, start_s: float) -> PredictionBatch:
    inputs, outputs = mixed_frames(np.random.default_rng(n), 5)
    start_ns = int(start_s * 1e9)
    ids = tuple(f"b{n}-{i}" for i in range(5))
    return PredictionBatch(
        "settle", "1", "classification", bytes(16), n.to_bytes(8, "big"), start_ns,
        start_ns + 1_000_000, None, ids, inputs, outputs,
    )  # fmt: skip


async def test_an_evaluation_waiting_on_a_commit_sees_the_committed_batch(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    config = load_config(
        None, db=f"sqlite:///{tmp_path / 'c.db'}", models={"settle": {"window": WINDOW}}
    )
    runtime = Collector.build(config, clock)
    await runtime.pipeline.start()
    try:
        await runtime.pipeline.submit([batch(1, T0 + 1)])
        clock.advance_to(T0 + WINDOW + 400)  # past the window's end and its allowed lateness
        await runtime.keeper.tick()
        (closed,) = runtime.storage.windows.find("settle")
        assert closed.closed and closed.details is not None and closed.details["requests"] == 1

        # The next commit is slow: an evaluation asks for the state lock while it runs.
        committed = threading.Event()
        ingest = runtime.storage.windows.ingest

        def slow_ingest(*args: object) -> object:
            outcome = ingest(*args)  # type: ignore[arg-type]
            committed.set()
            threading.Event().wait(0.3)
            return outcome

        runtime.storage.windows.ingest = slow_ingest  # type: ignore[method-assign]
        late = asyncio.create_task(runtime.pipeline.submit([batch(2, T0 + 2)]))
        await asyncio.to_thread(committed.wait, 10)
        (marked,) = runtime.storage.windows.find("settle")
        assert marked.needs_eval  # the late batch is durable and its window marked
        evaluation = asyncio.create_task(runtime.keeper.evaluate(marked, close=False))
        await late
        await evaluation

        (window,) = runtime.storage.windows.find("settle")
        assert window.details is not None and window.details["requests"] == 2
        assert window.needs_eval == 0
    finally:
        await runtime.pipeline.stop()
        runtime.storage.close()
