"""The alert state machine: per check, failing windows in a row open an alert, a pass resolves it.

A check is a detector's row (``"accuracy"``) or one feature's row (``"ks:income"``). Per
(model, version) and check, each evaluated window's decision is

- a failure (``drift``, ``outlier``, ``alert``, ``warning``, ``critical``), with a severity;
- a pass (``ok``, ``no_drift``, ``no_outlier``);
- neutral: anything else (``not_enough_data``, ``error``) neither opens nor resolves, nor breaks
  a run of failures.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from inferwatch.collector.alerts.model import (
    Alert,
    AlertEvent,
    CheckHistory,
    EventKind,
    Evidence,
    Observation,
    WindowResults,
    check_name,
)
from inferwatch.collector.alerts.store import AlertStore
from inferwatch.collector.detectors.base import SEVERITIES, Severity, severity_rank
from inferwatch.collector.settings.alerts import AlertPolicy, CriticalThreshold

logger = logging.getLogger("inferwatch.alerts")

PASSING = frozenset({"ok", "no_drift", "no_outlier"})
FAILING = frozenset({"alert", "drift", "outlier", "warning", "critical"})
NEUTRAL = frozenset({"not_enough_data", "error"})


class AlertSink(Protocol):
    """Takes events without waiting on the network (``AlertDispatcher`` is one)."""

    def submit(self, event: AlertEvent, policy: AlertPolicy) -> None: ...


@dataclass(frozen=True, slots=True)
class _Change:
    alert: Alert
    kind: EventKind | None  # None: an update not worth an event
    result: Mapping[str, Any]


class AlertEngine:
    """Turns each evaluated window's results into alerts, saved in ``store``.

    ``policy`` is one policy for every model or a function from a model name to its policy.
    ``process`` is thread-safe; it raises ValueError for a malformed result row.
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
        self._unknown_decisions: set[str] = set()

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
        if severity_rank(worst.severity) > severity_rank(alert.severity):
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
        for index, row in enumerate(window.results):
            detector, feature, decision = _validated(row, index, window.id)
            check = check_name(detector, feature)
            if not policy.alerts_on(check):
                continue
            if decision in PASSING:
                severity: Severity | None = None
            elif decision in FAILING:
                severity = _severity(row, decision, policy.critical_threshold(check))
            else:
                if decision not in NEUTRAL and decision not in self._unknown_decisions:
                    self._unknown_decisions.add(decision)
                    logger.warning(
                        "decision %r of %s is not known to alerting; it is treated as neutral",
                        decision,
                        detector,
                    )
                continue
            evidence = Evidence(window.id, window.start_ms, window.end_ms, dict(row))
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


def _validated(row: Mapping[str, Any], index: int, window_id: int) -> tuple[str, str | None, str]:
    detector, feature, decision = row.get("detector"), row.get("feature"), row.get("decision")
    if not isinstance(detector, str) or not detector:
        raise ValueError(f"result {index} of window {window_id} has no detector name")
    if feature is not None and not isinstance(feature, str):
        raise ValueError(
            f"result {index} of window {window_id} has a feature that is not a name: "
            f"{type(feature).__name__}"
        )
    if not isinstance(decision, str):
        raise ValueError(f"result {index} of window {window_id} ({detector}) has no decision")
    return detector, feature, decision


def _severity(
    row: Mapping[str, Any], decision: str, critical: CriticalThreshold | None
) -> Severity:
    """Critical when the configured threshold is crossed, else what the row says, else warning."""
    score = row.get("score")
    if critical is not None and isinstance(score, int | float) and critical.crossed(score):
        return "critical"
    details = row.get("details")
    level = details.get("level") if isinstance(details, Mapping) else None
    for declared in (row.get("severity"), row.get("level"), level, decision):
        if declared in SEVERITIES:
            return declared
    return "warning"


def _rank(observation: Observation) -> int:
    return -1 if observation.severity is None else severity_rank(observation.severity)


def _worst(observations: tuple[Observation, ...]) -> Observation:
    """The most severe; the latest of them on a tie."""
    return max(reversed(observations), key=_rank)


def _message(check: str, observation: Observation) -> str:
    message = observation.evidence.result.get("message")
    return message if isinstance(message, str) and message else f"{check} failed"
