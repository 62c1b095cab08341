"""The per-model figures pushed over OTLP/HTTP, when ``[collector] metrics_endpoint`` is set.

The OpenTelemetry SDK's periodic reader collects every ``metrics_interval`` and its OTLP/HTTP
exporter sends protobuf to the endpoint. Each family of ``runtime.model_figures`` is one
observable instrument of the same name (a gauge, or a cumulative counter without ``_total``),
with the same attributes and values as /metrics: every model, as the operator who set the
endpoint sees them. Headers (an API key for the receiver) come from
``OTEL_EXPORTER_OTLP_METRICS_HEADERS`` or ``OTEL_EXPORTER_OTLP_HEADERS``, as for any OTel SDK.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from inferwatch.collector.runtime.model_figures import FAMILIES, Family, Figures, ModelFigures

logger = logging.getLogger(__name__)

SCOPE = "inferwatch.collector"
# Seconds an export request may take, and points in one request (a large collector's ~26,000
# per-model points go in a few requests of bounded size).
EXPORT_TIMEOUT_SECONDS = 10.0
POINTS_PER_REQUEST = 10_000


class MetricsPush:
    """Started and stopped by the app's lifespan; reads the figures once per collection."""

    def __init__(
        self, figures: ModelFigures, endpoint: str, interval_seconds: float, instance: str
    ) -> None:
        self._figures = figures
        self._endpoint = endpoint
        self._interval = interval_seconds
        self._instance = instance
        self._provider: MeterProvider | None = None
        self._lock = threading.Lock()
        self._latest: tuple[float, Figures] | None = None

    def start(self) -> None:
        exporter = OTLPMetricExporter(
            endpoint=self._endpoint,
            timeout=EXPORT_TIMEOUT_SECONDS,
            max_export_batch_size=POINTS_PER_REQUEST,
        )
        reader = PeriodicExportingMetricReader(
            exporter,
            export_interval_millis=self._interval * 1000,
            export_timeout_millis=EXPORT_TIMEOUT_SECONDS * 1000,
        )
        resource = Resource.create(
            {"service.name": "inferwatch-collector", "service.instance.id": self._instance}
        )
        provider = MeterProvider(metric_readers=[reader], resource=resource)
        meter = provider.get_meter(SCOPE)
        for family in FAMILIES:
            callbacks = [self._observer(family)]
            if family.kind == "counter":
                meter.create_observable_counter(
                    family.name, callbacks, unit=family.unit, description=family.help
                )
            else:
                meter.create_observable_gauge(
                    family.name, callbacks, unit=family.unit, description=family.help
                )
        self._provider = provider
        logger.info("pushing per-model metrics to %s every %g s", self._endpoint, self._interval)

    def stop(self) -> None:
        """Export once more and stop (blocks up to the export timeout: call it off the loop)."""
        if self._provider is not None:
            self._provider.shutdown(timeout_millis=EXPORT_TIMEOUT_SECONDS * 1000)
            self._provider = None

    def _observer(self, family: Family) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            for labels, value in self._current().samples[family]:
                yield Observation(value, dict(zip(family.labels, labels, strict=True)))

        return observe

    def _current(self) -> Figures:
        """The figures of this collection: its callbacks run one after another, and the first
        reads them for all."""
        now = time.monotonic()
        with self._lock:
            if self._latest is None or now - self._latest[0] > min(1.0, self._interval / 2):
                self._latest = (now, self._figures.read())
            return self._latest[1]
