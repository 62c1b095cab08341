"""The ``performance`` check: each configured metric of a window's labelled rows, with its bounds.

In the collector's TOML (docs/collector.md)::

    [models.credit.detectors.performance]
    metrics = ["accuracy", "f1_macro", "roc_auc", "mypkg.metrics:profit"]
    min = { accuracy = 0.9, profit = 0 }     # warning below
    critical_min = { accuracy = 0.8 }         # critical below
    max = { log_loss = 0.5 }                  # warning above
    critical_max = { log_loss = 1.0 }         # critical above
    min_coverage = 0.5        # evaluated once half of the window's rows are labelled,
    max_label_delay = "2d"    # or two days after the window's end, whichever comes first
    min_labels = 30

A metric is a built-in name, a plug-in's ``Metric``, or ``"module:function"``: the module is
imported when the settings load and ``function(stats) -> float | None`` becomes the metric
``function``. It gets the window's (or the lifetime's) ``ClassificationStats`` /
``RegressionStats``, so it merges like the built-in ones, e.g. a profit from the confusion
matrix.

The window's statistics (``inferwatch.collector.labels.scoring``) go through the detector
library's ``PerformanceCheck``, which evaluates a metric only once labels cover
``min_coverage`` of the window's rows or ``max_label_delay`` has passed since its end. One
result per metric: feature None, the value as score, the warning level as threshold, and
``details`` with the metric's name, value, label coverage, labelled and total rows. A warning
level crossed gives "warning", a critical level "alert" with severity "critical".
"""

from __future__ import annotations

from typing import Self

from pydantic import PrivateAttr, ValidationInfo, model_validator

from inferwatch.collector.detect.check import check
from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors.metrics import (
    DEFAULT_METRICS,
    ClassificationStats,
    Metric,
    PerformanceCheck,
    RegressionStats,
    Stats,
    Task,
    metric,
)
from inferwatch.collector.detectors.params import Count, Number, PositiveShare, default_of
from inferwatch.collector.detectors.result import FeatureResult, Result
from inferwatch.collector.detectors.thresholds import Threshold
from inferwatch.collector.labels.scoring import stored_stats
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.settings import CheckSettings, Duration
from inferwatch.collector.settings.checks import catalog_of

NAME = "performance"
# Which way each bound points: a metric below "min" warns, above "max" warns.
_BOUNDS = {"min": "below", "critical_min": "below", "max": "above", "critical_max": "above"}


class PerformanceSettings(CheckSettings):
    # None: the task's default metrics (accuracy, f1_macro, roc_auc, log_loss; mae, rmse, r2).
    metrics: tuple[str, ...] | None = None
    min: dict[str, Number] = {}
    max: dict[str, Number] = {}
    critical_min: dict[str, Number] = {}
    critical_max: dict[str, Number] = {}
    min_coverage: PositiveShare = default_of(PerformanceCheck, "min_coverage")
    # Seconds after a window's end when its metrics are evaluated whatever the coverage; None:
    # only coverage lets them be.
    max_label_delay: Duration | None = None
    min_labels: Count = default_of(PerformanceCheck, "min_labels")

    _metrics: dict[str, Metric] = PrivateAttr(default_factory=dict)
    _thresholds: dict[str, Threshold] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _real_metrics_and_bounds(self, info: ValidationInfo) -> Self:
        catalog = catalog_of(info)
        for spec in self.metrics or ():
            found = catalog.resolve_metric(spec) if catalog is not None else metric(spec)
            self._metrics[found.name] = found
        bounded: dict[str, dict[str, float]] = {}
        for key in _BOUNDS:
            for name, value in getattr(self, key).items():
                bounded.setdefault(name, {})[key] = value
        for name, levels in bounded.items():
            if name not in self._metrics:
                try:
                    self._metrics[name] = metric(name)
                except ValueError:
                    raise ValueError(
                        f"has a bound for {name!r}, which is neither built in nor in metrics"
                    ) from None
            self._thresholds[name] = _threshold(name, levels)
        return self

    def metric_list(self, task: Task) -> list[Metric]:
        """The metrics to evaluate, then the bounded ones not listed."""
        listed = [metric(name) for name in DEFAULT_METRICS[task]] if self.metrics is None else []
        named = {m.name for m in listed}
        return listed + [m for name, m in self._metrics.items() if name not in named]

    @property
    def thresholds(self) -> dict[str, Threshold]:
        return dict(self._thresholds)


def _threshold(name: str, levels: dict[str, float]) -> Threshold:
    if {_BOUNDS[key] for key in levels} == {"below", "above"}:
        raise ValueError(
            f"has bounds of {name} both from below (min) and from above (max); a metric has "
            "one direction"
        )
    try:
        if "min" in levels or "critical_min" in levels:
            return Threshold(levels.get("min"), levels.get("critical_min"), "below")
        return Threshold(levels.get("max"), levels.get("critical_max"), "above")
    except ValueError as exc:
        raise ValueError(f"has bounds of {name} out of order: {exc}") from None


@check(NAME, PerformanceSettings)
def performance(
    profile: Profile | None, window: WindowView, settings: PerformanceSettings
) -> list[Result]:
    task: Task = (
        "regression" if window.performance.get("task") == "regression" else "classification"
    )
    stats = stored_stats(window.performance) or (
        RegressionStats() if task == "regression" else ClassificationStats()
    )
    check = PerformanceCheck(
        task,
        settings.metric_list(task),
        settings.thresholds,
        min_coverage=settings.min_coverage,
        max_label_delay=settings.max_label_delay,
        min_labels=settings.min_labels,
    )
    age = None if window.evaluated_ms is None else (window.evaluated_ms - window.end_ms) / 1000
    rows = window.state.rows
    try:
        outcome = check.run(stats, predictions=rows, age_seconds=age)
    except ValueError as exc:  # a metric of the other task: the model's task decides
        return [Result.error(NAME, f"{NAME}: {exc}")]
    # The library evaluates every metric or none: a value anywhere means the labels sufficed.
    ready = any(f.statistic is not None for f in outcome.features)
    return [_result(f, stats, rows, ready) for f in outcome.features]


def _result(feature: FeatureResult, stats: Stats, rows: int, ready: bool) -> Result:
    message = feature.message
    if ready and feature.statistic is None:
        message = _undefined(feature.feature, stats)
    return Result(
        detector=NAME,
        score=feature.statistic,
        threshold=feature.threshold,
        decision=feature.decision,
        severity=feature.severity,
        message=message,
        details={
            "metric": feature.feature,
            "value": feature.statistic,
            "coverage": feature.details["coverage"],
            "labelled": stats.labelled,
            "rows": rows,
            "threshold": feature.details["threshold"],
            # False while the metric waits for labels; the collector evaluates the window again
            # once max_label_delay has passed.
            "ready": ready,
        },
    )


def _undefined(name: str, stats: Stats) -> str:
    if isinstance(stats, ClassificationStats) and name in ("roc_auc", "log_loss"):
        if stats.scored == 0:
            return (
                f"{name} needs class probabilities and none of the {stats.labelled:,} labelled "
                "rows has them: record the model's predict_proba output with "
                "task='classification' (and classes=...)"
            )
        if name == "roc_auc":
            return (
                "roc_auc is undefined: some class has no labelled rows, or only those, among the "
                f"{stats.scored:,} rows with probabilities"
            )
    return f"{name} is undefined on these {stats.labelled:,} labelled rows"
