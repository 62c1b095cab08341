"""The collector's background task: checkpoints, closing windows, re-evaluations, housekeeping.

A window closes once its end plus the model's allowed lateness has passed; closing evaluates it.
Late spans or labels for a closed window mark it, and the next tick evaluates it again, as does
the model's performance ``max_label_delay`` passing for a window whose metrics waited for labels.
Every evaluation's results then go to the alert engine, which opens and resolves alerts.

Replicas sharing a database each checkpoint their own share of window state, and take the
settings and references the others stored; only the leader (``storage.Leadership``) evaluates,
alerts, sweeps and prunes, reading every replica's share of a window, checkpointed or still in
its journal. Another replica takes the role on its next tick after the leader goes. The
leader stores each evaluation with its alert changes and their webhook deliveries (the outbox)
in one fenced block (``Leadership.fenced``), and logs their events only once it is stored: a
collector that lost the role meanwhile stores and sends nothing of it. The leader's dispatcher
sends what the outbox holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from inferwatch.collector.alerts import AlertEngine, WindowResults
from inferwatch.collector.detect.check import CheckSpec
from inferwatch.collector.detect.checks.estimated_performance import (
    DETAILS_KEY as ESTIMATED_PERFORMANCE,
)
from inferwatch.collector.detect.checks.estimated_performance import window_estimate
from inferwatch.collector.detect.checks.performance import NAME as PERFORMANCE
from inferwatch.collector.detect.checks.performance import PerformanceSettings
from inferwatch.collector.detect.evaluate import evaluate_window
from inferwatch.collector.detect.fitted import FittedCache
from inferwatch.collector.detect.view import DetectorStates, WindowView
from inferwatch.collector.detectors.result import Result
from inferwatch.collector.ingest.journal import decode_batch
from inferwatch.collector.ingest.pipeline import IngestPipeline
from inferwatch.collector.labels.join import labelled_pairs
from inferwatch.collector.labels.scoring import window_performance
from inferwatch.collector.labels.store import LabelStore
from inferwatch.collector.receive.batch import PredictionBatch
from inferwatch.collector.reference.references import References
from inferwatch.collector.runtime.prometheus import CollectorMetrics
from inferwatch.collector.settings import CollectorConfig, ModelConfig
from inferwatch.collector.storage import Leadership, LeadershipLost, SoleCollector
from inferwatch.collector.window.state import WindowBook, WindowState
from inferwatch.collector.window.store import WindowParts, WindowRecord, WindowStore

logger = logging.getLogger(__name__)

PRUNE_INTERVAL_SECONDS = 60.0
# How often alerts of versions without traffic resolve as stale and ended silences are sent.
SWEEP_INTERVAL_SECONDS = 10.0
# How often the event loop tells the leadership it runs (Leadership.beat); well under the
# shortest loop_stall_seconds allowed.
BEAT_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class Evaluating:
    """The window evaluation in flight: a check that never returns keeps it here, and every
    model's windows wait behind it (its worker thread cannot be stopped from outside)."""

    model: str
    window_id: int
    since: float  # time.time()
    started: float  # time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


