"""Everything one running collector holds, built together and shared by its routes and tasks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from inferwatch.collector.alerts import AlertDispatcher, AlertEngine
from inferwatch.collector.detect.fitted import FittedCache
from inferwatch.collector.ingest.pipeline import IngestPipeline
from inferwatch.collector.plugins import Registry
from inferwatch.collector.receive.http import ReceiverStats
from inferwatch.collector.reference.references import References
from inferwatch.collector.runtime.keeper import WindowKeeper
from inferwatch.collector.runtime.model_figures import ModelFigures
from inferwatch.collector.runtime.model_settings import ModelSettings
from inferwatch.collector.runtime.otlp_metrics import MetricsPush
from inferwatch.collector.runtime.prometheus import CollectorMetrics
from inferwatch.collector.settings import CollectorConfig
from inferwatch.collector.storage import Storage, open_storage
from inferwatch.collector.window.state import WindowBook


@dataclass
class Collector:
    config: CollectorConfig
    # The checks, detectors, metrics and notifiers this collector runs (plugins.Registry).
    registry: Registry
    # Detectors fitted on references, reused by every window's checks.
    fitted: FittedCache
    storage: Storage
    settings: ModelSettings
    references: References
    book: WindowBook
    state_lock: asyncio.Lock
    pipeline: IngestPipeline
    keeper: WindowKeeper
    metrics: CollectorMetrics
    # The per-model figures /metrics and the OpenTelemetry export show.
    figures: ModelFigures
    # Started and stopped by the app's lifespan; None without [collector] metrics_endpoint.
    push: MetricsPush | None
    receiver_stats: ReceiverStats
    alerts: AlertEngine
    # Started and closed by the app's lifespan, on its event loop.
    dispatcher: AlertDispatcher
    clock: Callable[[], float]

    @classmethod
    def build(cls, config: CollectorConfig, clock: Callable[[], float] = time.time) -> Collector:
        registry = config.catalog
        if not isinstance(registry, Registry):
            registry = Registry.load(config.plugins)
        storage = open_storage(config)
        settings = ModelSettings(config, registry, storage.settings)
        references = References(storage.references, settings, clock)
        book = WindowBook(storage.windows, config.instance_id, references.new_window)
        state_lock = asyncio.Lock()
        receiver_stats = ReceiverStats()
        keeper: WindowKeeper | None = None
        dispatcher = AlertDispatcher(
            registry.notifiers,
            base_url=config.base_url,
            queue_size=config.max_pending_deliveries,
            outbox=storage.outbox,
            # The leader sends: replicas share the outbox.
            may_send=lambda: keeper is not None and keeper.leads,
        )
        alerts = AlertEngine(
            storage.alerts, lambda model: settings(model).alerts, dispatcher, clock
        )
        figures = ModelFigures(storage, config)
        push = None
        if config.metrics_endpoint is not None:
            push = MetricsPush(
                figures, config.metrics_endpoint, config.metrics_interval, config.instance_id
            )
        metrics = CollectorMetrics(receiver_stats, dispatcher, book, figures)
        fitted = FittedCache()
        pipeline = IngestPipeline(
            storage.windows, book, references, config, settings, metrics, state_lock, clock
        )
        keeper = WindowKeeper(
            storage.windows,
            storage.labels,
            storage.settings,
            book,
            references,
            pipeline,
            alerts,
            config,
            settings,
            metrics,
            state_lock,
            registry.checks_in_order(),
            fitted,
            clock,
            leadership=storage.leadership,
            refresh_settings=settings.refresh,
            hold_deliveries=dispatcher.held,
        )
        return cls(
            config,
            registry,
            fitted,
            storage,
            settings,
            references,
            book,
            state_lock,
            pipeline,
            keeper,
            metrics,
            figures,
            push,
            receiver_stats,
            alerts,
            dispatcher,
            clock,
        )

    def knows_model(self, model: str) -> bool:
        """Whether ``model`` has windows here or settings of its own (a table in the file, or
        changes put through the API). Blocking: call it off the event loop."""
        if model in self.config.models or self.storage.windows.find(model, limit=1):
            return True
        return model in self.storage.settings.model_configs()

    def known_models(self) -> list[str]:
        """Every model with windows or settings of its own, sorted. Blocking."""
        with_windows = {v.model for v in self.storage.windows.versions()}
        configured = {*self.config.models, *self.storage.settings.model_configs()}
        return sorted(with_windows | configured)
