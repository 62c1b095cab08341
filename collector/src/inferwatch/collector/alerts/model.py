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
EventKind = Literal["opened", "escalated", "resolved"]


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
    """A decisive outcome of a check in one window: passed, or failed with a severity."""

    evidence: Evidence
    severity: Severity | None  # None: the check passed

    @property
    def failed(self) -> bool:
        return self.severity is not None

    @property
    def order(self) -> tuple[int, int]:
        return self.evidence.window_start_ms, self.evidence.window_id

    def to_dict(self) -> dict[str, Any]:
        return {"evidence": self.evidence.to_dict(), "severity": self.severity}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observation:
        severity = data["severity"]
        return cls(
            Evidence.from_dict(data["evidence"]), None if severity is None else Severity(severity)
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
    """One incident of one check of one (model, version); at most one is open per check."""

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

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))

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
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        fields = dict(data)
        fields["severity"] = Severity(data["severity"])
        fields["evidence"] = tuple(Evidence.from_dict(e) for e in data["evidence"])
        return cls(**fields)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A change worth telling someone about, caused by one window's results."""

    kind: EventKind
    alert: Alert
    window_id: int
    # The result row behind the change (the failing row, or the passing one for "resolved").
    result: Result


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