class WindowKeeper:
    def __init__(
        self,
        windows: WindowStore,
        labels: LabelStore,
        detector_states: DetectorStates,
        book: WindowBook,
        references: References,
        pipeline: IngestPipeline,
        alerts: AlertEngine,
        config: CollectorConfig,
        config_for: Callable[[str], ModelConfig],
        metrics: CollectorMetrics,
        state_lock: asyncio.Lock,
        checks: Sequence[CheckSpec[Any]],
        fitted: FittedCache,
        clock: Callable[[], float] = time.time,
        *,
        leadership: Leadership | None = None,
        refresh_settings: Callable[[], None] = lambda: None,
        hold_deliveries: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        self._windows = windows
        self._labels = labels
        self._detector_states = detector_states
        self._book = book
        self._references = references
        self._pipeline = pipeline
        self._alerts = alerts
        self._config = config
        self._config_for = config_for
        self._metrics = metrics
        self._state_lock = state_lock
        self._checks = checks
        self._fitted = fitted
        self._clock = clock
        self._leadership = leadership or SoleCollector()
        self._refresh_settings = refresh_settings
        # Alert events are logged and sent once the block's changes are stored
        # (AlertDispatcher.held).
        self._hold_deliveries = hold_deliveries
        self._leads = False
        self._evaluating: Evaluating | None = None
        self._last_checkpoint = clock()
        self._last_prune = -float("inf")
        self._last_sweep = -float("inf")
        self._closed_in_memory: set[int] = set()
        # Per model, the latest window end whose label delay was checked (see _label_delays).
        self._delays_checked_ms: dict[str, int] = {}

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                logger.exception("window housekeeping failed; retrying next tick")
            await asyncio.sleep(self._config.tick_seconds)

    async def beat(self) -> None:
        """Until cancelled, tell the leadership that the event loop runs: a leader whose loop
        hangs then hands the role back. On the loop itself, not a thread, so that a hung loop
        stops it; evaluations run in threads, so a slow one does not."""
        while True:
            self._leadership.beat()
            await asyncio.sleep(BEAT_SECONDS)

    @property
    def leads(self) -> bool:
        """Whether this collector evaluated as the leader at its last tick."""
        return self._leads

    @property
    def evaluating(self) -> Evaluating | None:
        return self._evaluating

    async def tick(self) -> None:
        """One round of housekeeping (tests call it directly with an injected clock)."""
        now = self._clock()
        await asyncio.to_thread(self._refresh_settings)
        await asyncio.to_thread(self._references.forget_missing)
        leads = await asyncio.to_thread(self._leadership.holds)
        if leads != self._leads:
            # Marks of windows evaluated as leader say nothing once another replica evaluates.
            self._closed_in_memory.clear()
            self._leads = leads
        if now - self._last_checkpoint >= self._config.checkpoint_interval_seconds:
            await self._checkpoint()
            self._last_checkpoint = now
        await asyncio.to_thread(self._references.fit_due)
        if not leads:
            return
        try:
            await self._lead(now)
        except LeadershipLost as exc:
            logger.warning("stopped evaluating windows and alerts: %s", exc)

    async def _lead(self, now: float) -> None:
        """What only the leader does."""
        now_ms = int(now * 1000)
        for record in await asyncio.to_thread(self._windows.find, closed=False):
            lateness_ms = self._config_for(record.model).allowed_lateness_seconds * 1000
            if record.end_ms + lateness_ms <= now_ms:
                await self.evaluate(record, close=True)
        await asyncio.to_thread(self._label_delays, now_ms)
        for record in await asyncio.to_thread(self._windows.find, closed=True, needs_eval=True):
            await self.evaluate(record, close=False)
        await self._reference_from_windows()
        if now - self._last_sweep >= SWEEP_INTERVAL_SECONDS:
            await asyncio.to_thread(self._sweep_alerts)
            self._last_sweep = now
        if now - self._last_prune >= PRUNE_INTERVAL_SECONDS:
            await asyncio.to_thread(self._prune, now_ms)
            self._last_prune = now

    async def evaluate(self, record: WindowRecord, *, close: bool) -> None:
        async with self._state_lock:
            await self._pipeline.settle()
            # The marks this evaluation answers for: read with the stored parts, once the settled
            # spans are in the state and before the labels are read, so whatever lands later
            # (here or at another replica) stays marked.
            parts = await asyncio.to_thread(self._windows.parts, record.id)
            state = await asyncio.to_thread(self._whole, record.id, parts)
        marks = parts.needs_eval
        self._evaluating = Evaluating(record.model, record.id, time.time(), time.monotonic())
        try:
            await asyncio.to_thread(self._evaluate, record, state or WindowState(), close, marks)
        except LeadershipLost:
            raise
        except Exception:
            self._metrics.evaluation_errors.inc()
            raise
        finally:
            self._evaluating = None
        self._metrics.evaluations.labels("close" if close else "late").inc()
        if close:
            self._closed_in_memory.add(record.id)

    def _whole(self, window_id: int, parts: WindowParts) -> WindowState | None:
        """The window's whole state: this collector's, and every other replica's share."""
        others: list[PredictionBatch] = []
        for payload in parts.journal:
            try:
                others.append(decode_batch(payload))
            except Exception as exc:
                # Its replica quarantines it when it replays its journal.
                logger.warning(
                    "a journaled batch of another replica in window %d cannot be read (%s)",
                    window_id,
                    type(exc).__name__,
                )
        return self._book.merged(window_id, parts.states, others)

    def _evaluate(self, record: WindowRecord, state: WindowState, close: bool, marks: int) -> None:
        config = self._config_for(record.model)
        profile = self._references.profile(record.model, record.version)
        pairs = labelled_pairs(self._labels.for_window(record.id))
        performance = window_performance(pairs, state.task, state.rows)
        now_ms = int(self._clock() * 1000)
        # Read after the pairs: a label landing in between is then counted on the next round.
        current = self._windows.get(record.model, record.id) or record
        view = WindowView(
            record.model,
            record.version,
            record.start_ms,
            record.end_ms,
            state,
            current.labelled,
            performance,
            now_ms,
            detector_states=self._detector_states,
            history=self._windows,
            fitted=self._fitted,
        )
        results = evaluate_window(profile, view, config, self._checks)
        details: dict[str, Any] = state.describe()
        details["performance"] = performance
        # Beside the realized figures: what the window's predictions say before (and while)
        # its labels arrive; None when the check is off.
        details[ESTIMATED_PERFORMANCE] = window_estimate(results)
        details["label_coverage"] = current.labelled / state.rows if state.rows else None
        details["reference"] = profile is not None
        with self._hold_deliveries(), self._leadership.fenced():
            self._windows.save_evaluation(
                record.id,
                results,
                details,
                now_ms,
                close=close,
                marks_seen=marks,
            )
            self._alert(record, results)

    def _alert(self, record: WindowRecord, results: list[Result]) -> None:
        """Turn the stored results into alerts; a failure here never undoes the evaluation."""
        window = WindowResults(record.id, record.start_ms, record.end_ms, results)
        try:
            events = self._alerts.process(record.model, record.version, window)
        except Exception:
            # The store failing, or a bug: either way the evaluation stands, and the next
            # evaluation of the check alerts again.
            self._metrics.alert_errors.inc()
            logger.exception("alerting on window %d of %s failed", record.id, record.model)
            return
        for event in events:
            self._metrics.alert_events.labels(event.kind).inc()

    def _sweep_alerts(self) -> None:
        traffic = {(v.model, v.version): v.last_ms for v in self._windows.versions()}
        try:
            with self._hold_deliveries(), self._leadership.fenced():
                events = self._alerts.sweep(traffic)
        except LeadershipLost:
            raise
        except Exception:
            self._metrics.alert_errors.inc()
            logger.exception("resolving stale alerts failed")
            return
        for event in events:
            self._metrics.alert_events.labels(event.kind).inc()

    def _label_delays(self, now_ms: int) -> None:
        """Mark closed windows whose metrics waited for labels once their label delay is over.

        Each round looks only at windows whose delay ended since the previous round (all of them
        on the first round after a start, so a delay that ended while the collector was down
        still counts).
        """
        for model in sorted({version.model for version in self._windows.versions()}):
            performance = self._config_for(model).detectors.get(PERFORMANCE)
            if not isinstance(performance, PerformanceSettings):
                continue
            delay = performance.max_label_delay
            if delay is None:
                continue
            due_ms = now_ms - int(delay * 1000)
            since_ms = self._delays_checked_ms.get(model)
            if since_ms is not None and due_ms <= since_ms:
                continue
            records = self._windows.find(model, None, since_ms, due_ms, closed=True)
            waiting = {r.id for r in records if r.end_ms <= due_ms and _waits_for_labels(r)}
            if waiting:
                self._windows.mark_for_evaluation(waiting)
            self._delays_checked_ms[model] = due_ms

    async def _checkpoint(self) -> None:
        async with self._state_lock:
            await asyncio.to_thread(self._book.checkpoint)
            # A replica that does not evaluate never learns which windows closed: it keeps no
            # state past its checkpoint, reloading a window's when more of it comes.
            self._book.evict(self._closed_in_memory if self._leads else None)
            self._closed_in_memory.clear()

    async def _reference_from_windows(self) -> None:
        """The ``windows`` policy: once N windows of a version closed, fit their row samples."""
        for version in await asyncio.to_thread(self._windows.versions):
            policy = self._config_for(version.model).reference
            if policy.policy != "windows" or version.windows < policy.size:
                continue
            model, name = version.model, version.version
            if await asyncio.to_thread(self._references.profile, model, name) is not None:
                continue
            windows = await asyncio.to_thread(
                self._windows.find, model, name, closed=True, limit=policy.size
            )
            if len(windows) < policy.size:
                continue
            async with self._state_lock:
                await self._pipeline.settle()
                states = []
                for w in windows:
                    parts = await asyncio.to_thread(self._windows.parts, w.id)
                    states.append(await asyncio.to_thread(self._whole, w.id, parts))
            samples = [s.reservoir.to_frame() for s in states if s is not None and s.rows]
            if samples:
                await asyncio.to_thread(self._references.fit_from_samples, model, name, samples)

    def _prune(self, now_ms: int) -> None:
        outcome = self._labels.prune(now_ms - int(self._config.prediction_retention_seconds * 1000))
        self._windows.forget_dedupe_keys(now_ms - int(self._config.dedupe_horizon_seconds * 1000))
        expired = sum(outcome.labels_expired.values())
        if expired:
            self._metrics.labels.labels("expired").inc(expired)


def _waits_for_labels(record: WindowRecord) -> bool:
    return any(
        r.detector == PERFORMANCE and r.details.get("ready") is False for r in record.results or ()
    )
