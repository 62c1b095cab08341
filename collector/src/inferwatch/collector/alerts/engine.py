"""The alert state machine: per check, failing windows in a row open an alert, a pass resolves it.

A check is a detector (``"accuracy"``, ``"univariate_drift"``): its own row and its features'
rows (``"univariate_drift:income"``, ``Result.check``) make one alert, whose findings are the
failing features' rows. The policy's ``checks`` and ``critical`` apply to each row by its name.
Per (model, version) and check, each evaluated window's decision (the worst of its rows) is

- a failure (``warning`` or ``alert``), with the result's severity, or ``critical`` when the
  policy's critical threshold for the check is crossed;
- a pass (``ok``);
- neutral: ``not_enough_data`` and ``error`` neither open nor resolve, nor break a run of
  failures.

An alert opens once the last ``consecutive`` decisive windows all failed (default 2), or at once
on a critical failure, with the worst severity among them; while it is open, later failures only
update it (one open alert per check), a critical failure escalates a warning, and the first
pass resolves it. Windows are ordered by start time, so a re-evaluated window (late data or
labels) takes its place in the history: the same results again change nothing, and different
ones are judged as if they had come in order. Every change is saved in one store transaction,
and handed to the sink inside it (``AlertStore.together``), so that the sink stores its webhook
deliveries with the change.

Outside windows: a version without traffic for the policy's ``stale_after`` has its open alerts
resolved as stale (``sweep``); an alert can be acknowledged (no more reminders) or silenced until
a time (its events are logged, not sent; the latest one held back is sent when the silence ends
if the alert is still open).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
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
    iso,
)
from inferwatch.collector.alerts.store import AlertStore
from inferwatch.collector.detectors.result import Decision, Result, Severity
from inferwatch.collector.settings.alerts import AlertPolicy, CriticalThreshold

logger = logging.getLogger("inferwatch.alerts")


class AlertSink(Protocol):
    """Takes events without waiting on the network (``AlertDispatcher`` is one), inside the
    transaction that stores their alert changes."""

    def submit(self, event: AlertEvent, policy: AlertPolicy) -> None: ...


# Features named in an alert's message; the findings hold them all.
MESSAGE_FEATURES = 5


class AlertNotFound(LookupError):
    def __init__(self, alert_id: int) -> None:
        super().__init__(f"there is no alert {alert_id}")


class AlertResolved(ValueError):
    def __init__(self, alert: Alert) -> None:
        super().__init__(f"alert {alert.id} is resolved already")


@dataclass(frozen=True, slots=True)
class _Change:
    alert: Alert
    kind: EventKind | None  # None: an update not worth an event
    result: Result
    notify: bool = True


class AlertEngine:
    """Turns each evaluated window's results into alerts, saved in ``store``.

    ``policy`` is one policy for every model or a function from a model name to its policy.
    Every method is thread-safe.
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
        observations = _observe(window, policy)
        with self._lock, self._store.together():
            now = self._now()
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
                change = _step(model, version, check, alert, history, observation, policy, now)
                if change is not None:
                    changes.append(_noticed(change, policy, now))
            if not histories:
                return []
            saved = self._store.save(model, version, histories, [c.alert for c in changes])
            return self._events(changes, saved, window.id)

    def sweep(self, last_traffic_ms: Mapping[tuple[str, str], int]) -> list[AlertEvent]:
        """Resolve the open alerts of versions whose traffic (by (model, version), the end of
        their last window) stopped ``stale_after`` ago, and end the silences that are over,
        sending what they held back."""
        changes: list[_Change] = []
        saved: list[Alert] = []
        with self._lock, self._store.together():
            now = self._now()
            for alert in self._store.open_alerts():
                policy = self._policy_for(alert.model)
                last = max(
                    last_traffic_ms.get((alert.model, alert.version), 0),
                    max((e.window_end_ms for e in alert.evidence), default=0),
                )
                stale_ms = int(policy.stale_after_seconds * 1000)
                checks: dict[str, CheckHistory] = {}
                if stale_ms and now - last >= stale_ms:
                    change = _stale(alert, last, policy, now)
                    # Failures from before the traffic stopped do not count towards a new alert.
                    checks[alert.check] = CheckHistory()
                elif alert.silenced_until_ms is not None and not alert.silenced(now):
                    ended = replace(alert, silenced_until_ms=None)
                    change = (
                        _released(ended) if ended.withheld else _Change(ended, None, _last(ended))
                    )
                elif alert.withheld and not _silenced(alert, policy, now):
                    change = _released(alert)  # a silence of the model's settings ended
                else:
                    continue
                change = _noticed(change, policy, now)
                changes.append(change)
                saved += self._store.save(alert.model, alert.version, checks, [change.alert])
            return self._events(changes, saved, None)

    def get(self, alert_id: int) -> Alert:
        alert = self._store.get(alert_id)
        if alert is None:
            raise AlertNotFound(alert_id)
        return alert

    def acknowledge(self, alert_id: int, by: str | None = None) -> Alert:
        """Mark an open alert as being taken care of: no more reminders (it still resolves).
        The first acknowledgement stands: acknowledging again (a retried request, a second
        person) changes nothing."""
        with self._lock:
            now = self._now()
            alert = self._open(alert_id)
            if alert.acknowledged_ms is not None:
                return alert
            acknowledged = replace(alert, acknowledged_ms=now, acknowledged_by=by, updated_ms=now)
            (saved,) = self._store.save(alert.model, alert.version, {}, [acknowledged])
        return saved

    def silence(self, alert_id: int, until_ms: int | None) -> Alert:
        """Hold back an open alert's notifications until ``until_ms``; None lifts the silence
        (sending at once the latest event it held back)."""
        with self._lock, self._store.together():
            now = self._now()
            alert = replace(self._open(alert_id), silenced_until_ms=until_ms, updated_ms=now)
            change: _Change | None = None
            policy = self._policy_for(alert.model)
            if alert.withheld is not None and not _silenced(alert, policy, now):
                change = _noticed(_released(alert), policy, now)
                alert = change.alert
            (saved,) = self._store.save(alert.model, alert.version, {}, [alert])
            if change is not None:
                self._events([change], [saved], None)
        return saved

    def _open(self, alert_id: int) -> Alert:
        alert = self.get(alert_id)
        if alert.state != "open":
            raise AlertResolved(alert)
        return alert

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def _events(
        self, changes: list[_Change], saved: list[Alert], window_id: int | None
    ) -> list[AlertEvent]:
        events = [
            AlertEvent(
                change.kind,
                alert,
                alert.last_window_id if window_id is None else window_id,
                change.result,
                change.notify,
            )
            for change, alert in zip(changes, saved, strict=True)
            if change.kind is not None
        ]
        for event in events:
            self._deliver(event, self._policy_for(event.alert.model))
        return events

    def _deliver(self, event: AlertEvent, policy: AlertPolicy) -> None:
        if self._sink is None:
            return
        try:
            self._sink.submit(event, policy)
        except Exception:
            # A broken sink must not undo or block alerting; the alert is already stored.
            logger.exception("could not hand alert %s to its sink", event.alert.id)


