"""ExportQueue: monitored calls waiting to be exported, and the one thread that exports them.

A recorded call is queued as a PendingSpan (its attributes already encoded), so that the
model's thread pays for capture and encoding only: writing the span into an export request and
sending it happen here, off the call's path. The queue is bounded by count and by bytes; a
full queue drops and counts. ``flush`` and ``shutdown`` signal the thread and wait at most
their timeout, never exporting in the caller's thread: the SDK's BatchSpanProcessor does, and
blocks 15-30 s when the collector is down (opentelemetry-python #4555, #4568).

A batch the collector did not take (down, restarting, overloaded) is kept and sent again, after
a wait that doubles from ``retry_backoff`` up to ``max_retry_delay``; while no answer comes,
a bare TCP connection probes at those intervals and the batch goes again once it connects. New
calls queue behind it as long as there is room. Export resumes within ``max_retry_delay`` of
the collector's return however long it was away, and the backlog is sent back to back. Every
span ends in exactly one counter of ``inferwatch.stats()``: exported, dropped (queue full,
shutdown, rejected) or failed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.util.types import AttributeValue

from inferwatch import contract, diagnostics
from inferwatch.otlp_http import Attempt, Delivered, Refused, Retry, SpanSender
from inferwatch.retry import RetryPolicy

# Fixed per-span overhead (ids, timestamps, names, resource share) when estimating bytes.
_SPAN_OVERHEAD_BYTES = 256
_ID_BYTES = 40
# One OTLP request stays well under the collector's 64 MiB decompressed cap.
_MAX_REQUEST_BYTES = 16 * 1024 * 1024
# What failure logs name as the model when a step fails for a whole batch.
_ANY_MODEL = "(any)"
# A Retry-After longer than this is not waited for: the collector asked while overloaded, and
# the queue would fill meanwhile.
_MAX_RETRY_AFTER = 30.0


# Adds to a span's attributes what was left to the export thread (inputs encoded there).
Completion = Callable[[dict[str, AttributeValue]], None]


@dataclass(slots=True)
class PendingSpan:
    """One recorded call, everything its span needs, captured in the model's thread."""

    attributes: dict[str, AttributeValue]
    start_ns: int
    end_ns: int
    # The application's context at the call, so that the span is a child of its active span.
    parent: Context
    # Module-qualified exception type and message when the call raised.
    error: tuple[str, str] | None
    # Run by the export thread before the span is built; with the bytes it will likely add.
    complete: Completion | None = None
    later_bytes: int = 0
    size: int = 0

    def __post_init__(self) -> None:
        # A cheap estimate of the encoded span, for the queue's byte bound.
        size = _SPAN_OVERHEAD_BYTES + self.later_bytes
        for key in (contract.ATTR_INPUT_FRAME, contract.ATTR_OUTPUT_FRAME):
            value = self.attributes.get(key)
            if isinstance(value, bytes):
                size += len(value)
        rows = self.attributes.get(contract.ATTR_ROWS)
        if isinstance(rows, int):
            size += _ID_BYTES * rows
        self.size = size


