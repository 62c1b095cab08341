"""The detector contract: ``fit(reference)`` once, ``run(window) -> DetectionResult``, a registry.

Every detector returns the same ``DetectionResult`` (alibi-detect style): a decision, a score, a
p-value where there is one, the threshold it was compared with, per-feature detail, per-row
outputs for outlier detectors, and a sentence a person can act on. ``to_rows()`` gives the
collector's result rows ``{detector, feature, score, p_value, threshold, decision, message}``:
one summary row plus one row per feature.

A detector class joins the registry with ``@register("name")``; ``create(name, **params)``
builds one from the collector's per-model settings without the pipeline knowing the class.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self, TypeVar

import numpy as np

Decision = Literal[
    "drift",
    "no_drift",
    "outlier",
    "no_outlier",
    "ok",
    "warning",
    "critical",
    "not_enough_data",
]
# Decisions that should raise an alert.
ALERTING: frozenset[str] = frozenset({"drift", "outlier", "warning", "critical"})
# How bad a failing result is, in increasing order.
Severity = Literal["warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("warning", "critical")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class FeatureResult:
    """One feature's test: statistic, raw and corrected p-values, effect sizes, verdict."""

    feature: str
    test: str  # "ks", "chi2", "binned_chi2"
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

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {
                "feature": self.feature,
                "threshold": self.threshold,
                "test": self.test,
                "statistic": self.statistic,
                "p_value": self.p_value,
                "adjusted_p_value": self.adjusted_p_value,
                "effect_sizes": dict(self.effect_sizes),
                "decision": self.decision,
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
        return _jsonable(
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

    @property
    def alerting(self) -> bool:
        return self.decision in ALERTING

    def feature(self, name: str) -> FeatureResult:
        for result in self.features:
            if result.feature == name:
                return result
        raise KeyError(f"no result for feature {name!r}; have {[f.feature for f in self.features]}")

    def to_rows(self) -> list[dict[str, Any]]:
        """The collector's result rows: this summary, then one row per feature."""
        rows = [
            {
                "detector": self.detector,
                "feature": None,
                "score": self.score,
                "p_value": self.p_value,
                "threshold": self.threshold,
                "decision": self.decision,
                "message": self.message,
            }
        ]
        for result in self.features:
            rows.append(
                {
                    "detector": self.detector,
                    "feature": result.feature,
                    "score": result.statistic,
                    "p_value": result.adjusted_p_value,
                    "threshold": result.threshold,
                    "decision": result.decision,
                    "message": result.message,
                }
            )
        return [_jsonable(row) for row in rows]

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready; ``results`` holds the collector's rows."""
        return _jsonable(
            {
                "detector": self.detector,
                "decision": self.decision,
                "score": self.score,
                "p_value": self.p_value,
                "threshold": self.threshold,
                "message": self.message,
                "features": [f.to_dict() for f in self.features],
                "rows": None if self.rows is None else self.rows.to_dict(),
                "details": dict(self.details),
                "results": self.to_rows(),
            }
        )


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


class NotFittedError(RuntimeError):
    """``run`` was called before ``fit``."""


class Detector(ABC):
    """Parameters in ``__init__``; ``fit(reference)`` once; ``run(window)`` per window."""

    name: ClassVar[str] = "detector"

    @abstractmethod
    def fit(self, reference: Any) -> Self:
        """Learn what normal looks like from the reference."""

    @abstractmethod
    def run(self, window: Any) -> DetectionResult:
        """Compare one window with the reference."""

    def get_params(self) -> dict[str, Any]:
        """The ``__init__`` parameters and their current values (scikit-learn style)."""
        signature = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name in signature.parameters
            if name != "self" and hasattr(self, name)
        }

    def _check_fitted(self, *attributes: str) -> None:
        if any(getattr(self, a, None) is None for a in attributes):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(reference) first")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


D = TypeVar("D", bound=type[Detector])
_REGISTRY: dict[str, type[Detector]] = {}


def register(name: str) -> Callable[[D], D]:
    """Class decorator: make the detector available to ``create(name, ...)``."""

    def add(cls: D) -> D:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a detector named {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def registered() -> dict[str, type[Detector]]:
    """Registered detector classes by name."""
    return dict(_REGISTRY)


def create(name: str, **params: Any) -> Detector:
    """A new detector of the registered ``name`` with ``params``; errors name what was wrong."""
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"no detector named {name!r}; registered: {sorted(_REGISTRY)}")
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"detector {name!r} has no parameter(s) {unknown}; it takes {accepted}")
    return cls(**params)
