"""The ``estimated_performance`` check: a window's performance estimated before its labels land.

Classifiers that record probabilities are estimated by the library's ``CBPE``, calibrated on
the reference's probabilities and labels; regressors by ``DLE``, whose error models learn on
the reference's features, predictions and labels. Both fit once per reference (the window's
``fitted`` cache) on the reference profile's row sample, and estimate each window from its own
row sample (all rows up to 10,000; a uniform sample beyond, whose band is then that of a window
of 10,000 rows, wider than the whole window's).

In the collector's TOML (docs/detectors.md)::

    [models.credit.detectors.estimated_performance]
    metrics = ["accuracy", "roc_auc"]      # default: accuracy, f1_macro, roc_auc; mae, rmse
    min = { accuracy = 0.9 }                # warning below (else 5% below the reference)
    critical_min = { accuracy = 0.85 }      # critical below (else 10% below the reference)
    min_coverage = 0.5                      # labels covering half the rows replace the estimate

One result per metric: the estimate as score, its band in ``details`` (``lower``, ``upper``)
beside the realized value when labels have arrived, every message saying the value is
estimated. Once the window's labels reach ``min_coverage`` of its rows (and ``min_labels``), the
realized ``performance`` check judges it and these results are ``ok`` saying so. An estimate that
cannot be trusted (no labels or probabilities in the reference, scores that stay miscalibrated,
a window outside the reference) is ``not_enough_data`` saying why, with no number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Self

import numpy as np
from pydantic import model_validator

from inferwatch.collector.detect.check import check
from inferwatch.collector.detect.columns import Columns
from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors.calibration import Choice
from inferwatch.collector.detectors.error_estimation import DLE, DLE_METRICS
from inferwatch.collector.detectors.estimated_performance import CBPE, CBPE_METRICS
from inferwatch.collector.detectors.label_shift import LabelShift, PriorEstimate, prior_moves
from inferwatch.collector.detectors.metrics import PerformanceCheck
from inferwatch.collector.detectors.params import (
    Count,
    NonNegative,
    Number,
    PositiveShare,
    Rate,
    default_of,
)
from inferwatch.collector.detectors.result import Decision, DetectionResult, Result
from inferwatch.collector.detectors.thresholds import Threshold
from inferwatch.collector.labels.join import number_text
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.settings import CheckSettings
from inferwatch.collector.window.reservoir import Reservoir

NAME = "estimated_performance"
# Where a window's details keep the estimate, beside the realized "performance".
DETAILS_KEY = "estimated_performance"
DEFAULT_METRICS = {"classification": ("accuracy", "f1_macro", "roc_auc"), "regression": DLE_METRICS}
_PROBA = "proba["
_BOUNDS = {"min": "below", "critical_min": "below", "max": "above", "critical_max": "above"}


class EstimatedPerformanceSettings(CheckSettings):
    # None: accuracy, f1_macro and roc_auc for a classifier; mae and rmse for a regressor.
    metrics: tuple[str, ...] | None = None
    min: dict[str, Number] = {}
    max: dict[str, Number] = {}
    critical_min: dict[str, Number] = {}
    critical_max: dict[str, Number] = {}
    warning_drop: NonNegative = default_of(CBPE, "warning_drop")
    critical_drop: NonNegative = default_of(CBPE, "critical_drop")
    # Labels covering this share of the window's rows (and min_labels of them) hand the
    # window over to the realized performance check, as its own settings do by default.
    min_coverage: PositiveShare = default_of(PerformanceCheck, "min_coverage")
    min_labels: Count = default_of(PerformanceCheck, "min_labels")
    calibration: Choice = default_of(CBPE, "calibration")
    n_samples: Count = default_of(CBPE, "n_samples")
    confidence: Rate = default_of(CBPE, "confidence")

    @model_validator(mode="after")
    def _estimable_metrics_and_bounds(self) -> Self:
        known = CBPE_METRICS + DLE_METRICS
        named = set(self.metrics or ()) | {n for key in _BOUNDS for n in getattr(self, key)}
        unknown = sorted(named - set(known))
        if unknown:
            raise ValueError(
                f"has metric(s) {', '.join(unknown)} that cannot be estimated without labels; "
                f"estimable: {', '.join(known)}"
            )
        for name in named:
            thresholds_of(self, name)  # bounds out of order fail here, when the settings load
        return self

    def metric_list(self, task: str) -> tuple[str, ...]:
        if self.metrics is not None:
            listed = self.metrics
        else:
            listed = DEFAULT_METRICS["regression" if task == "regression" else "classification"]
        of_task = DLE_METRICS if task == "regression" else CBPE_METRICS
        return tuple(m for m in listed if m in of_task)


def thresholds_of(settings: EstimatedPerformanceSettings, name: str) -> Threshold | None:
    """The explicit levels of metric ``name`` (None: relative to the reference's value)."""
    levels = {
        key: getattr(settings, key)[name] for key in _BOUNDS if name in getattr(settings, key)
    }
    if not levels:
        return None
    if {_BOUNDS[key] for key in levels} == {"below", "above"}:
        raise ValueError(f"has bounds of {name} both from below (min) and from above (max)")
    try:
        if "min" in levels or "critical_min" in levels:
            return Threshold(levels.get("min"), levels.get("critical_min"), "below")
        return Threshold(levels.get("max"), levels.get("critical_max"), "above")
    except ValueError as exc:
        raise ValueError(f"has bounds of {name} out of order: {exc}") from None


@check(NAME, EstimatedPerformanceSettings)
def estimated_performance(
    profile: Profile | None, window: WindowView, settings: EstimatedPerformanceSettings
) -> list[Result]:
    task = "regression" if window.state.task == "regression" else "classification"
    metrics = settings.metric_list(task)
    if not metrics:
        return [Result.not_enough_data(NAME, f"no estimable metric configured for {task}")]
    if profile is None:
        return [
            Result.not_enough_data(
                NAME,
                "no reference for this version: estimates learn from the reference's "
                "predictions and labels (inferwatch.set_reference(..., predictions=, labels=))",
            )
        ]
    thresholds = {name: thresholds_of(settings, name) for name in metrics}
    if task == "regression":
        outcome = _regression(profile, window, settings, metrics, thresholds)
    else:
        outcome = _classification(profile, window, settings, metrics, thresholds)
    return _results(outcome, window, settings)


def _classification(
    profile: Profile,
    window: WindowView,
    settings: EstimatedPerformanceSettings,
    metrics: tuple[str, ...],
    thresholds: Mapping[str, Threshold | None],
) -> DetectionResult:
    def fit() -> CBPE:
        detector = CBPE(
            metrics=metrics,
            classes=None,
            calibration=settings.calibration,
            n_samples=settings.n_samples,
            confidence=settings.confidence,
            warning_drop=settings.warning_drop,
            critical_drop=settings.critical_drop,
            thresholds={k: v for k, v in thresholds.items() if v is not None},
        )
        classes, scores = _probabilities(profile.reservoir)
        if classes is None or scores is None:
            return detector.fit(None, None)
        detector.classes = classes
        predictions = _predictions(profile.reservoir)
        if predictions is not None and not set(predictions.tolist()) <= set(classes):
            predictions = None  # not the classes' names: the highest score is the prediction
        return detector.fit(scores, _labels(profile.reservoir), predictions)

    cbpe = window.fitted.get(NAME, window.model, window.version, profile, settings, fit)
    classes, scores = _probabilities(window.state.reservoir)
    if cbpe.classes_ is not None:
        if classes is None or scores is None:
            return DetectionResult.not_enough_data(
                NAME,
                "the window's predictions have no class probabilities: record predict_proba "
                "with task='classification' (and classes=...)",
            )
        position = {c: j for j, c in enumerate(classes)}
        missing = [c for c in cbpe.classes_ if c not in position]
        if missing:
            return DetectionResult.not_enough_data(
                NAME, f"the window's probabilities lack the reference's classes {missing[:5]}"
            )
        scores = scores[:, [position[c] for c in cbpe.classes_]]
        predictions = _predictions(window.state.reservoir)
        if predictions is not None and not set(predictions.tolist()) <= set(cbpe.classes_):
            predictions = None  # not the classes' names: the highest score is the prediction
        shifted = _label_shift(profile, window, cbpe, scores, predictions)
        if shifted is None:
            return cbpe.run(scores, predictions)
        bbse, shift = shifted
        weights, draws = bbse.class_weights(shift, cbpe.n_samples, cbpe.random_state)
        found = cbpe.run(scores, predictions, weights, draws)
        moves = prior_moves(shift)
        return replace(
            found,
            message=f"{found.message} (re-weighted for the label shift: {moves})",
            details={**dict(found.details), "label_shift": {**shift.to_dict(), "moves": moves}},
        )
    # An unusable reference: run says why without reading the window.
    return cbpe.run(np.zeros((0, 2)))


def _label_shift(
    profile: Profile,
    window: WindowView,
    cbpe: CBPE,
    scores: np.ndarray,
    predictions: np.ndarray | None,
) -> tuple[LabelShift, PriorEstimate] | None:
    """BBSE fitted on the reference and its estimate of the window's class priors when they
    moved (a label shift), else None.

    Under a label shift the reference's calibrated p(y | x) no longer holds, w(y) p(y | x) does;
    the weights come from the reference's confusion (its predictions and labels) and the
    window's predicted classes, as the shift verdict estimates them; the detector also draws
    them from their sampling distribution, for the band.
    """
    assert cbpe.classes_ is not None
    classes = cbpe.classes_

    def fit() -> LabelShift | None:
        ref_classes, ref_scores = _probabilities(profile.reservoir)
        labels = _labels(profile.reservoir)
        if ref_classes is None or ref_scores is None or labels is None:
            return None
        position = {c: j for j, c in enumerate(ref_classes)}
        if any(c not in position for c in classes):
            return None
        ref_predicted = _predictions(profile.reservoir)
        if ref_predicted is None or not set(ref_predicted.tolist()) <= set(classes):
            order = ref_scores[:, [position[c] for c in classes]]
            ref_predicted = np.array(classes, dtype=object)[order.argmax(axis=1)]
        try:
            return LabelShift().fit(ref_predicted, labels)
        except ValueError:
            return None

    detector = window.fitted.get(
        f"{NAME}:label_shift", window.model, window.version, profile, {}, fit
    )
    if detector is None:
        return None
    predicted = (
        predictions
        if predictions is not None
        else np.array(classes, dtype=object)[scores.argmax(axis=1)]
    )
    estimate = detector.estimate(predicted)
    if not isinstance(estimate, PriorEstimate) or not detector.shifted(estimate):
        return None
    return detector, estimate


def _regression(
    profile: Profile,
    window: WindowView,
    settings: EstimatedPerformanceSettings,
    metrics: tuple[str, ...],
    thresholds: Mapping[str, Threshold | None],
) -> DetectionResult:
    columns = Columns.of(profile, "feature")

    def fit() -> DLE:
        detector = DLE(
            confidence=settings.confidence,
            warning_drop=settings.warning_drop,
            critical_drop=settings.critical_drop,
            thresholds={k: v for k, v in thresholds.items() if v is not None},
        )
        rows = columns.rows(profile.reservoir)
        return detector.fit(
            rows, _number(profile.reservoir, "output"), _number(profile.reservoir, "label")
        )

    dle = window.fitted.get(NAME, window.model, window.version, profile, settings, fit)
    predicted = _number(window.state.reservoir, "output")
    if dle.unusable_ is None and predicted is None:
        return DetectionResult.not_enough_data(NAME, "the window has no numeric prediction column")
    rows = columns.rows(window.state.reservoir)
    result = dle.run(rows, predicted if predicted is not None else np.full(rows.rows, np.nan))
    return DetectionResult(
        result.detector,
        result.decision,
        result.score,
        result.p_value,
        result.threshold,
        result.message,
        tuple(f for f in result.features if f.feature in metrics),
        details=result.details,
        severity=result.severity,
    )


def _probabilities(reservoir: Reservoir) -> tuple[tuple[str, ...] | None, np.ndarray | None]:
    values, names = reservoir.numeric("output")
    picked = [j for j, n in enumerate(names) if n.startswith(_PROBA) and n.endswith("]")]
    if len(picked) < 2:
        return None, None
    classes = tuple(_class_name(names[j][len(_PROBA) : -1]) for j in picked)
    return classes, values[:, picked]


def _class_name(name: str) -> str:
    try:
        value = float(name)
    except ValueError:
        return name
    return number_text(value) if np.isfinite(value) else name


def _texts(reservoir: Reservoir, name: str, role: Any) -> np.ndarray | None:
    """A column as class text (numbers as number_text writes them), None if absent."""
    values, names = reservoir.numeric(role)
    if name in names:
        column = values[:, names.index(name)]
        return np.array(
            [number_text(float(v)) if np.isfinite(v) else "" for v in column], dtype=object
        )
    categorical = reservoir.categorical(name, role)
    if categorical is None:
        return None
    lookup = np.array([*map(str, categorical.categories), ""], dtype=object)
    return lookup[np.where(categorical.codes >= 0, categorical.codes, -1)]


def _labels(reservoir: Reservoir) -> np.ndarray | None:
    return _texts(reservoir, "label", "label")


def _predictions(reservoir: Reservoir) -> np.ndarray | None:
    return _texts(reservoir, "prediction", "output")


def _number(reservoir: Reservoir, role: Any) -> np.ndarray | None:
    name = "label" if role == "label" else "prediction"
    values, names = reservoir.numeric(role)
    return values[:, names.index(name)] if name in names else None


def _labels_suffice(window: WindowView, settings: EstimatedPerformanceSettings) -> bool:
    rows = window.state.rows
    labelled = int(window.performance.get("labelled") or 0)
    return (
        bool(rows) and labelled >= settings.min_labels and labelled / rows >= settings.min_coverage
    )


def _results(
    outcome: DetectionResult, window: WindowView, settings: EstimatedPerformanceSettings
) -> list[Result]:
    estimate = dict(outcome.details)
    realized = {f.feature: window.performance.get(f.feature) for f in outcome.features}
    handed_over = _labels_suffice(window, settings)
    labelled = int(window.performance.get("labelled") or 0)
    common: dict[str, Any] = {
        "estimate": estimate,
        "labels_suffice": handed_over,
        "labelled": labelled,
        "rows": window.state.rows,
    }
    if not outcome.features:
        return [
            Result(
                detector=NAME,
                decision=Decision.NOT_ENOUGH_DATA,
                message=outcome.message,
                details=common,
            )
        ]
    out = []
    for feature in outcome.features:
        details = {
            "metric": feature.feature,
            "estimated": True,
            "value": feature.statistic,
            "lower": feature.details.get("lower"),
            "upper": feature.details.get("upper"),
            "reference": feature.details.get("reference"),
            "realized": realized.get(feature.feature),
            "threshold": feature.details.get("threshold"),
            **common,
        }
        decision, severity, message = feature.decision, feature.severity, feature.message
        if "label_shift" in estimate:
            message += f" (re-weighted for the label shift: {estimate['label_shift']['moves']})"
        if handed_over and feature.decision.decisive:
            decision, severity = Decision.OK, None
            shown = realized.get(feature.feature)
            real = f"{shown:.4g}" if isinstance(shown, float) else "see performance"
            coverage = labelled / max(window.state.rows, 1)
            message = (
                f"{feature.feature}: labels cover {coverage:.0%} of the rows, so the realized "
                f"value ({real}) replaces the estimate ({feature.statistic:.4g}); the "
                "performance check judges it"
            )
        out.append(
            Result(
                detector=NAME,
                score=feature.statistic,
                threshold=feature.threshold,
                decision=decision,
                severity=severity,
                message=message,
                details=details,
            )
        )
    return out


def window_estimate(results: Sequence[Result]) -> dict[str, Any] | None:
    """What a window's details show under ``estimated_performance``: per metric the estimate,
    its band and the realized value beside it (None until labels give one), whether the
    estimate is trusted (and why not), and whether labels have replaced it."""
    rows = [r for r in results if r.detector == NAME]
    if not rows:
        return None
    first = rows[0].details
    estimate = dict(first.get("estimate") or {})
    metrics = {
        r.details["metric"]: {
            "value": r.details.get("value"),
            "lower": r.details.get("lower"),
            "upper": r.details.get("upper"),
            "realized": r.details.get("realized"),
            "decision": r.decision.value,
        }
        for r in rows
        if "metric" in r.details
    }
    return {
        "method": estimate.get("method"),
        "trusted": bool(estimate.get("trusted", False)) and bool(metrics),
        "reasons": estimate.get("reasons") or ([] if metrics else [rows[0].message]),
        "confidence": estimate.get("confidence"),
        "rows": estimate.get("rows"),
        "labels_suffice": first.get("labels_suffice", False),
        "metrics": metrics,
        **{k: estimate[k] for k in ("calibration", "confusion") if k in estimate},
    }
