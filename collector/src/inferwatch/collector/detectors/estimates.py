"""Performance estimated before labels arrive: the estimate's shape and its verdict.

``CBPE`` (classifiers) and ``DLE`` (regressors) both return an ``Estimate``: per metric a value
with a band (``Estimated``), whether the estimate can be trusted and, when it cannot, why. Its
verdict (``estimate_result``) is the ``DetectionResult`` of the labelled ``performance``
check, with every message saying the values are estimated, and ``not_enough_data`` instead of a
number when the estimate cannot be trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from inferwatch.collector.codec.jsonsafe import json_safe
from inferwatch.collector.detectors.metrics import BUILTIN
from inferwatch.collector.detectors.result import Decision, DetectionResult, FeatureResult, Severity
from inferwatch.collector.detectors.thresholds import VERDICTS, Threshold


@dataclass(frozen=True)
class Estimated:
    """One metric's estimate and its band (``confidence`` of the realized value's range)."""

    value: float | None
    lower: float | None
    upper: float | None

    def covers(self, realized: float) -> bool:
        return (
            self.lower is not None
            and self.upper is not None
            and (self.lower <= realized <= self.upper)
        )

    def to_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "lower": self.lower, "upper": self.upper}


@dataclass(frozen=True)
class Estimate:
    """A window's estimated metrics; ``reasons`` say why they cannot be trusted, if so."""

    method: str  # "cbpe", "dle"
    rows: int
    metrics: Mapping[str, Estimated]
    confidence: float
    reasons: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def trusted(self) -> bool:
        return not self.reasons

    def value(self, name: str) -> float | None:
        found = self.metrics.get(name)
        return None if found is None else found.value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the values only when trusted (``untrusted`` holds them otherwise)."""
        shown = {name: e.to_dict() for name, e in self.metrics.items()}
        return json_safe(
            {
                "method": self.method,
                "rows": self.rows,
                "confidence": self.confidence,
                "trusted": self.trusted,
                "reasons": list(self.reasons),
                "metrics": shown if self.trusted else {},
                "untrusted": {} if self.trusted else shown,
                **dict(self.details),
            }
        )


def default_threshold(
    name: str, reference: float | None, warning_drop: float, critical_drop: float
) -> Threshold | None:
    """A metric's levels relative to its value on the reference, as ``PerformanceCheck``'s."""
    if reference is None:
        return None
    higher = BUILTIN[name].higher_is_better if name in BUILTIN else True
    sign = -1.0 if higher else 1.0
    return Threshold(
        reference + sign * warning_drop * abs(reference),
        reference + sign * critical_drop * abs(reference),
        "below" if higher else "above",
        "reference",
    )


def estimate_result(
    detector: str,
    estimate: Estimate,
    thresholds: Mapping[str, Threshold | None],
    reference: Mapping[str, float | None],
) -> DetectionResult:
    """The verdict on an estimate: each metric's estimate against its levels, every message
    saying it is estimated; ``not_enough_data`` naming the reason when it cannot be trusted."""
    details = estimate.to_dict()
    if not estimate.trusted:
        why = "; ".join(estimate.reasons)
        return DetectionResult.not_enough_data(
            detector, f"performance cannot be estimated without labels: {why}", **details
        )
    band = f"{estimate.confidence:.0%}"
    features = []
    for name, found in estimate.metrics.items():
        threshold = thresholds.get(name)
        base = reference.get(name)
        severity: Severity | None = None
        value = found.value
        if value is None:
            decision = Decision.NOT_ENOUGH_DATA
            message = f"estimated {name} is undefined on these {estimate.rows:,} rows"
        else:
            shown = (
                f"estimated {name} = {value:.4g} ({band} band {found.lower:.4g}-{found.upper:.4g}"
            )
            versus = f"; {base:.4g} on the reference" if base is not None else ""
            if threshold is None:
                decision = Decision.OK
                message = f"{shown}{versus}; no threshold set; {estimate.method}, no labels)"
            else:
                level = threshold.level(value)
                decision, severity = VERDICTS[level]
                sign = "<" if threshold.direction == "below" else ">"
                message = (
                    f"{shown}{versus}): {level} (warning {sign} {threshold.first:.4g}; "
                    f"estimated by {estimate.method} from {estimate.rows:,} unlabelled rows)"
                )
        features.append(
            FeatureResult(
                feature=name,
                test=estimate.method,
                statistic=value,
                p_value=None,
                adjusted_p_value=None,
                effect_sizes={} if base is None or value is None else {"change": value - base},
                decision=decision,
                severity=severity,
                message=message,
                n_window=estimate.rows,
                details={
                    "estimated": True,
                    **found.to_dict(),
                    "reference": base,
                    "threshold": None if threshold is None else threshold.to_dict(),
                },
                threshold=None if threshold is None else threshold.first,
            )
        )
    return _summary(detector, estimate, tuple(features), details)


def _summary(
    detector: str,
    estimate: Estimate,
    features: tuple[FeatureResult, ...],
    details: dict[str, Any],
) -> DetectionResult:
    bad = [f for f in features if f.decision.failing]
    worst = max(bad, key=lambda f: f.severity.rank if f.severity else 0, default=None)
    if worst is not None:
        decision, severity = worst.decision, worst.severity
        message = "; ".join(f.message for f in bad)
    elif any(f.decision is Decision.OK for f in features):
        decision, severity = Decision.OK, None
        message = f"estimated performance ok ({estimate.method}, no labels): " + ", ".join(
            f"{f.feature} {f.statistic:.4g}" for f in features if f.statistic is not None
        )
    else:
        decision, severity = Decision.NOT_ENOUGH_DATA, None
        message = features[0].message if features else "no metrics to estimate"
    first = features[0] if features else None
    return DetectionResult(
        detector,
        decision,
        first.statistic if first else None,
        None,
        first.threshold if first else None,
        message,
        features,
        details=details,
        severity=severity,
    )