def _step(
    model: str,
    version: str,
    check: str,
    alert: Alert | None,
    history: CheckHistory,
    observation: Observation,
    policy: AlertPolicy,
    now: int,
) -> _Change | None:
    result = observation.evidence.result
    streak = history.trailing_failures()
    if alert is None:
        # A user's critical threshold is not a statistical guess: it does not wait for a run.
        critical = bool(streak) and streak[-1].severity is Severity.CRITICAL
        if not streak or (len(streak) < policy.consecutive and not critical):
            return None
        opening = streak[-policy.consecutive :]
        worst = _worst(opening)
        assert worst.severity is not None
        last = opening[-1]
        window_id = last.evidence.window_id
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
            _message(check, last if last.findings else worst),
            window_id,
            window_id,
            tuple(o.evidence for o in opening),
            findings=last.findings,
        )
        return _Change(opened, "opened", result)
    latest = history.latest
    assert latest is not None
    if not latest.failed:
        resolved = replace(
            alert,
            state="resolved",
            resolution="passed",
            resolved_ms=now,
            updated_ms=now,
            evidence=(*alert.evidence, latest.evidence),
        )
        return _Change(resolved, "resolved", result)
    worst = _worst(streak)
    assert worst.severity is not None
    current = streak[-1]
    if worst.severity.rank > alert.severity.rank:
        escalated = replace(
            alert,
            severity=worst.severity,
            message=_message(check, current if current.findings else worst),
            findings=current.findings,
            updated_ms=now,
            last_window_id=latest.evidence.window_id,
            evidence=(*alert.evidence, worst.evidence),
        )
        return _Change(escalated, "escalated", result)
    newer = alert.last_window_id != observation.evidence.window_id
    if latest is observation and (newer or alert.findings != observation.findings):
        # Still failing, in a newer window or with other features: keep the alert current.
        ongoing = replace(
            alert,
            message=_message(check, observation),
            findings=observation.findings,
            updated_ms=now,
            last_window_id=observation.evidence.window_id,
        )
        return _Change(
            ongoing, "repeated" if newer and _reminder_due(alert, policy, now) else None, result
        )
    return None


def _reminder_due(alert: Alert, policy: AlertPolicy, now: int) -> bool:
    if policy.repeat_after_seconds is None or alert.acknowledged_ms is not None:
        return False
    since = alert.notified_ms if alert.notified_ms is not None else alert.opened_ms
    return now - since >= policy.repeat_after_seconds * 1000


