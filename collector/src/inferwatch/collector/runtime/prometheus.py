"""The collector's Prometheus metrics: its own counters in a registry of its own (one per app),
and the per-model figures (runtime.model_figures), read from storage at each scrape."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inferwatch.collector.alerts import AlertDispatcher
from inferwatch.collector.receive.http import ReceiverStats
from inferwatch.collector.runtime.model_figures import FAMILIES, Figures, ModelFigures
from inferwatch.collector.window.state import WindowBook
from inferwatch.collector.window.store import EvaluatedWindow

_RENDERED_KEPT = 4


class CollectorMetrics:
    def __init__(
        self,
        receiver: ReceiverStats,
        dispatcher: AlertDispatcher,
        book: WindowBook,
        figures: ModelFigures,
    ) -> None:
        self._figures = figures
        # The per-window part of recent expositions, by the windows it shows (one entry per
        # set of models that callers may see).
        self._rendered: dict[tuple[EvaluatedWindow, ...], bytes] = {}
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        r = self.registry
        self.batches = Counter(
            "inferwatch_ingest_batches",
            "Prediction batches (spans) by outcome: stored, dropped as a duplicate, or refused "
            "for good (a value storage cannot keep).",
            ["outcome"],
            registry=r,
        )
        self.rows = Counter("inferwatch_ingest_rows", "Prediction rows stored.", registry=r)
        self.overloaded = Counter(
            "inferwatch_ingest_overloaded",
            "Submissions refused because the ingest queue was full.",
            registry=r,
        )
        self.queue_rows = Gauge(
            "inferwatch_ingest_queue_rows", "Rows waiting for the ingest worker.", registry=r
        )
        self.commit_seconds = Histogram(
            "inferwatch_ingest_commit_seconds",
            "Time to make one group of batches durable.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.labels = Counter(
            "inferwatch_labels",
            "Labels by outcome: accepted, joined, pending, replaced, expired (never matched).",
            ["outcome"],
            registry=r,
        )
        self.labels_unknown_model = Counter(
            "inferwatch_labels_unknown_model",
            "Labels sent for a model with no windows and no settings here (a misspelt name, or "
            "labels ahead of the model's first prediction); they wait as pending.",
            registry=r,
        )
        windows_open = Gauge("inferwatch_windows_open", "Windows held open in memory.", registry=r)
        # Read at scrape time: windows also leave memory when a checkpoint evicts closed ones.
        windows_open.set_function(lambda: len(book))
        self.quarantined = Gauge(
            "inferwatch_journal_quarantined_batches",
            "Journaled batches that could not be replayed into window state, kept aside in the "
            "database (table quarantined_batches).",
            registry=r,
        )
        self.evaluations = Counter(
            "inferwatch_window_evaluations",
            "Window evaluations by trigger: close, or re-evaluation after late data or labels.",
            ["trigger"],
            registry=r,
        )
        self.evaluation_errors = Counter(
            "inferwatch_window_evaluation_errors",
            "Window evaluations that failed and will be retried.",
            registry=r,
        )
        self.alert_events = Counter(
            "inferwatch_alert_events",
            "Alert changes by event: opened, escalated, repeated, resolved.",
            ["event"],
            registry=r,
        )
        self.alert_errors = Counter(
            "inferwatch_alert_errors",
            "Evaluations whose results could not be turned into alerts (see the log).",
            registry=r,
        )
        self.registry.register(_ReceiverCollector(receiver))
        self.registry.register(_DeliveryCollector(dispatcher))

    def render(self, may_see: Callable[[str], bool] | None = None) -> bytes:
        """The exposition: the collector's own series, then the per-model series of the models
        ``may_see`` lets through (none when it is None).

        The per-window series are rendered again only when their windows change (a window
        closes or is evaluated again): tens of thousands of series take prometheus-client
        about half a second (bench/bench_metrics.py).
        """
        text = generate_latest(self.registry)
        if may_see is None:
            return text
        figures = self._figures.read(may_see)
        with self._lock:
            windows = self._rendered.get(figures.windows)
        if windows is None:
            windows = _exposition(figures, per_window=True)
            with self._lock:
                self._rendered[figures.windows] = windows
                while len(self._rendered) > _RENDERED_KEPT:
                    del self._rendered[next(iter(self._rendered))]
        return text + windows + _exposition(figures, per_window=False)


def _exposition(figures: Figures, *, per_window: bool) -> bytes:
    registry = CollectorRegistry()
    registry.register(ModelCollector(figures, per_window))
    return generate_latest(registry)


class ModelCollector(Collector):
    """Per-model series: the families of ``FAMILIES`` that are (or are not) per window."""

    def __init__(self, figures: Figures, per_window: bool) -> None:
        self._figures = figures
        self._per_window = per_window

    def collect(self) -> Iterator[Metric]:
        for family in FAMILIES:
            if family.per_window != self._per_window:
                continue
            kind = GaugeMetricFamily if family.kind == "gauge" else CounterMetricFamily
            metric = kind(family.name, family.help, labels=family.labels)
            for labels, value in self._figures.samples[family]:
                metric.add_metric(labels, value)
            yield metric


class _ReceiverCollector(Collector):
    """Reads the receiver's plain counters at scrape time."""

    def __init__(self, stats: ReceiverStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        for field in dataclasses.fields(self._stats):
            family = CounterMetricFamily(
                f"inferwatch_receiver_{field.name}",
                f"OTLP receiver: {field.name.replace('_', ' ')}.",
            )
            family.add_metric([], float(getattr(self._stats, field.name)))
            yield family


class _DeliveryCollector(Collector):
    """Reads the alert dispatcher's webhook delivery counts at scrape time."""

    def __init__(self, dispatcher: AlertDispatcher) -> None:
        self._dispatcher = dispatcher

    def collect(self) -> Iterator[Metric]:
        stats = self._dispatcher.stats
        deliveries = CounterMetricFamily(
            "inferwatch_alert_deliveries",
            "Webhook deliveries of alert events by outcome: delivered, failed (given up), "
            "dropped (the outbox full).",
            labels=["outcome"],
        )
        for outcome in ("delivered", "failed", "dropped"):
            deliveries.add_metric([outcome], float(getattr(stats, outcome)))
        yield deliveries
        yield CounterMetricFamily(
            "inferwatch_alert_delivery_retries",
            "Webhook delivery attempts that were retried.",
            value=float(stats.retries),
        )
        yield GaugeMetricFamily(
            "inferwatch_alert_deliveries_queued",
            "Webhook deliveries waiting in the outbox.",
            value=float(stats.queued),
        )
