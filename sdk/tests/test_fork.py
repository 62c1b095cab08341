"""A forked worker (gunicorn, BentoML) exports its own calls; the parent goes on exporting its."""

from __future__ import annotations

import multiprocessing
import threading
from multiprocessing.connection import Connection
from typing import Any

from sdk_frames import SpansOf, frame_at, numbers

import inferwatch
from inferwatch_testkit.otlp import OTLPReceiver as Receiver

EXPORT_THREAD = "inferwatch-export"


def threads() -> list[str]:
    return [t.name for t in threading.enumerate()]


def child(predict: Any, results: Connection) -> None:
    # Runs in the forked process; multiprocessing ends it with os._exit, so no atexit flush.
    before = threads()
    predict({"who": 1.0})
    after = threads()
    flushed = inferwatch.flush(timeout=10.0)
    results.send((before, after, flushed, inferwatch.stats().spans_exported))
    results.close()


def test_forked_child_exports_its_spans_and_the_parent_keeps_exporting(
    receiver: Receiver, model: str, spans_of: SpansOf
) -> None:
    # A long interval: the parent's first span is still queued at the fork, so the child
    # inherits it in its copy of the queue and must not export it a second time.
    inferwatch.init(endpoint=receiver.url, service_name="fork-test", flush_interval=60.0)

    @inferwatch.monitor(model=model)
    def predict(features: dict[str, float]) -> float:
        return features["who"]

    predict({"who": 0.0})
    exported_before = inferwatch.stats().spans_exported
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    worker = context.Process(target=child, args=(predict, sending))
    worker.start()
    sending.close()
    assert receiving.poll(30.0), "the forked child did not report"
    before, after, flushed, exported_in_child = receiving.recv()
    worker.join(10.0)
    assert worker.exitcode == 0

    # The child's pipeline started on its first call, and exported just that call.
    assert EXPORT_THREAD not in before and EXPORT_THREAD in after
    assert flushed is True
    assert exported_in_child == exported_before + 1

    # The parent's export thread survived the fork; its queued span and a new one go out.
    assert EXPORT_THREAD in threads()
    predict({"who": 2.0})
    spans = spans_of(model, count=3)
    assert sorted(
        float(numbers(frame_at(s.attributes, "ml.input.frame"), "who")[0]) for s in spans
    ) == [0.0, 1.0, 2.0]
    assert len({s.attributes["ml.prediction.ids"][0] for s in spans}) == 3


def test_a_child_that_never_records_starts_no_export_thread(receiver: Receiver) -> None:
    # Nor does asking whether inferwatch is initialised (it is: the parent called init).
    inferwatch.init(endpoint=receiver.url, service_name="fork-test")
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)

    def report(results: Connection) -> None:
        results.send((threads(), inferwatch.is_initialized(), inferwatch.shutdown(timeout=1.0)))

    worker = context.Process(target=report, args=(sending,))
    worker.start()
    sending.close()
    assert receiving.poll(30.0), "the forked child did not report"
    names, initialised, shut_down = receiving.recv()
    worker.join(10.0)
    assert worker.exitcode == 0
    assert EXPORT_THREAD not in names
    assert initialised is True and shut_down is True
