"""The alert state machine: per check, failing windows in a row open an alert, a pass resolves it.

A check is a detector's row (``"accuracy"``) or one feature's row (``"univariate_drift:income"``,
``Result.check``). Per (model, version) and check, each evaluated window's decision is

- a failure (``warning`` or ``alert``), with the result's severity, or ``critical`` when the
  policy's critical threshold for the check is crossed;
- a pass (``ok``);
- neutral: ``not_enough_data`` and ``error`` neither open nor resolve, nor break a run of
  failures.

An alert opens once the last ``consecutive`` decisive windows all failed, with the worst severity
among them; while it is open, later failures only update it (one open alert per check), a
critical failure escalates a warning, and the first pass resolves it. Windows are ordered by
start time, so a re-evaluated window (late data or labels) takes its place in the history:
the same results again change nothing, and different ones are judged as if they had come in
order. Every change is saved in one store transaction, then handed to the sink.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from inferwatch.collector.alerts.model import (
    Alert,
    AlertEvent,
    CheckHistory,
    EventKind,
    Evidence,
    Observation,
    WindowResults,
)
from inferwatch.collector.alerts.store import AlertStore
from inferwatch.collector.detectors.result import Decision, Result, Severity
from inferwatch.collector.settings.alerts import AlertPolicy, CriticalThreshold

logger = logging.getLogger("inferwatch.alerts")


class AlertSink(Protocol):
    """Takes events without waiting on the network (``AlertDispatcher`` is one)."""

    def submit(self, event: AlertEvent, policy: AlertPolicy) -> None: ...


@dataclass(frozen=True, slots=True)
class _Change:
    alert: Alert
    kind: EventKind | None  # None: an update not worth an event
    result: Result


class AlertEngine:
    """Turns each evaluated window's results into alerts, saved in ``store``.

    ``policy`` is one policy for every model or a function from a model name to its policy.
    ``process`` is thread-safe.
    """

    def __init__(
        self,
        store: AlertStore,
        policy: AlertPolicy | Callable[[str], AlertPolicy] | None = None,
        sink: AlertSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._policy_for: Callable[[str], AlertPolicy]
        if policy is None or isinstance(policy, AlertPolicy):
            fixed = policy or AlertPolicy()
            self._policy_for = lambda model: fixed
        else:
            self._policy_for = policy
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()

    def process(self, model: str, version: str, window: WindowResults) -> list[AlertEvent]:
        """Apply one window's results; return (and hand to the sink) the events they cause."""
        policy = self._policy_for(model)
        observations = self._observe(window, policy)
        with self._lock:
            snapshot = self._store.load(model, version)
            histories: dict[str, CheckHistory] = {}
            changes: list[_Change] = []
            for check, observation in observations.items():
                before = snapshot.checks.get(check, CheckHistory())
                history = before.record(observation, keep=policy.consecutive)
                if history == before:
                    continue
                histories[check] = history
                alert = snapshot.open_alerts.get(check)
                change = self._step(model, version, check, alert, history, observation, policy)
                if change is not None:
                    changes.append(change)
            if not histories:
                return []
            saved = self._store.save(model, version, histories, [c.alert for c in changes])
        events = [
            AlertEvent(change.kind, alert, window.id, change.result)
            for change, alert in zip(changes, saved, strict=True)
            if change.kind is not None
        ]
        for event in events:
            self._deliver(event, policy)
        return events

    def _step(
        self,
        model: str,
        version: str,
        check: str,
        alert: Alert | None,
        history: CheckHistory,
        observation: Observation,
        policy: AlertPolicy,
    ) -> _Change | None:
        now = int(self._clock() * 1000)
        result = observation.evidence.result
        streak = history.trailing_failures()
        if alert is None:
            if len(streak) < policy.consecutive:
                return None
            opening = streak[-policy.consecutive :]
            worst = _worst(opening)
            assert worst.severity is not None
            last = opening[-1].evidence.window_id
            opened = Alert(
                None,
                model,
                version,
                check,
                worst.severity,
                "open",
                now,
                None,
                now,
                _message(check, worst),
                last,
                last,
                tuple(o.evidence for o in opening),
            )
            return _Change(opened, "opened", result)
        latest = history.latest
        assert latest is not None
        if not latest.failed:
            resolved = replace(
                alert,
                state="resolved",
                resolved_ms=now,
                updated_ms=now,
                evidence=(*alert.evidence, latest.evidence),
            )
            return _Change(resolved, "resolved", result)
        worst = _worst(streak)
        assert worst.severity is not None
        if worst.severity.rank > alert.severity.rank:
            escalated = replace(
                alert,
                severity=worst.severity,
                message=_message(check, worst),
                updated_ms=now,
                last_window_id=latest.evidence.window_id,
                evidence=(*alert.evidence, worst.evidence),
            )
            return _Change(escalated, "escalated", result)
        if latest is observation and alert.last_window_id != observation.evidence.window_id:
            # Still failing in a newer window: keep the alert current, without a new event.
            ongoing = replace(
                alert,
                message=_message(check, observation),
                updated_ms=now,
                last_window_id=observation.evidence.window_id,
            )
            return _Change(ongoing, None, result)
        return None

    def _observe(self, window: WindowResults, policy: AlertPolicy) -> dict[str, Observation]:
        """Each alerting check's decisive outcome in ``window`` (the worst, if it has several)."""
        found: dict[str, Observation] = {}
        for result in window.results:
            check = result.check
            if not policy.alerts_on(check) or not result.decision.decisive:
                continue
            severity = _severity(result, policy.critical_threshold(check))
            evidence = Evidence(window.id, window.start_ms, window.end_ms, result)
            observation = Observation(evidence, severity)
            earlier = found.get(check)
            if earlier is None or _rank(observation) > _rank(earlier):
                found[check] = observation
        return found

    def _deliver(self, event: AlertEvent, policy: AlertPolicy) -> None:
        if self._sink is None:
            return
        try:
            self._sink.submit(event, policy)
        except Exception:
            # A broken sink must not undo or block alerting; the alert is already stored.
            logger.exception("could not hand alert %s to its sink", event.alert.id)


def _severity(result: Result, critical: CriticalThreshold | None) -> Severity | None:
    """None for a pass; for a failure critical when the policy's critical threshold is crossed,
    else the result's own severity."""
    if result.decision is Decision.OK:
        return None
    if critical is not None and result.score is not None and critical.crossed(result.score):
        return Severity.CRITICAL
    return result.severity or Severity.WARNING


def _rank(observation: Observation) -> int:
    return -1 if observation.severity is None else observation.severity.rank


def _worst(observations: tuple[Observation, ...]) -> Observation:
    """The most severe; the latest of them on a tie."""
    return max(reversed(observations), key=_rank)


def _message(check: str, observation: Observation) -> str:
    return observation.evidence.result.message or f"{check} failed"
