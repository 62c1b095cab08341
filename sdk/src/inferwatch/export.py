"""inferwatch's own export pipeline: sampler, export queue, span encoder and sender.

It is separate from any pipeline the application has (BentoML, for one, samples 0% by default):
the global tracer provider is never read nor set. Spans go to ``{endpoint}/v1/traces`` over
OTLP/HTTP (inferwatch.otlp_http, not the OpenTelemetry exporter, whose retries block the export
thread and log every failed attempt). The export thread (inferwatch.export_queue) writes each
call's span straight into the request's protobuf bytes (inferwatch.otlp_spans) and sends them.
"""

from __future__ import annotations

import atexit
import os
import random
import threading

from opentelemetry.sdk.resources import Resource

from inferwatch import contract, diagnostics
from inferwatch.config import Settings
from inferwatch.export_queue import ExportQueue, PendingSpan
from inferwatch.otlp_http import OTLPHTTPSender, SpanSender
from inferwatch.otlp_spans import SpanEncoder
from inferwatch.retry import RetryPolicy


class CallSampler:
    """Decides, per call and before anything is encoded, whether a call is recorded.

    Not parent-based on purpose: the application's span may be unsampled (BentoML's default)
    and must not switch monitoring off. Not trace-id based either: calls sharing one trace
    (a batch job) are sampled independently. An unsampled call never becomes a span.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._random = random.Random()

    def sampled(self) -> bool:
        rate = self.rate
        return rate >= 1.0 or (rate > 0.0 and self._random.random() < rate)


class Pipeline:
    """One configuration of inferwatch's export queue, span encoder and sender.

    ``sender`` replaces the OTLP/HTTP sender of the settings (tests and benchmarks).
    """

    def __init__(self, settings: Settings, sender: SpanSender | None = None) -> None:
        self.settings = settings
        self.sampler = CallSampler(settings.sample_rate)
        # The resource the OpenTelemetry SDK would give the spans ($OTEL_RESOURCE_ATTRIBUTES
        # included), encoded once.
        self._encoder = SpanEncoder(Resource.create({"service.name": settings.service_name}))
        self.queue = ExportQueue(
            sender if sender is not None else _otlp_sender(settings),
            self._encode,
            max_queue_spans=settings.max_queue_spans,
            max_queue_bytes=settings.max_queue_bytes,
            max_export_batch=settings.max_export_batch,
            flush_interval=settings.flush_interval,
            retry=RetryPolicy(backoff=settings.retry_backoff, max_delay=settings.max_retry_delay),
        )

    def submit(self, pending: PendingSpan) -> None:
        self.queue.submit(pending)

    def flush(self, timeout: float) -> bool:
        return self.queue.flush(timeout)

    def shutdown(self, timeout: float) -> bool:
        return self.queue.shutdown(timeout)

    def _encode(self, batch: list[PendingSpan]) -> tuple[list[bytes] | None, int]:
        """The export request of a batch of calls (None if no span could be encoded), and how
        many calls could not be (run by the export thread only)."""
        encoder = self._encoder
        spans: list[list[bytes]] = []
        for pending in batch:
            try:
                if pending.complete is not None:
                    pending.complete(pending.attributes)
                spans.append(encoder.span(pending))
            except Exception as exc:
                model = str(pending.attributes.get(contract.ATTR_MODEL_NAME))
                diagnostics.monitoring_error(model, "building the span", exc)
        return (encoder.request(spans) if spans else None), len(batch) - len(spans)


def _otlp_sender(settings: Settings) -> OTLPHTTPSender:
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    return OTLPHTTPSender(
        settings.traces_url,
        headers=headers,
        timeout=settings.export_timeout,
        gzip_body=settings.compression == "gzip",
    )


_pipeline: Pipeline | None = None
_pipeline_lock = threading.Lock()
# In a forked child: the settings of the pipeline inherited from the parent, whose export
# thread did not survive the fork. The child's own pipeline starts from them on first use.
_inherited: Settings | None = None
EXIT_TIMEOUT = 2.0


def active() -> Pipeline | None:
    """The running pipeline, or None before ``init`` (read on every monitored call)."""
    pipeline = _pipeline
    if pipeline is None and _inherited is not None:
        return _start_inherited()
    return pipeline


def configured() -> bool:
    """Whether ``start`` was called and ``stop`` not since (in a forked child: in the parent)."""
    return _pipeline is not None or _inherited is not None


def _start_inherited() -> Pipeline | None:
    global _pipeline, _inherited
    with _pipeline_lock:
        if _pipeline is None and _inherited is not None:
            _pipeline, _inherited = Pipeline(_inherited), None
        return _pipeline


def start(settings: Settings, sender: SpanSender | None = None) -> Pipeline:
    """Replace the running pipeline (shut down within ``timeout``) by one for ``settings``;
    ``sender`` replaces its OTLP/HTTP sender (tests and benchmarks)."""
    global _pipeline, _inherited
    pipeline = Pipeline(settings, sender)
    with _pipeline_lock:
        old, _pipeline, _inherited = _pipeline, pipeline, None
    if old is not None:
        old.shutdown(min(settings.export_timeout, EXIT_TIMEOUT))
    return pipeline


def stop(timeout: float) -> bool:
    """Flush and shut down the running pipeline within ``timeout``; later calls record nothing."""
    global _pipeline, _inherited
    with _pipeline_lock:
        old, _pipeline, _inherited = _pipeline, None, None
    return old.shutdown(timeout) if old is not None else True


def _at_exit() -> None:
    stop(EXIT_TIMEOUT)


atexit.register(_at_exit)


def _forget_in_child() -> None:
    # A forked worker (gunicorn, BentoML) inherits the pipeline but not its export thread, and
    # maybe a lock held by a thread that no longer exists. The inherited queue holds the
    # parent's spans (the parent exports them) and its exporter the parent's connections: all
    # are dropped, never touched. The child builds its own pipeline when it first records, so
    # a worker that never monitors starts no thread.
    global _pipeline, _pipeline_lock, _inherited
    _pipeline_lock = threading.Lock()
    inherited = _pipeline
    if inherited is not None:
        _pipeline, _inherited = None, inherited.settings


os.register_at_fork(after_in_child=_forget_in_child)
