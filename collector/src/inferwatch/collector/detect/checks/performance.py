"""The ``performance`` check: each configured metric of a window's labelled rows, with its bounds.

The window's statistics (``inferwatch.collector.labels.scoring``) go through the detector
library's ``PerformanceCheck``, which evaluates a metric only once labels cover
``min_coverage`` of the window's rows or ``max_label_delay`` has passed since its end. One
result per metric: feature None, the value as score, the warning level as threshold, and
``details`` with the metric's name, value, label coverage, labelled and total rows. A warning
level crossed gives "warning", a critical level "alert" with severity "critical".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inferwatch.collector.detect.evaluate import register
from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors.metrics import (
    ClassificationStats,
    PerformanceCheck,
    RegressionStats,
    Stats,
    Task,
)
from inferwatch.collector.detectors.result import FeatureResult, Result
from inferwatch.collector.labels.scoring import stored_stats
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.settings.parsing import ConfigError
from inferwatch.collector.settings.performance import DEFAULTS, NAME, PerformanceSettings


@register(NAME, **DEFAULTS)
def performance(
    profile: Profile | None, window: WindowView, settings: Mapping[str, Any]
) -> list[Result]:
    task: Task = (
        "regression" if window.performance.get("task") == "regression" else "classification"
    )
    stats = stored_stats(window.performance) or (
        RegressionStats() if task == "regression" else ClassificationStats()
    )
    try:
        options = PerformanceSettings.parse(settings, task)
    except ConfigError as exc:
        return [Result.error(NAME, str(exc))]
    check = PerformanceCheck(
        task,
        options.metrics,
        options.thresholds,
        min_coverage=options.min_coverage,
        max_label_delay=options.max_label_delay,
        min_labels=options.min_labels,
    )
    age = None if window.evaluated_ms is None else (window.evaluated_ms - window.end_ms) / 1000
    rows = window.state.rows
    outcome = check.run(stats, predictions=rows, age_seconds=age)
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