class ExportQueue:
    """Calls waiting to become spans, bounded by count and bytes, and the thread that exports
    them: it encodes each batch into one export request (``encode``) and hands it to ``sender``.

    ``encode`` returns the request, as chunks of bytes (None when no span of the batch could be
    encoded), and the number of calls it could not encode.
    """

    def __init__(
        self,
        sender: SpanSender,
        encode: Callable[[list[PendingSpan]], tuple[list[bytes] | None, int]],
        *,
        max_queue_spans: int,
        max_queue_bytes: int,
        max_export_batch: int,
        flush_interval: float,
        retry: RetryPolicy,
    ) -> None:
        self._sender = sender
        self._encode = encode
        self._max_spans = max_queue_spans
        self._max_bytes = max_queue_bytes
        # Export early once a request's worth of bytes (or half the queue) is waiting.
        self._wake_bytes = min(_MAX_REQUEST_BYTES, max_queue_bytes // 2)
        self._max_batch = max_export_batch
        self._interval = flush_interval
        self._retry = retry
        self._queue: deque[PendingSpan] = deque()
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        # Spans accepted into the queue, and spans taken out and finished with (exported or
        # not): flush waits until the second reaches what the first was when it was called.
        self._accepted = 0
        self._finished = 0
        # Calls taken out of the queue whose fate is not decided yet (the batch being sent or
        # waiting to be sent again); counted as dropped by whoever ends the queue.
        self._in_flight = 0
        # Set once the spans still here at shutdown were counted: nothing is counted after.
        self._closed = False
        self._flush_requested = False
        self._stopping = False
        self._worker = threading.Thread(target=self._run, name="inferwatch-export", daemon=True)
        self._worker.start()

    # -- producer side (the model's threads) ------------------------------------------------

    def submit(self, pending: PendingSpan) -> None:
        """Queue a call (never blocks); when the queue is full, drop it and count it."""
        size = pending.size
        with self._lock:
            if self._stopping:
                full = None
            elif len(self._queue) >= self._max_spans:
                full = f"{self._max_spans} spans"
            elif self._queued_bytes + size > self._max_bytes:
                full = f"{self._max_bytes} bytes"
            else:
                self._queue.append(pending)
                self._queued_bytes += size
                self._accepted += 1
                diagnostics.recorded(queued=True)
                if len(self._queue) >= self._max_batch or self._queued_bytes >= self._wake_bytes:
                    self._wake.notify()
                return
        if full is None:
            # Recorded while the pipeline was being replaced or shut down.
            diagnostics.counters.add_each(("spans_recorded", "spans_dropped_shutdown"))
        else:
            diagnostics.recorded(queued=False)
            diagnostics.queue_full(full)

    def flush(self, timeout: float) -> bool:
        """Export what is queued now; True if it was all handled within ``timeout`` seconds."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._lock:
            target = self._accepted
            self._flush_requested = True
            self._wake.notify()
            while self._finished < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._worker.is_alive():
                    return False
                self._done.wait(remaining)
            return True

    def shutdown(self, timeout: float) -> bool:
        """Flush within ``timeout``, then stop the worker; never waits longer than ``timeout``.

        What is still queued or unsent then is dropped and counted (``spans_dropped_shutdown``).
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        flushed = self.flush(timeout)
        with self._lock:
            self._stopping = True
            self._wake.notify()
        self._worker.join(max(deadline - time.monotonic(), 0.0))
        # A request still in flight is abandoned to the daemon thread, which counts nothing
        # more: its spans are counted here, as dropped.
        with self._lock:
            self._close()
        return flushed

    # -- the worker ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._export_until_stopped()
        finally:
            with self._lock:
                self._close()
            self._sender.close()

    def _export_until_stopped(self) -> None:
        while True:
            with self._lock:
                self._wait_for_work()
                if self._stopping:
                    return
                batch = self._take_batch()
                self._in_flight = len(batch)
                if not self._queue:
                    self._flush_requested = False
            if batch:
                self._export(batch)

    def _wait_for_work(self) -> None:
        deadline = time.monotonic() + self._interval
        while not self._stopping and not (
            self._flush_requested
            or len(self._queue) >= self._max_batch
            or self._queued_bytes >= self._wake_bytes
        ):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.wait(remaining)

    def _take_batch(self) -> list[PendingSpan]:
        batch: list[PendingSpan] = []
        batch_bytes = 0
        while self._queue and len(batch) < self._max_batch:
            size = self._queue[0].size
            if batch and batch_bytes + size > _MAX_REQUEST_BYTES:
                break
            batch.append(self._queue.popleft())
            self._queued_bytes -= size
            batch_bytes += size
        return batch

    def _export(self, batch: list[PendingSpan]) -> None:
        """Encode and send one batch; every call in it is settled (or the queue closed
        meanwhile, which counted them)."""
        try:
            request, unbuilt = self._encode(batch)
        except Exception as exc:  # encode reports its own failures; the worker must not die
            diagnostics.monitoring_error(_ANY_MODEL, "encoding spans", exc)
            request, unbuilt = None, len(batch)
        if unbuilt and not self._settle(unbuilt, "spans_failed"):
            return
        spans = len(batch) - unbuilt
        if request is None or not spans:
            return
        try:
            attempt = self._sender.prepare(request)
        except Exception as exc:  # compressing must not fail, but the worker must not die
            diagnostics.monitoring_error(_ANY_MODEL, "compressing spans", exc)
            self._settle(spans, "spans_failed")
            return
        self._deliver(attempt, spans)

    def _deliver(self, attempt: Attempt, spans: int) -> None:
        """Try until the collector takes or refuses the batch, or the queue stops."""
        retries = 0
        while True:
            try:
                outcome = attempt()
            except Exception as exc:  # a sender must not raise, but the worker must not die
                diagnostics.monitoring_error(_ANY_MODEL, "exporting spans", exc)
                self._settle(spans, "spans_failed")
                return
            if isinstance(outcome, Delivered):
                rejected = min(outcome.rejected, spans)
                if rejected:
                    diagnostics.export_refused(rejected, "rejected in a partial success")
                    if not self._settle(rejected, "spans_dropped_rejected"):
                        return
                self._settle(spans - rejected, "spans_exported")
                return
            if isinstance(outcome, Refused):
                diagnostics.export_refused(spans, outcome.reason)
                self._settle(spans, "spans_dropped_rejected")
                return
            diagnostics.export_retry(spans, outcome.reason)
            if not self._wait_to_retry(self._retry_delay(retries, outcome)):
                return
            retries += 1
            if not outcome.answered and not self._wait_until_reachable(retries):
                return

    def _retry_delay(self, retries: int, outcome: Retry) -> float:
        if outcome.after is not None:
            return min(outcome.after, _MAX_RETRY_AFTER)
        return self._retry.delay(retries)

    def _wait_until_reachable(self, retries: int) -> bool:
        """After no answer: probe (a bare connection) at the retry delays until the collector
        accepts connections, instead of building a request each time; False if the queue
        stopped meanwhile."""
        while not self._sender.reachable():
            diagnostics.counters.add("export_failures")
            if not self._wait_to_retry(self._retry.delay(retries)):
                return False
            retries += 1
        return True

    def _wait_to_retry(self, delay: float) -> bool:
        """Wait ``delay`` s; False if the queue stopped meanwhile (the batch is counted then).

        Only stopping cuts the wait short: a full queue or a flush must not turn a dead
        collector into a stream of connection attempts."""
        deadline = time.monotonic() + delay
        with self._lock:
            while not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True
                self._wake.wait(remaining)
            return False

    def _settle(self, spans: int, outcome: str) -> bool:
        """Count ``spans`` of the batch in flight as ``outcome``; False once the queue was
        closed (they were counted as dropped then, and nothing more is counted)."""
        with self._lock:
            if self._closed:
                return False
            diagnostics.settled(spans, outcome)
            self._in_flight -= spans
            self._finished += spans
            self._done.notify_all()
            return True

    def _close(self) -> None:
        """Count every span still queued or in flight as dropped at shutdown (once)."""
        if self._closed:
            return
        self._closed = True
        left = len(self._queue) + self._in_flight
        self._queue.clear()
        self._queued_bytes = 0
        self._in_flight = 0
        if left:
            diagnostics.settled(left, "spans_dropped_shutdown")
        self._finished += left
        self._done.notify_all()
