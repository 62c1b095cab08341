"""inferwatch's own OpenTelemetry pipeline: tracer provider, sampler, span processor, exporter.

It is separate from any pipeline the application has (BentoML, for one, samples 0% by default):
the global provider is never read nor set. Spans go to ``{endpoint}/v1/traces`` over OTLP/HTTP.

The span processor is ours rather than the SDK's BatchSpanProcessor, whose ``force_flush`` and
``shutdown`` export in the caller's thread and block for 15-30 s when the collector is down
(opentelemetry-python #4555, #4568). Here ``on_end`` only appends to a queue bounded by span
count and by bytes; one daemon thread exports; ``flush`` and ``shutdown`` signal it and wait at
most their timeout.
"""

from __future__ import annotations

import atexit
import os
import random
import threading
import time
from collections import deque

from inferwatch import contract, diagnostics
from inferwatch.config import Settings
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Tracer

# Fixed per-span overhead (ids, timestamps, names, resource share) when estimating bytes.
_SPAN_OVERHEAD_BYTES = 256
_ID_BYTES = 40
# One OTLP request stays well under the collector's 64 MiB decompressed cap.
_MAX_REQUEST_BYTES = 16 * 1024 * 1024
# After a failed export, wait this long (doubling, up to the cap) before the next attempt, so a
# dead collector costs neither CPU nor a stream of connection attempts.
_RETRY_DELAY = 1.0
_MAX_RETRY_DELAY = 30.0


