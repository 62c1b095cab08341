"""The per-model figures /metrics and the OpenTelemetry export show, read from storage when asked.

Each model version is shown by its newest closed, evaluated window (drift scores and p-values per
check and feature, the outlier rate, realized and estimated performance, label coverage and
delay, rows and requests), by its lifetime row counts and by its open alerts. Nothing is kept
between reads, so the figures are right after a restart, without traffic, across replicas sharing
a database, and gone once a model's windows are.

Cardinality is bounded by ``[collector] metrics_max_models``, ``metrics_max_versions`` and
``metrics_max_features`` (docs/metrics.md); ``inferwatch_model_features_omitted`` counts what the
feature cap left out.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from inferwatch.collector.codec import printable
from inferwatch.collector.detect.checks.estimated_performance import (
    DETAILS_KEY as ESTIMATED_PERFORMANCE,
)
from inferwatch.collector.detect.checks.performance import NAME as PERFORMANCE
from inferwatch.collector.detectors.metrics import Task
from inferwatch.collector.detectors.result import Result
from inferwatch.collector.labels.scoring import BUILTIN_METRICS
from inferwatch.collector.settings import CollectorConfig
from inferwatch.collector.storage import Storage
from inferwatch.collector.window.store import EvaluatedWindow, VersionWindows, WindowRecord

OUTLIERS = "outliers"
# ``kind`` of a performance figure: computed from labels, or estimated without them (CBPE,
# DLE) under the same metric names.
REALIZED = "realized"
ESTIMATED = "estimated"
SEVERITIES = ("warning", "critical")
_VERSION = ("model", "version")
_FEATURE = (*_VERSION, "check", "feature")


@dataclass(frozen=True)
class Family:
    """One metric: its Prometheus name (a counter's without ``_total``) and what it says."""

    name: str
    kind: Literal["gauge", "counter"]
    help: str
    labels: tuple[str, ...]
    unit: str = ""
    # Of the newest closed window (else of every window, or of the alerts).
    per_window: bool = True


WINDOW_END = Family(
    "inferwatch_model_window_end_timestamp_seconds",
    "gauge",
    "End of the model version's newest closed, evaluated window (the one these figures are of).",
    _VERSION,
    "s",
)
WINDOW_ROWS = Family(
    "inferwatch_model_window_rows", "gauge", "Prediction rows in that window.", _VERSION
)
WINDOW_REQUESTS = Family(
    "inferwatch_model_window_requests",
    "gauge",
    "Prediction requests (spans) in that window.",
    _VERSION,
)
ROWS = Family(
    "inferwatch_model_rows",
    "counter",
    "Prediction rows of the model version, in every window.",
    _VERSION,
    per_window=False,
)
LABELLED_ROWS = Family(
    "inferwatch_model_labelled_rows",
    "counter",
    "Prediction rows of the model version that have a label, in every window.",
    _VERSION,
    per_window=False,
)
CHECK_SCORE = Family(
    "inferwatch_model_check_score",
    "gauge",
    "A check's score in that window: the drift statistic of check=univariate_drift per feature, "
    "the outlier rate of check=outliers, ... (feature is empty for a check-level row; for "
    "check=performance and check=estimated_performance it is the metric).",
    _FEATURE,
)
CHECK_P_VALUE = Family(
    "inferwatch_model_check_p_value",
    "gauge",
    "A check's p-value in that window (adjusted for the number of features tested, where the "
    "check corrects for it).",
    _FEATURE,
)
CHECK_THRESHOLD = Family(
    "inferwatch_model_check_threshold",
    "gauge",
    "What the check compared its score (or p-value) with in that window.",
    _FEATURE,
)
CHECK_FAILING = Family(
    "inferwatch_model_check_failing",
    "gauge",
    "1 when the check failed in that window (a warning or an alert), 0 when it passed; absent "
    "when it could not decide (not enough data, an error).",
    _FEATURE,
)
FEATURES_OMITTED = Family(
    "inferwatch_model_features_omitted",
    "gauge",
    "Features of that window left out of the per-feature series by metrics_max_features.",
    _VERSION,
)
OUTLIER_RATIO = Family(
    "inferwatch_model_outlier_ratio",
    "gauge",
    "Share of the window's scored rows flagged as outliers.",
    _VERSION,
)
OUTLIER_EXPECTED_RATIO = Family(
    "inferwatch_model_outlier_expected_ratio",
    "gauge",
    "Share of rows the outlier detector flags on data like its reference.",
    _VERSION,
)
PERFORMANCE_FIGURE = Family(
    "inferwatch_model_performance",
    "gauge",
    "A performance metric of that window (accuracy, f1_macro, roc_auc, mae, ... and the model's "
    'own); kind="realized" is computed from labels, kind="estimated" is estimated without them.',
    (*_VERSION, "metric", "kind"),
)
# The estimate's band, labelled as the estimate it bounds, so that the three pair one to one.
PERFORMANCE_LOWER = Family(
    "inferwatch_model_performance_lower",
    "gauge",
    'Lower end of the band of kind="estimated" performance (its confidence, 95% by default, is '
    "the estimated_performance check's).",
    (*_VERSION, "metric", "kind"),
)
PERFORMANCE_UPPER = Family(
    "inferwatch_model_performance_upper",
    "gauge",
    'Upper end of the band of kind="estimated" performance.',
    (*_VERSION, "metric", "kind"),
)
LABEL_COVERAGE = Family(
    "inferwatch_model_label_coverage_ratio",
    "gauge",
    "Share of that window's rows that have a label.",
    _VERSION,
)
LABEL_DELAY = Family(
    "inferwatch_model_label_delay_seconds",
    "gauge",
    "Time from prediction to label of that window's labelled rows: its median (stat=p50), 95th "
    "percentile (p95) and maximum (max).",
    (*_VERSION, "stat"),
    "s",
)
ALERTS_OPEN = Family(
    "inferwatch_model_alerts_open",
    "gauge",
    "Open alerts of the model version, by severity.",
    (*_VERSION, "severity"),
    per_window=False,
)

FAMILIES: tuple[Family, ...] = (
    WINDOW_END,
    WINDOW_ROWS,
    WINDOW_REQUESTS,
    ROWS,
    LABELLED_ROWS,
    CHECK_SCORE,
    CHECK_P_VALUE,
    CHECK_THRESHOLD,
    CHECK_FAILING,
    FEATURES_OMITTED,
    OUTLIER_RATIO,
    OUTLIER_EXPECTED_RATIO,
    PERFORMANCE_FIGURE,
    PERFORMANCE_LOWER,
    PERFORMANCE_UPPER,
    LABEL_COVERAGE,
    LABEL_DELAY,
    ALERTS_OPEN,
)

Sample = tuple[tuple[str, ...], float]


@dataclass
class Figures:
    """Each family's samples: label values (in the family's label order) and a finite value."""

    samples: dict[Family, list[Sample]] = field(
        default_factory=lambda: {family: [] for family in FAMILIES}
    )
    # The windows the per-window samples are of: equal tuples, equal per-window samples.
    windows: tuple[EvaluatedWindow, ...] = ()

    def add(self, family: Family, labels: tuple[str, ...], value: float | None) -> None:
        if value is not None and math.isfinite(value):
            # A name stored by an earlier release may hold a lone surrogate, which no
            # exposition can encode: it is shown as the text of its escape, as the API does.
            shown = tuple(text if text.isascii() else printable(text) for text in labels)
            self.samples[family].append((shown, float(value)))


class ModelFigures:
    """Reads the figures of every model (or of those a caller may see) from storage.

    A window's samples are kept while it is the newest closed window of its version and not
    evaluated again, so a read parses only the windows evaluated since the previous one; the
    rest (which versions, their row counts, the open alerts) is read every time.
    """

    def __init__(self, storage: Storage, config: CollectorConfig) -> None:
        self._storage = storage
        self._max_models = config.metrics_max_models
        self._max_versions = config.metrics_max_versions
        self._max_features = config.metrics_max_features
        self._lock = threading.Lock()
        self._read: dict[EvaluatedWindow, Figures] = {}

    def read(self, may_see: Callable[[str], bool] = lambda model: True) -> Figures:
        shown = self._shown([v for v in self._storage.windows.versions() if may_see(v.model)])
        latest = self._storage.windows.latest_evaluated()
        figures = Figures(windows=tuple(w for w in latest if (w.model, w.version) in shown))
        for counted in shown.values():
            labels = (counted.model, counted.version)
            figures.add(ROWS, labels, counted.rows)
            figures.add(LABELLED_ROWS, labels, counted.labelled)
        for window in figures.windows:
            for family, samples in self._window(window).samples.items():
                figures.samples[family].extend(samples)
        with self._lock:
            # Only the newest windows are kept: an older one, or a deleted model's, goes.
            newest = set(latest)
            self._read = {w: read for w, read in self._read.items() if w in newest}
        open_alerts: dict[tuple[str, str, str], int] = {}
        for alert in self._storage.alerts.open_alerts():
            key = (alert.model, alert.version, alert.severity.value)
            open_alerts[key] = open_alerts.get(key, 0) + 1
        # Every shown version has both severities, 0 when none is open, so rules compare values.
        for model, version in shown:
            for severity in SEVERITIES:
                count = open_alerts.get((model, version, severity), 0)
                figures.add(ALERTS_OPEN, (model, version, severity), count)
        return figures

    def _window(self, window: EvaluatedWindow) -> Figures:
        with self._lock:
            known = self._read.get(window)
        if known is not None:
            return known
        record = self._storage.windows.get(window.model, window.id)
        figures = Figures()
        # None: the model's windows went between the two reads.
        if record is not None:
            self._window_figures(figures, record)
            # Evaluated again in between: shown, and read again next time.
            if record.evaluated_ms == window.evaluated_ms:
                with self._lock:
                    self._read[window] = figures
        return figures

    def _shown(self, versions: list[VersionWindows]) -> dict[tuple[str, str], VersionWindows]:
        """The versions within the caps, the ones with the latest traffic first."""
        by_model: dict[str, list[VersionWindows]] = {}
        for version in versions:
            by_model.setdefault(version.model, []).append(version)
        newest = sorted(
            by_model.values(), key=lambda vs: (-max(v.last_ms for v in vs), vs[0].model)
        )
        shown: dict[tuple[str, str], VersionWindows] = {}
        for model_versions in newest[: self._max_models]:
            latest = sorted(model_versions, key=lambda v: (-v.last_ms, v.version))
            for version in latest[: self._max_versions]:
                shown[version.model, version.version] = version
        return shown

    def _window_figures(self, figures: Figures, record: WindowRecord) -> None:
        labels = (record.model, record.version)
        details = record.details or {}
        figures.add(WINDOW_END, labels, record.end_ms / 1000)
        figures.add(WINDOW_ROWS, labels, record.rows)
        figures.add(WINDOW_REQUESTS, labels, record.requests)
        figures.add(LABEL_COVERAGE, labels, _number(details.get("label_coverage")))
        performance = details.get("performance") or {}
        delay = performance.get("label_delay_seconds") or {}
        for stat in ("p50", "p95", "max"):
            figures.add(LABEL_DELAY, (*labels, stat), _number(delay.get(stat)))
        results = record.results or []
        for metric, kind, value in performance_figures(performance, results):
            figures.add(PERFORMANCE_FIGURE, (*labels, metric, kind), value)
        for metric, value, lower, upper in estimated_figures(details.get(ESTIMATED_PERFORMANCE)):
            row = (*labels, metric, ESTIMATED)
            figures.add(PERFORMANCE_FIGURE, row, value)
            figures.add(PERFORMANCE_LOWER, row, lower)
            figures.add(PERFORMANCE_UPPER, row, upper)
        kept, omitted = _kept_features(results, self._max_features)
        figures.add(FEATURES_OMITTED, labels, omitted)
        seen: set[tuple[str, str]] = set()
        for result in results:
            subject = _subject(result)
            if result.feature is not None and result.feature not in kept:
                continue
            # A check's rows are one per subject; should a plug-in repeat one, the first counts
            # (a series appears once in an exposition).
            if (result.detector, subject) in seen:
                continue
            seen.add((result.detector, subject))
            row = (*labels, result.detector, subject)
            figures.add(CHECK_SCORE, row, result.score)
            figures.add(CHECK_P_VALUE, row, result.p_value)
            figures.add(CHECK_THRESHOLD, row, result.threshold)
            if result.decision.decisive:
                figures.add(CHECK_FAILING, row, float(result.decision.failing))
            if result.detector == OUTLIERS and result.feature is None:
                figures.add(OUTLIER_RATIO, labels, result.score)
                expected = _number(result.details.get("expected_rate"))
                figures.add(OUTLIER_EXPECTED_RATIO, labels, expected)


def performance_figures(
    performance: Mapping[str, Any], results: Iterable[Result]
) -> Iterator[tuple[str, str, float | None]]:
    """(metric, REALIZED, value) of a window: the built-in metrics its labels gave, then the
    model's own metrics as the performance check computed them. The estimates beside them are
    ``estimated_figures``'."""
    task: Task = "regression" if performance.get("task") == "regression" else "classification"
    named: set[str] = set()
    if performance.get("labelled"):
        for metric in BUILTIN_METRICS[task]:
            named.add(metric)
            yield metric, REALIZED, _number(performance.get(metric))
    for result in results:
        own = result.details.get("metric") if result.detector == PERFORMANCE else None
        if isinstance(own, str) and own not in named:
            named.add(own)
            yield own, REALIZED, _number(result.details.get("value"))


def estimated_figures(estimate: Any) -> Iterator[tuple[str, float, float | None, float | None]]:
    """(metric, value, lower, upper) of a window's estimated performance, as its details keep
    it (``window_estimate``): none when the estimate is not trusted, and each metric's estimate
    stays beside the realized value once labels land."""
    if not isinstance(estimate, Mapping) or not estimate.get("trusted"):
        return
    metrics = estimate.get("metrics")
    if not isinstance(metrics, Mapping):
        return
    for metric, figure in metrics.items():
        if not isinstance(metric, str) or not isinstance(figure, Mapping):
            continue
        value = _number(figure.get("value"))
        if value is not None:
            yield metric, value, _number(figure.get("lower")), _number(figure.get("upper"))


def _kept_features(results: list[Result], cap: int) -> tuple[set[str], int]:
    """The features shown (failing ones first, then by name, up to ``cap``) and how many are
    not."""
    names = {r.feature for r in results if r.feature is not None}
    if len(names) <= cap:
        return names, 0
    failing = {r.feature for r in results if r.feature is not None and r.decision.failing}
    ranked = sorted(names, key=lambda name: (name not in failing, name))
    return set(ranked[:cap]), len(names) - cap


def _subject(result: Result) -> str:
    """What a row is about: its feature, or the metric of a performance or estimated_performance
    row (one row per metric, none of them the check's own), or '' for the check as a whole."""
    if result.feature is not None:
        return result.feature
    per_metric = result.detector in (PERFORMANCE, ESTIMATED_PERFORMANCE)
    metric = result.details.get("metric") if per_metric else None
    return metric if isinstance(metric, str) else ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
