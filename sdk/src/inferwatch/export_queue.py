"""ExportQueue: monitored calls waiting to be exported, and the one thread that exports them.

A recorded call is queued as a PendingSpan (its attributes already encoded), so that the
model's thread pays for capture and encoding only: building the OpenTelemetry span and
exporting it happen here, off the call's path. The queue is bounded by count and by bytes; a
full queue drops and counts. ``flush`` and ``shutdown`` signal the thread and wait at most
their timeout, never exporting in the caller's thread: the SDK's BatchSpanProcessor does, and
blocks 15-30 s when the collector is down (opentelemetry-python #4555, #4568).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.util.types import AttributeValue

from inferwatch import contract, diagnostics

# Fixed per-span overhead (ids, timestamps, names, resource share) when estimating bytes.
_SPAN_OVERHEAD_BYTES = 256
_ID_BYTES = 40
# One OTLP request stays well under the collector's 64 MiB decompressed cap.
_MAX_REQUEST_BYTES = 16 * 1024 * 1024
# After a failed export, wait this long (doubling, up to the cap) before the next attempt, so a
# dead collector costs neither CPU nor a stream of connection attempts.
_RETRY_DELAY = 1.0
_MAX_RETRY_DELAY = 30.0


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
    them: it builds each batch's spans (``build``) and hands them to ``exporter``."""

    def __init__(
        self,
        exporter: SpanExporter,
        build: Callable[[list[PendingSpan]], list[ReadableSpan]],
        *,
        max_queue_spans: int,
        max_queue_bytes: int,
        max_export_batch: int,
        flush_interval: float,
    ) -> None:
        self._exporter = exporter
        self._build = build
        self._max_spans = max_queue_spans
        self._max_bytes = max_queue_bytes
        # Export early once a request's worth of bytes (or half the queue) is waiting.
        self._wake_bytes = min(_MAX_REQUEST_BYTES, max_queue_bytes // 2)
        self._max_batch = max_export_batch
        self._interval = flush_interval
        self._queue: deque[PendingSpan] = deque()
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        # Spans accepted into the queue, and spans taken out and finished with (exported or
        # not): flush waits until the second reaches what the first was when it was called.
        self._accepted = 0
        self._finished = 0
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
                return
            if len(self._queue) >= self._max_spans:
                full = f"{self._max_spans} spans"
            elif self._queued_bytes + size > self._max_bytes:
                full = f"{self._max_bytes} bytes"
            else:
                self._queue.append(pending)
                self._queued_bytes += size
                self._accepted += 1
                if len(self._queue) >= self._max_batch or self._queued_bytes >= self._wake_bytes:
                    self._wake.notify()
                return
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
        """Flush within ``timeout``, then stop the worker; never waits longer than ``timeout``."""
        deadline = time.monotonic() + max(timeout, 0.0)
        flushed = self.flush(timeout)
        with self._lock:
            self._stopping = True
            self._wake.notify()
        # Interrupts an export that is waiting to retry; a request in flight is abandoned to
        # the daemon thread.
        self._exporter.shutdown()
        self._worker.join(max(deadline - time.monotonic(), 0.0))
        return flushed

    # -- the worker ---------------------------------------------------------------------------

    def _run(self) -> None:
        retry_delay = 0.0
        while True:
            with self._lock:
                deadline = time.monotonic() + (retry_delay or self._interval)
                # After a failure, only stopping cuts the wait short: a full queue or a flush
                # must not turn a dead collector into a stream of connection attempts.
                while not self._stopping and (
                    retry_delay
                    or not (
                        self._flush_requested
                        or len(self._queue) >= self._max_batch
                        or self._queued_bytes >= self._wake_bytes
                    )
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                if self._stopping:
                    return
                batch = self._take_batch()
                if not self._queue:
                    self._flush_requested = False
            if not batch:
                continue
            ok = self._export(batch)
            retry_delay = 0.0 if ok else min(max(retry_delay * 2, _RETRY_DELAY), _MAX_RETRY_DELAY)
            with self._lock:
                self._finished += len(batch)
                self._done.notify_all()

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

    def _export(self, batch: list[PendingSpan]) -> bool:
        spans: list[ReadableSpan] = []
        try:
            spans = self._build(batch)
            if not spans:
                return True
            result = self._exporter.export(spans)
        except Exception as exc:  # neither may raise, but the worker must not die
            diagnostics.export_failure(len(spans) or len(batch), type(exc).__name__)
            return False
        if result is SpanExportResult.SUCCESS:
            diagnostics.counters.add("spans_exported", len(spans))
            return True
        diagnostics.export_failure(len(spans), "the collector is unreachable or refused them")
        return False