class CallSampler:
    """Decides, per call and before anything is encoded, whether a call is recorded.

    Not parent-based on purpose: the application's span may be unsampled (BentoML's default)
    and must not switch monitoring off. Not trace-id based either: calls sharing one trace
    (a batch job) are sampled independently. The tracer provider then samples every span it
    is asked for: an unsampled call never creates one.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._random = random.Random()

    def sampled(self) -> bool:
        rate = self.rate
        return rate >= 1.0 or (rate > 0.0 and self._random.random() < rate)


def span_size(span: ReadableSpan) -> int:
    """A cheap estimate of an inferwatch span's encoded size, for the queue's byte bound."""
    attributes = span.attributes or {}
    size = _SPAN_OVERHEAD_BYTES
    for key in (contract.ATTR_INPUT_FRAME, contract.ATTR_OUTPUT_FRAME):
        value = attributes.get(key)
        if isinstance(value, bytes):
            size += len(value)
    rows = attributes.get(contract.ATTR_ROWS)
    if isinstance(rows, int):
        size += _ID_BYTES * rows
    return size


class BoundedSpanProcessor(SpanProcessor):
    """Queues ended spans (bounded by count and bytes) for one background exporting thread."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        max_queue_spans: int,
        max_queue_bytes: int,
        max_export_batch: int,
        flush_interval: float,
    ) -> None:
        self._exporter = exporter
        self._max_spans = max_queue_spans
        self._max_bytes = max_queue_bytes
        self._max_batch = max_export_batch
        self._interval = flush_interval
        self._queue: deque[tuple[ReadableSpan, int]] = deque()
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

    def on_start(self, span: object, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        # Every span reaching here is sampled: the provider samples all (see CallSampler).
        size = span_size(span)
        with self._lock:
            if self._stopping:
                return
            if len(self._queue) >= self._max_spans:
                full = f"{self._max_spans} spans"
            elif self._queued_bytes + size > self._max_bytes:
                full = f"{self._max_bytes} bytes"
            else:
                self._queue.append((span, size))
                self._queued_bytes += size
                self._accepted += 1
                if len(self._queue) >= self._max_batch:
                    self._wake.notify()
                return
        diagnostics.queue_full(full)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.flush(timeout_millis / 1000)

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

    def shutdown(self, timeout: float = 5.0) -> bool:  # type: ignore[override]
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
                wait = retry_delay or self._interval
                deadline = time.monotonic() + wait
                while not (
                    self._stopping
                    or (self._flush_requested and not retry_delay)
                    or len(self._queue) >= self._max_batch
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

    def _take_batch(self) -> list[ReadableSpan]:
        batch: list[ReadableSpan] = []
        batch_bytes = 0
        while self._queue and len(batch) < self._max_batch:
            span, size = self._queue[0]
            if batch and batch_bytes + size > _MAX_REQUEST_BYTES:
                break
            self._queue.popleft()
            self._queued_bytes -= size
            batch_bytes += size
            batch.append(span)
        return batch

    def _export(self, batch: list[ReadableSpan]) -> bool:
        try:
            result = self._exporter.export(batch)
        except Exception as exc:  # an exporter must not raise, but the worker must not die
            diagnostics.export_failure(len(batch), type(exc).__name__)
            return False
        if result is SpanExportResult.SUCCESS:
            diagnostics.counters.add("spans_exported", len(batch))
            return True
        diagnostics.export_failure(len(batch), "the collector is unreachable or refused them")
        return False


class Pipeline:
    """One configuration of inferwatch's tracer provider, processor and exporter."""

    def __init__(self, settings: Settings, exporter: SpanExporter | None = None) -> None:
        self.settings = settings
        self.sampler = CallSampler(settings.sample_rate)
        self.exporter = exporter if exporter is not None else _otlp_exporter(settings)
        self.processor = BoundedSpanProcessor(
            self.exporter,
            max_queue_spans=settings.max_queue_spans,
            max_queue_bytes=settings.max_queue_bytes,
            max_export_batch=settings.max_export_batch,
            flush_interval=settings.flush_interval,
        )
        self.provider = TracerProvider(
            sampler=ALWAYS_ON,
            resource=Resource.create({"service.name": settings.service_name}),
            # Our attributes must arrive whole whatever OTEL_*_LIMIT the application sets.
            span_limits=SpanLimits(
                max_span_attributes=64,
                max_attribute_length=SpanLimits.UNSET,
                max_span_attribute_length=SpanLimits.UNSET,
            ),
            shutdown_on_exit=False,
        )
        self.provider.add_span_processor(self.processor)
        self.tracer: Tracer = self.provider.get_tracer(contract.INSTRUMENTATION_SCOPE)

    def flush(self, timeout: float) -> bool:
        return self.processor.flush(timeout)

    def shutdown(self, timeout: float) -> bool:
        return self.processor.shutdown(timeout)


def _otlp_exporter(settings: Settings) -> OTLPSpanExporter:
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else None
    compression = Compression.Gzip if settings.compression == "gzip" else Compression.NoCompression
    return OTLPSpanExporter(
        endpoint=settings.traces_url,
        headers=headers,
        timeout=settings.export_timeout,
        compression=compression,
    )


_pipeline: Pipeline | None = None
_pipeline_lock = threading.Lock()
EXIT_TIMEOUT = 2.0


def active() -> Pipeline | None:
    """The running pipeline, or None before ``init`` (read on every monitored call)."""
    return _pipeline


def start(settings: Settings, exporter: SpanExporter | None = None) -> Pipeline:
    """Replace the running pipeline (shut down within ``timeout``) by one for ``settings``."""
    global _pipeline
    with _pipeline_lock:
        old, _pipeline = _pipeline, Pipeline(settings, exporter)
    if old is not None:
        old.shutdown(min(settings.export_timeout, EXIT_TIMEOUT))
    return _pipeline


def stop(timeout: float) -> bool:
    """Flush and shut down the running pipeline within ``timeout``; later calls record nothing."""
    global _pipeline
    with _pipeline_lock:
        old, _pipeline = _pipeline, None
    return old.shutdown(timeout) if old is not None else True


def _at_exit() -> None:
    stop(EXIT_TIMEOUT)


atexit.register(_at_exit)


def _restart_in_child() -> None:
    # A forked worker (gunicorn, BentoML) inherits the pipeline but not its export thread, and
    # maybe a lock held mid-append: give it a fresh pipeline with the same settings.
    global _pipeline, _pipeline_lock
    _pipeline_lock = threading.Lock()
    if _pipeline is not None:
        _pipeline = Pipeline(_pipeline.settings)


os.register_at_fork(after_in_child=_restart_in_child)
