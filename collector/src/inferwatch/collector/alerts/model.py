"""The records alerting moves: a window's results, a check's outcomes, alerts and their events.

Times are integer milliseconds since the Unix epoch. ``to_dict``/``from_dict`` give the JSON
a store keeps; ``Alert.to_json`` gives the HTTP API's shape (docs/http-api.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from inferwatch.collector.detectors.result import STORED, Result, Severity

AlertState = Literal["open", "resolved"]
EventKind = Literal["opened", "escalated", "repeated", "resolved"]
# Why a resolved alert resolved: its check passed again, or its version had no traffic for the
# model's ``stale_after`` (None while open). Schema 7 carried older alerts over as "passed", and
# folded each check's open per-feature alerts into one, resolving the others as "merged".
Resolution = Literal["passed", "stale", "merged"]


@dataclass(frozen=True, slots=True)
class WindowResults:
    """One evaluated window of a (model, version): the detectors' result rows."""

    id: int
    start_ms: int
    end_ms: int
    results: Sequence[Result]


@dataclass(frozen=True, slots=True)
class Evidence:
    """One window's result row for a check, as the detector returned it."""

    window_id: int
    window_start_ms: int
    window_end_ms: int
    result: Result

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_id": self.window_id,
            "window_start_ms": self.window_start_ms,
            "window_end_ms": self.window_end_ms,
            "result": self.result.model_dump(mode="json"),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "window_id": self.window_id,
            "window_start": iso(self.window_start_ms),
            "window_end": iso(self.window_end_ms),
            "result": self.result.model_dump(mode="json"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        result = Result.model_validate(data["result"], context=STORED)
        return cls(data["window_id"], data["window_start_ms"], data["window_end_ms"], result)


@dataclass(frozen=True, slots=True)
class Observation:
    """A decisive outcome of a check in one window: passed, or failed with a severity.

    ``evidence`` holds the check's own row (or its worst when it has none); ``findings`` the
    failing rows of its features, most significant first.
    """

    evidence: Evidence
    severity: Severity | None  # None: the check passed
    findings: tuple[Result, ...] = ()

    @property
    def failed(self) -> bool:
        return self.severity is not None

    @property
    def order(self) -> tuple[int, int]:
        return self.evidence.window_start_ms, self.evidence.window_id

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.findings if f.feature is not None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "evidence": self.evidence.to_dict(),
            "severity": self.severity,
            "findings": [f.model_dump(mode="json") for f in self.findings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observation:
        severity = data["severity"]
        return cls(
            Evidence.from_dict(data["evidence"]),
            None if severity is None else Severity(severity),
            _results(data.get("findings", ())),
        )


@dataclass(frozen=True, slots=True)
class CheckHistory:
    """A check's latest decisive outcomes, oldest window first.

    Only the last ``consecutive`` outcomes can matter to a streak, so that is all that is kept;
    neutral outcomes (not enough data, errors) are never recorded.
    """

    observations: tuple[Observation, ...] = ()

    def record(self, observation: Observation, keep: int) -> CheckHistory:
        """A copy with ``observation`` in window order (replacing that window's earlier one)."""
        window_id = observation.evidence.window_id
        kept = [o for o in self.observations if o.evidence.window_id != window_id]
        kept.append(observation)
        kept.sort(key=lambda o: o.order)
        return CheckHistory(tuple(kept[-keep:]))

    @property
    def latest(self) -> Observation | None:
        return self.observations[-1] if self.observations else None

    def trailing_failures(self) -> tuple[Observation, ...]:
        """The failures after the last pass."""
        streak: list[Observation] = []
        for observation in reversed(self.observations):
            if not observation.failed:
                break
            streak.append(observation)
        return tuple(reversed(streak))

    def to_dict(self) -> dict[str, Any]:
        return {"observations": [o.to_dict() for o in self.observations]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckHistory:
        return cls(tuple(Observation.from_dict(o) for o in data["observations"]))


@dataclass(frozen=True, slots=True)
class Alert:
    """One incident of one check of one (model, version); at most one is open per check.

    A check with per-feature rows (``univariate_drift``) has one alert, whose ``findings`` are
    the failing features' rows of the latest failing window: features join and leave it while it
    stays open.
    """

    id: int | None  # None until stored
    model: str
    version: str
    check: str
    severity: Severity
    state: AlertState
    opened_ms: int
    resolved_ms: int | None
    updated_ms: int
    message: str
    # The window whose failure opened the alert, and the latest window seen failing.
    window_id: int
    last_window_id: int
    # The failing windows that opened it, then what escalated and what resolved it.
    evidence: tuple[Evidence, ...]
    findings: tuple[Result, ...] = ()
    resolution: Resolution | None = None
    acknowledged_ms: int | None = None
    acknowledged_by: str | None = None
    # Notifications are withheld until then; ``withheld`` is the latest event kind held back,
    # sent when the silence ends if the alert is still open.
    silenced_until_ms: int | None = None
    withheld: EventKind | None = None
    # When a notification about it was last sent (repeats count from there).
    notified_ms: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.findings if f.feature is not None)

    def silenced(self, now_ms: int) -> bool:
        return self.silenced_until_ms is not None and now_ms < self.silenced_until_ms

    def to_json(self) -> dict[str, Any]:
        """The API's alert object."""
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "check": self.check,
            "severity": self.severity,
            "state": self.state,
            "opened_at": iso(self.opened_ms),
            "resolved_at": iso(self.resolved_ms),
            "updated_at": iso(self.updated_ms),
            "message": self.message,
            "window_id": self.window_id,
            "last_window_id": self.last_window_id,
            "evidence": [e.to_json() for e in self.evidence],
            "features": list(self.features),
            "findings": [f.model_dump(mode="json") for f in self.findings],
            "resolution": self.resolution,
            "acknowledged_at": iso(self.acknowledged_ms),
            "acknowledged_by": self.acknowledged_by,
            "silenced_until": iso(self.silenced_until_ms),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "check": self.check,
            "severity": self.severity,
            "state": self.state,
            "opened_ms": self.opened_ms,
            "resolved_ms": self.resolved_ms,
            "updated_ms": self.updated_ms,
            "message": self.message,
            "window_id": self.window_id,
            "last_window_id": self.last_window_id,
            "evidence": [e.to_dict() for e in self.evidence],
            "findings": [f.model_dump(mode="json") for f in self.findings],
            "resolution": self.resolution,
            "acknowledged_ms": self.acknowledged_ms,
            "acknowledged_by": self.acknowledged_by,
            "silenced_until_ms": self.silenced_until_ms,
            "withheld": self.withheld,
            "notified_ms": self.notified_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        fields = dict(data)
        fields["severity"] = Severity(data["severity"])
        fields["evidence"] = tuple(Evidence.from_dict(e) for e in data["evidence"])
        fields["findings"] = _results(data.get("findings", ()))
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A change worth telling someone about, caused by one window's results."""

    kind: EventKind
    alert: Alert
    window_id: int
    # The result row behind the change (the failing row, or the passing one for "resolved";
    # for a stale resolution, a not_enough_data row saying since when there was no traffic).
    result: Result
    # False when a silence or an acknowledgement holds it back: logged, not sent to webhooks.
    notify: bool = True


def _results(rows: Any) -> tuple[Result, ...]:
    return tuple(Result.model_validate(r, context=STORED) for r in rows)


# The milliseconds ISO 8601 can show: a time stored outside them (a span that claimed year
# 33658, kept by a release that did not bound timestamps) is shown as the nearest.
_FIRST_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = _EPOCH + timedelta(milliseconds=min(max(ms, _FIRST_MS), _LAST_MS))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
