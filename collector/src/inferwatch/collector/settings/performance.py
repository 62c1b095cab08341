"""The ``performance`` check's settings: its metrics, their bounds, and when labels suffice.

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

A metric is a built-in name or ``"module:function"``: the module is imported and
``function(stats) -> float | None`` becomes the metric ``function``. It gets the window's (or
the lifetime's) ``ClassificationStats`` / ``RegressionStats``, so it merges like the built-in
ones, e.g. a profit from the confusion matrix.
"""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from inferwatch.collector.detectors.metrics import (
    DEFAULT_METRICS,
    Task,
    metric,
    register_metric,
)
from inferwatch.collector.detectors.thresholds import Threshold
from inferwatch.collector.settings.config import ModelConfig
from inferwatch.collector.settings.parsing import (
    ConfigError,
    as_mapping,
    parse_duration,
    reject_unknown,
)

NAME = "performance"
DEFAULTS: dict[str, Any] = {
    "metrics": None,  # the library's defaults for the task
    "min": {},
    "max": {},
    "critical_min": {},
    "critical_max": {},
    "min_coverage": 0.5,
    "max_label_delay": None,  # never: only coverage lets a metric be evaluated
    "min_labels": 30,
}
_BOUNDS = {"min": "below", "critical_min": "below", "max": "above", "critical_max": "above"}
# Resolving a "module:function" registers it in the library's process-wide registry.
_REGISTERING = threading.Lock()


@dataclass(frozen=True)
class PerformanceSettings:
    metrics: tuple[str, ...]
    thresholds: Mapping[str, Threshold]
    min_coverage: float
    max_label_delay: float | None
    min_labels: int

    @classmethod
    def parse(cls, settings: Mapping[str, Any], task: Task) -> PerformanceSettings:
        """Validated settings for a ``task`` model; ConfigError names what is wrong."""
        reject_unknown(settings, {"enabled", *DEFAULTS}, NAME)
        listed = settings.get("metrics")
        if listed is None:
            listed = list(DEFAULT_METRICS[task])
        if not isinstance(listed, list | tuple) or not all(
            isinstance(m, str) and m for m in listed
        ):
            raise ConfigError(f"{NAME}.metrics must be a list of metric names, got {listed!r}")
        names = [resolve_metric(spec, task) for spec in listed]
        bounds = {key: _bounds(settings, key) for key in _BOUNDS}
        for bounded in bounds.values():
            names += [name for name in bounded if name not in names]
        thresholds = {}
        for name in names:
            _check_task(name, task)
            levels = {key: table[name] for key, table in bounds.items() if name in table}
            if levels:
                thresholds[name] = _threshold(name, levels)
        min_coverage = settings.get("min_coverage", DEFAULTS["min_coverage"])
        if (
            isinstance(min_coverage, bool)
            or not isinstance(min_coverage, int | float)
            or not 0 < min_coverage <= 1
        ):
            raise ConfigError(f"{NAME}.min_coverage must be in (0, 1], got {min_coverage!r}")
        min_labels = settings.get("min_labels", DEFAULTS["min_labels"])
        if isinstance(min_labels, bool) or not isinstance(min_labels, int) or min_labels < 1:
            raise ConfigError(f"{NAME}.min_labels must be a positive integer, got {min_labels!r}")
        return cls(
            tuple(names),
            thresholds,
            float(min_coverage),
            label_delay(settings),
            min_labels,
        )


def settings_for(config: ModelConfig) -> dict[str, Any]:
    """The model's ``performance`` settings over the defaults, as the check receives them."""
    return {**DEFAULTS, **config.detectors.get(NAME, {})}


def label_delay(settings: Mapping[str, Any]) -> float | None:
    """Seconds after a window's end when its metrics are evaluated whatever the coverage."""
    value = settings.get("max_label_delay")
    return None if value is None else parse_duration(value, f"{NAME}.max_label_delay")


def resolve_metric(spec: str, task: Task) -> str:
    """The registered name of metric ``spec``, importing and registering a "module:function"."""
    if ":" not in spec:
        try:
            metric(spec)
        except ValueError as exc:
            raise ConfigError(f"{NAME}: {exc}, or 'package.module:function'") from None
        _check_task(spec, task)
        return spec
    module_name, _, function = spec.partition(":")
    if not module_name or not function.isidentifier():
        raise ConfigError(f"{NAME}: metric {spec!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module may fail in any way while it loads
        raise ConfigError(
            f"{NAME}: metric {spec!r}: cannot import {module_name!r} ({exc!r})"
        ) from None
    compute = getattr(module, function, None)
    if not callable(compute):
        raise ConfigError(f"{NAME}: metric {spec!r}: {module_name} has no function {function!r}")
    with _REGISTERING:
        try:
            existing = metric(function)
        except ValueError:
            # The collector's bounds are explicit (min/max), so the direction is never inferred.
            register_metric(function, compute, task=task, higher_is_better=True)
            return function
    if existing.compute is not compute:
        raise ConfigError(
            f"{NAME}: metric {spec!r}: the name {function!r} is taken by another metric; "
            "rename the function"
        )
    _check_task(function, task)
    return function


def _check_task(name: str, task: Task) -> None:
    try:
        entry = metric(name)
    except ValueError:
        raise ConfigError(
            f"{NAME}: a bound names {name!r}, which is neither built in nor in {NAME}.metrics"
        ) from None
    if entry.task != task:
        raise ConfigError(f"{NAME}: metric {name!r} is for {entry.task}; this model does {task}")


def _bounds(settings: Mapping[str, Any], key: str) -> dict[str, float]:
    table = as_mapping(settings.get(key) or {}, f"{NAME}.{key}")
    out = {}
    for name, value in table.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(f"{NAME}.{key}.{name} must be a number, got {value!r}")
        out[name] = float(value)
    return out


def _threshold(name: str, levels: Mapping[str, float]) -> Threshold:
    if {_BOUNDS[key] for key in levels} == {"below", "above"}:
        raise ConfigError(
            f"{NAME}: {name} has bounds both from below (min) and from above (max); a metric "
            "has one direction"
        )
    try:
        if "min" in levels or "critical_min" in levels:
            return Threshold(levels.get("min"), levels.get("critical_min"), "below")
        return Threshold(levels.get("max"), levels.get("critical_max"), "above")
    except ValueError as exc:
        raise ConfigError(f"{NAME}: bounds of {name}: {exc}") from None
