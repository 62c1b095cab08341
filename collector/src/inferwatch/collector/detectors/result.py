"""The one result shape, from a detector to storage, the API, the dashboard and alerts.

``Result`` is one finding of one check in one window: a decision in one vocabulary for every
detector and check, a severity for a failing one, the score and p-value with the threshold they
were compared with, a sentence a person can act on, and JSON-safe evidence. A detector's ``run``
returns a ``DetectionResult`` (alibi-detect style: the decision with per-feature tests and per-row
outputs), whose ``results()`` are the ``Result`` rows the collector stores and serves.

Decisions: ``ok`` (the check passed), ``warning`` (a warning level crossed), ``alert`` (drift,
outliers, a failed check or a critical level crossed), ``not_enough_data`` and ``error`` (neither
pass nor fail). A failing result (warning or alert) has a severity, ``warning`` or ``critical``;
the others have none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from inferwatch.collector.codec.jsonsafe import finite, json_safe


class Decision(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ALERT = "alert"
    NOT_ENOUGH_DATA = "not_enough_data"
    ERROR = "error"

    @property
    def failing(self) -> bool:
        return self in (Decision.WARNING, Decision.ALERT)

    @property
    def decisive(self) -> bool:
        """Passed or failed: what a streak of windows and a learned threshold count."""
        return self in (Decision.OK, Decision.WARNING, Decision.ALERT)


class Severity(StrEnum):
    """How bad a failing result is; members compare by rank (``CRITICAL > WARNING``)."""

    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.WARNING: 0, Severity.CRITICAL: 1}


def consistent_severity(decision: Decision, severity: Severity | None) -> Severity | None:
    """The severity a result of ``decision`` has: warning for a warning, warning unless said
    otherwise for an alert, none for the others; ValueError for a contradiction."""
    if decision is Decision.WARNING:
        if severity is Severity.CRITICAL:
            raise ValueError("a warning cannot be critical: a critical level crossed is an alert")
        return Severity.WARNING
    if decision is Decision.ALERT:
        return severity or Severity.WARNING
    if severity is not None:
        raise ValueError(f"a result that is {decision.value} has no severity, got {severity.value}")
    return None


# Validation context of rows read back from storage (see Result).
STORED = {"stored": True}


def _stored(info: ValidationInfo) -> bool:
    return info.context is STORED


class Result(BaseModel):
    """One finding of one check (a detector's own row when ``feature`` is None)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    detector: str
    feature: str | None = None
    score: float | None = None
    p_value: float | None = None
    # What the score (or p-value) was compared with.
    threshold: float | None = None
    decision: Decision
    severity: Severity | None = None
    message: str
    # Check-specific evidence: effect sizes, flagged prediction ids, metric values, ...
    details: dict[str, Any] = {}

    # Rows read back from storage were checked when they were made (validated with the context
    # STORED): only their types are checked again, which keeps listing thousands of windows fast.

    @field_validator("score", "p_value", "threshold", mode="before")
    @classmethod
    def _finite(cls, value: object, info: ValidationInfo) -> object:
        # NaN and infinities have no place in JSON: a number that is not finite is unknown.
        if _stored(info):
            return value
        if isinstance(value, float | int | np.number) and not isinstance(value, bool):
            return finite(float(value))
        return value

    @field_validator("details", mode="before")
    @classmethod
    def _json_safe(cls, value: object, info: ValidationInfo) -> object:
        if _stored(info):
            return value
        return json_safe(dict(value)) if isinstance(value, Mapping) else value

    @model_validator(mode="before")
    @classmethod
    def _severity_follows_decision(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, Mapping) and "decision" in data and not _stored(info):
            decision = Decision(data["decision"])
            given = data.get("severity")
            severity = consistent_severity(decision, None if given is None else Severity(given))
            return {**data, "severity": severity}
        return data

    @property
    def failing(self) -> bool:
        return self.decision.failing

    def replaced(self, **changes: Any) -> Result:
        """A copy with ``changes``, validated again; a new decision without a severity takes
        the one it implies (warning for a warning or an alert, none otherwise)."""
        data = {**self.model_dump(), **changes}
        if "decision" in changes and "severity" not in changes:
            data["severity"] = None
        return Result.model_validate(data)

    @property
    def check(self) -> str:
        """What alerting names it: ``"univariate_drift:income"`` for a feature's row, the
        detector's name for its own row."""
        return self.detector if self.feature is None else f"{self.detector}:{self.feature}"

    @classmethod
    def not_enough_data(
        cls, detector: str, message: str, *, feature: str | None = None, **details: Any
    ) -> Result:
        return cls(
            detector=detector,
            feature=feature,
            decision=Decision.NOT_ENOUGH_DATA,
            message=message,
            details=details,
        )

    @classmethod
    def error(cls, detector: str, message: str) -> Result:
        return cls(detector=detector, decision=Decision.ERROR, message=message)


@dataclass(frozen=True)
class FeatureResult:
    """One feature's test: statistic, raw and corrected p-values, effect sizes, verdict."""

    feature: str
    test: str  # "ks_mw", "chi2", "binned_chi2"
    statistic: float | None
    p_value: float | None
    adjusted_p_value: float | None
    effect_sizes: Mapping[str, float]
    decision: Decision
    message: str
    n_reference: int = 0
    n_window: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)
    # What the feature's score or p-value was compared with (alpha for tests).
    threshold: float | None = None
    severity: Severity | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "decision", Decision(self.decision))
        severity = None if self.severity is None else Severity(self.severity)
        object.__setattr__(self, "severity", consistent_severity(self.decision, severity))

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "feature": self.feature,
                "threshold": self.threshold,
                "test": self.test,
                "statistic": self.statistic,
                "p_value": self.p_value,
                "adjusted_p_value": self.adjusted_p_value,
                "effect_sizes": dict(self.effect_sizes),
                "decision": self.decision.value,
                "severity": None if self.severity is None else self.severity.value,
                "message": self.message,
                "n_reference": self.n_reference,
                "n_window": self.n_window,
                "details": dict(self.details),
            }
        )


