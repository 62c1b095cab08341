"""The main performance metric of a window, as the windows list shows it.

One figure per window, so a list of 10,000 stays small: the first metric of the model's
``performance.metrics`` that applies to the window's task, or accuracy for a classifier and MAE
for a regressor. Built-in metrics are read from the window's stored figures; a metric of the
model's own is computed from the statistics the window kept, as ``/metrics`` does. Beside it, the
same metric as the ``estimated_performance`` check estimated it without labels, when it did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from inferwatch.collector.api.bodies import EstimatedMetric, MainMetric
from inferwatch.collector.detect.checks.performance import NAME as PERFORMANCE
from inferwatch.collector.detect.checks.performance import PerformanceSettings
from inferwatch.collector.detectors.metrics import DEFAULT_METRICS, Metric, Task, evaluate, metric
from inferwatch.collector.labels.scoring import BUILTIN_METRICS, stored_stats
from inferwatch.collector.settings import ModelConfig


class MainMetrics:
    """Picks and computes the main metric of each window of one model."""

    def __init__(self, config: ModelConfig) -> None:
        settings = config.detectors.get(PERFORMANCE)
        self._settings = settings if isinstance(settings, PerformanceSettings) else None

    def of(
        self, performance: Mapping[str, Any], estimate: Mapping[str, Any] | None = None
    ) -> MainMetric | None:
        """None for a window not evaluated yet (its performance is not stored). ``estimate``:
        the window details' ``estimated_performance``."""
        task = performance.get("task")
        if task not in BUILTIN_METRICS:
            return None
        chosen = self._chosen(task)
        scored = performance.get("scored")
        scored = scored if isinstance(scored, int) else 0
        value: Any
        if chosen.name in BUILTIN_METRICS[task]:
            value = performance.get(chosen.name)
        else:
            value = self._own(chosen, performance) if scored else None
        number = float(value) if isinstance(value, int | float) else None
        return MainMetric(
            name=chosen.name, value=number, scored=scored, estimated=_estimated(chosen, estimate)
        )

    def _chosen(self, task: Task) -> Metric:
        if self._settings is not None:
            for candidate in self._settings.metric_list(task):
                if candidate.task in (None, task):
                    return candidate
        return metric(DEFAULT_METRICS[task][0])

    @staticmethod
    def _own(chosen: Metric, performance: Mapping[str, Any]) -> float | None:
        stats = stored_stats(performance)
        if stats is None:
            return None
        try:
            return evaluate(stats, [chosen])[chosen.name]
        except Exception:  # the user's function may fail in any way; /metrics says why
            return None


def _estimated(chosen: Metric, estimate: Mapping[str, Any] | None) -> EstimatedMetric | None:
    if not isinstance(estimate, Mapping) or not estimate.get("trusted"):
        return None
    metrics = estimate.get("metrics")
    figure = metrics.get(chosen.name) if isinstance(metrics, Mapping) else None
    if not isinstance(figure, Mapping) or _number(figure.get("value")) is None:
        return None
    method = estimate.get("method")
    return EstimatedMetric(
        value=figure["value"],
        lower=_number(figure.get("lower")),
        upper=_number(figure.get("upper")),
        confidence=_number(estimate.get("confidence")),
        method=method if isinstance(method, str) else None,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