def _stale(alert: Alert, last_traffic_ms: int, policy: AlertPolicy, now: int) -> _Change:
    days = policy.stale_after_seconds / 86400
    result = Result(
        detector=alert.check.partition(":")[0],
        decision=Decision.NOT_ENOUGH_DATA,
        message=(
            f"version {alert.version} of {alert.model} has had no traffic since "
            f"{iso(last_traffic_ms)}: its alerts resolve after {days:g} day(s) without traffic "
            "(alerts.stale_after)"
        ),
        details={"last_traffic": iso(last_traffic_ms)},
    )
    stale = replace(alert, state="resolved", resolution="stale", resolved_ms=now, updated_ms=now)
    return _Change(stale, "resolved", result)


def _released(alert: Alert) -> _Change:
    """The notification a silence held back, about the alert as it is now."""
    assert alert.withheld is not None
    return _Change(alert, alert.withheld, _last(alert))


def _last(alert: Alert) -> Result:
    return alert.evidence[-1].result


def _silenced(alert: Alert, policy: AlertPolicy, now: int) -> bool:
    """Silenced by itself, or by a silence of the model's settings."""
    return alert.silenced(now) or policy.silenced(alert.check, alert.version, now)


def _noticed(change: _Change, policy: AlertPolicy, now: int) -> _Change:
    """The change with its notification sent, or withheld while the alert is silenced."""
    if change.kind is None:
        return change
    alert = change.alert
    if _silenced(alert, policy, now):
        # The receiver never heard of an alert that opened silenced: say "opened" when it ends.
        kind = alert.withheld if alert.withheld == "opened" else change.kind
        withheld = kind if alert.state == "open" else None
        return replace(change, alert=replace(alert, withheld=withheld), notify=False)
    return replace(change, alert=replace(alert, withheld=None, notified_ms=now))


def _observe(window: WindowResults, policy: AlertPolicy) -> dict[str, Observation]:
    """Each alerting check's decisive outcome in ``window``: the worst of its rows, with its
    features' failing rows as findings."""
    rows: dict[str, list[tuple[Result, Severity | None]]] = {}
    for result in window.results:
        if not policy.alerts_on(result.check) or not result.decision.decisive:
            continue
        severity = _severity(result, policy.critical_threshold(result.check))
        rows.setdefault(result.detector, []).append((result, severity))
    found: dict[str, Observation] = {}
    for check, outcomes in rows.items():
        # The worst row stands for the check; the check's own row on a tie.
        result, severity = max(outcomes, key=lambda o: (_rank_of(o[1]), o[0].feature is None))
        failing = [(r, s) for r, s in outcomes if s is not None and r.feature is not None]
        failing.sort(key=_significance)
        evidence = Evidence(window.id, window.start_ms, window.end_ms, result)
        found[check] = Observation(evidence, severity, tuple(r for r, _ in failing))
    return found


def _significance(outcome: tuple[Result, Severity | None]) -> tuple[int, bool, float, str]:
    """Most severe first, then smallest p-value, then by name."""
    result, severity = outcome
    p_value = result.p_value
    return (-_rank_of(severity), p_value is None, p_value or 0.0, result.feature or "")


def _severity(result: Result, critical: CriticalThreshold | None) -> Severity | None:
    """None for a pass; for a failure critical when the policy's critical threshold is crossed,
    else the result's own severity."""
    if result.decision is Decision.OK:
        return None
    if critical is not None and result.score is not None and critical.crossed(result.score):
        return Severity.CRITICAL
    return result.severity or Severity.WARNING


def _rank_of(severity: Severity | None) -> int:
    return -1 if severity is None else severity.rank


def _rank(observation: Observation) -> int:
    return _rank_of(observation.severity)


def _worst(observations: tuple[Observation, ...]) -> Observation:
    """The most severe; the latest of them on a tie."""
    return max(reversed(observations), key=_rank)


def _message(check: str, observation: Observation) -> str:
    """The result's sentence, or for a check failing on features: which ones, the strongest
    first (``drift on 4 features: age, income, ...``), then what the strongest showed."""
    features = observation.features
    if not features:
        return observation.evidence.result.message or f"{check} failed"
    what = "drift" if check.endswith("_drift") else f"{check} failing"
    named = ", ".join(features[:MESSAGE_FEATURES])
    if len(features) > MESSAGE_FEATURES:
        named += f" and {len(features) - MESSAGE_FEATURES} more"
    plural = "feature" if len(features) == 1 else "features"
    strongest = observation.findings[0].message
    return f"{what} on {len(features)} {plural}: {named} (strongest: {strongest})"