@dataclass(frozen=True)
class RowOutputs:
    """Per-row scores (higher = more unusual), flags, and the row ids when they were given."""

    scores: np.ndarray
    flags: np.ndarray
    row_ids: np.ndarray | None = None
    # Per flagged row, the feature furthest from the reference (in reference sds).
    top_features: tuple[str, ...] | None = None

    @property
    def flagged_ids(self) -> list[Any]:
        """Ids of the flagged rows (positions when no ids were given), most unusual first."""
        order = np.argsort(-self.scores[self.flags], kind="stable")
        positions = np.flatnonzero(self.flags)[order]
        if self.row_ids is None:
            return positions.tolist()
        return self.row_ids[positions].tolist()

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "scores": self.scores.tolist(),
                "flags": self.flags.tolist(),
                "row_ids": None if self.row_ids is None else self.row_ids.tolist(),
                "flagged_ids": self.flagged_ids,
                "top_features": None if self.top_features is None else list(self.top_features),
            }
        )


@dataclass(frozen=True)
class DetectionResult:
    """What one detector found in one window."""

    detector: str
    decision: Decision
    score: float | None
    p_value: float | None
    threshold: float | None
    message: str
    features: tuple[FeatureResult, ...] = ()
    rows: RowOutputs | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    severity: Severity | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "decision", Decision(self.decision))
        severity = None if self.severity is None else Severity(self.severity)
        object.__setattr__(self, "severity", consistent_severity(self.decision, severity))

    @classmethod
    def not_enough_data(
        cls, detector: str, message: str, *, threshold: float | None = None, **details: Any
    ) -> DetectionResult:
        """The result of a window the detector cannot judge, saying why."""
        return cls(
            detector, Decision.NOT_ENOUGH_DATA, None, None, threshold, message, details=details
        )

    @property
    def alerting(self) -> bool:
        return self.decision.failing

    def feature(self, name: str) -> FeatureResult:
        for result in self.features:
            if result.feature == name:
                return result
        raise KeyError(f"no result for feature {name!r}; have {[f.feature for f in self.features]}")

    def results(self) -> list[Result]:
        """The rows the collector stores: this summary, then one row per feature."""
        rows = [
            Result(
                detector=self.detector,
                score=self.score,
                p_value=self.p_value,
                threshold=self.threshold,
                decision=self.decision,
                severity=self.severity,
                message=self.message,
            )
        ]
        rows += [
            Result(
                detector=self.detector,
                feature=feature.feature,
                score=feature.statistic,
                p_value=feature.adjusted_p_value,
                threshold=feature.threshold,
                decision=feature.decision,
                severity=feature.severity,
                message=feature.message,
            )
            for feature in self.features
        ]
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready; ``results`` holds the collector's rows."""
        return json_safe(
            {
                "detector": self.detector,
                "decision": self.decision.value,
                "severity": None if self.severity is None else self.severity.value,
                "score": self.score,
                "p_value": self.p_value,
                "threshold": self.threshold,
                "message": self.message,
                "features": [f.to_dict() for f in self.features],
                "rows": None if self.rows is None else self.rows.to_dict(),
                "details": dict(self.details),
                "results": [r.model_dump(mode="json") for r in self.results()],
            }
        )
