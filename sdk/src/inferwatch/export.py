"""inferwatch's own OpenTelemetry pipeline: tracer provider, sampler, export queue, exporter.

It is separate from any pipeline the application has (BentoML, for one, samples 0% by default):
the global provider is never read nor set. Spans go to ``{endpoint}/v1/traces`` over OTLP/HTTP
(inferwatch.otlp_http, not the OpenTelemetry exporter, whose retries block the export thread
and log every failed attempt). The export thread (inferwatch.export_queue) builds each call's
span and exports it.
"""

from __future__ import annotations

import atexit
import os
import random
import threading

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from inferwatch import contract, diagnostics
from inferwatch.config import Settings
from inferwatch.export_queue import ExportQueue, PendingSpan
from inferwatch.otlp_http import ExporterSender, OTLPHTTPSender, SpanSender
from inferwatch.retry import RetryPolicy


class CallSampler:
    """Decides, per call and before anything is encoded, whether a call is recorded.

    Not parent-based on purpose: the application's span may be unsampled (BentoML's default)
    and must not switch monitoring off. Not trace-id based either: calls sharing one trace
    (a batch job) are sampled independently. The tracer provider then samples every span it
    is asked for: an unsampled call never becomes one.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._random = random.Random()

    def sampled(self) -> bool:
        rate = self.rate
        return rate >= 1.0 or (rate > 0.0 and self._random.random() < rate)


class _Collector(SpanProcessor):
    """The provider's only processor: hands the spans the export thread ends back to it."""

    def __init__(self) -> None:
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: object, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


class Pipeline:
    """One configuration of inferwatch's tracer provider, export queue and exporter."""

    def __init__(self, settings: Settings, exporter: SpanExporter | None = None) -> None:
        self.settings = settings
        self.sampler = CallSampler(settings.sample_rate)
        sender: SpanSender = (
            _otlp_sender(settings) if exporter is None else ExporterSender(exporter)
        )
        self._collector = _Collector()
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
        self.provider.add_span_processor(self._collector)
        self.tracer: Tracer = self.provider.get_tracer(contract.INSTRUMENTATION_SCOPE)
        self.queue = ExportQueue(
            sender,
            self._build,
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

    def _build(self, batch: list[PendingSpan]) -> tuple[list[ReadableSpan], int]:
        """The spans of a batch of calls, and how many calls could not be built (run by the
        export thread, the only one ending spans on this provider)."""
        unbuilt = 0
        for pending in batch:
            try:
                if pending.complete is not None:
                    pending.complete(pending.attributes)
                span = self.tracer.start_span(
                    contract.SPAN_NAME,
                    context=pending.parent,
                    kind=SpanKind.INTERNAL,
                    attributes=pending.attributes,
                    start_time=pending.start_ns,
                )
                if pending.error is not None:
                    kind, message = pending.error
                    span.set_status(Status(StatusCode.ERROR, kind))
                    span.add_event(
                        "exception", {"exception.type": kind, "exception.message": message}
                    )
                span.end(end_time=pending.end_ns)
            except Exception as exc:
                unbuilt += 1
                model = str(pending.attributes.get(contract.ATTR_MODEL_NAME))
                diagnostics.monitoring_error(model, "building the span", exc)
        spans, self._collector.ended = self._collector.ended, []
        return spans, unbuilt


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


def start(settings: Settings, exporter: SpanExporter | None = None) -> Pipeline:
    """Replace the running pipeline (shut down within ``timeout``) by one for ``settings``."""
    global _pipeline, _inherited
    pipeline = Pipeline(settings, exporter)
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
