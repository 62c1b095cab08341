"""Model performance from labels, as mergeable sufficient statistics.

``ClassificationStats`` keeps a confusion matrix, the log-loss sum and per-class score
histograms (for ROC AUC); ``RegressionStats`` keeps sums and a Chan-merged mean / M2 of the
labels. Windows' statistics add up exactly (``merge``), so lifetime metrics never reread rows,
and late labels only touch their own window. Every metric carries its label coverage and is
evaluated only once coverage reaches ``min_coverage`` or ``max_label_delay`` seconds have
passed (``PerformanceCheck``). User metrics are callables on the statistics, registered by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np

from inferwatch.collector.detectors.base import Detector
from inferwatch.collector.detectors.params import Count, NonNegative, PositiveShare
from inferwatch.collector.detectors.result import Decision, DetectionResult, FeatureResult, Severity
from inferwatch.collector.detectors.thresholds import VERDICTS, Threshold

Task = Literal["classification", "regression"]
# ROC AUC from score histograms: exact for scores rounded down to 1/AUC_BINS, within ~1e-3 of
# the exact AUC otherwise.
AUC_BINS = 1000
_EPS = float(np.finfo(np.float64).eps)


class ClassificationStats:
    """Confusion counts, log-loss sum and score histograms; mergeable and JSON-serialisable."""

    def __init__(self, classes: Sequence[Any] = ()) -> None:
        self.classes: list[str] = []
        self.confusion = np.zeros((0, 0), dtype=np.int64)  # [true, predicted]
        self.log_loss_sum = 0.0
        self.scored = 0  # rows with probabilities
        # [class, is_that_class, bin]: histogram of the class's predicted probability.
        self.histograms = np.zeros((0, 2, AUC_BINS), dtype=np.int64)
        self._index: dict[str, int] = {}
        self._add_classes([str(c) for c in classes])

    def _add_classes(self, names: Sequence[str]) -> None:
        new = [c for c in dict.fromkeys(names) if c not in self._index]
        if not new:
            return
        for name in new:
            self._index[name] = len(self.classes)
            self.classes.append(name)
        k = len(self.classes)
        confusion = np.zeros((k, k), dtype=np.int64)
        old = self.confusion.shape[0]
        confusion[:old, :old] = self.confusion
        self.confusion = confusion
        histograms = np.zeros((k, 2, AUC_BINS), dtype=np.int64)
        histograms[:old] = self.histograms
        self.histograms = histograms

    @property
    def labelled(self) -> int:
        return int(self.confusion.sum())

    def update(
        self,
        y_true: Sequence[Any] | np.ndarray,
        y_pred: Sequence[Any] | np.ndarray,
        proba: np.ndarray | None = None,
    ) -> Self:
        """Add labelled rows; ``proba`` (rows x classes, columns in ``self.classes`` order, as
        given at construction) adds log loss and ROC AUC."""
        true = [str(v) for v in np.asarray(y_true, dtype=object).tolist()]
        pred = [str(v) for v in np.asarray(y_pred, dtype=object).tolist()]
        if len(true) != len(pred):
            raise ValueError(f"y_true has {len(true)} rows but y_pred has {len(pred)}")
        self._add_classes(true + pred)
        t = np.array([self._index[v] for v in true], dtype=np.int64)
        p = np.array([self._index[v] for v in pred], dtype=np.int64)
        k = len(self.classes)
        self.confusion += np.bincount(t * k + p, minlength=k * k).reshape(k, k)
        if proba is not None:
            self._update_proba(t, np.asarray(proba, dtype=np.float64))
        return self

    def _update_proba(self, t: np.ndarray, proba: np.ndarray) -> None:
        if proba.ndim != 2 or proba.shape[0] != t.size:
            raise ValueError(f"proba must be (rows={t.size}, classes), got shape {proba.shape}")
        if proba.shape[1] > len(self.classes) or np.any(t >= proba.shape[1]):
            raise ValueError(
                f"proba has {proba.shape[1]} columns but the labels use classes "
                f"{self.classes}; declare the classes in proba's column order"
            )
        k = proba.shape[1]
        true_proba = proba[np.arange(t.size), t]
        self.log_loss_sum += float(-np.log(np.clip(true_proba, _EPS, 1 - _EPS)).sum())
        self.scored += t.size
        bins = np.clip((proba * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1)
        for c in range(k):
            is_c = (t == c).astype(np.int64)
            counts = np.bincount(is_c * AUC_BINS + bins[:, c], minlength=2 * AUC_BINS)
            self.histograms[c] += counts.reshape(2, AUC_BINS)

    def merge(self, other: ClassificationStats) -> Self:
        self._add_classes(other.classes)
        order = [self._index[c] for c in other.classes]
        self.confusion[np.ix_(order, order)] += other.confusion
        self.histograms[order] += other.histograms
        self.log_loss_sum += other.log_loss_sum
        self.scored += other.scored
        return self

    def metrics(self) -> dict[str, float | None]:
        if self.labelled == 0:
            return {}
        out: dict[str, float | None] = {
            name: float(value) for name, value in confusion_metrics(self.confusion).items()
        }
        out["log_loss"] = self.log_loss_sum / self.scored if self.scored else None
        out["roc_auc"] = self._roc_auc()
        return out

    def _roc_auc(self) -> float | None:
        """Binary: AUC of the second class's score; more classes: macro one-vs-rest."""
        if self.scored == 0:
            return None
        k = len(self.classes)
        targets = [1] if k == 2 else list(range(k))
        aucs = []
        for c in targets:
            negatives, positives = self.histograms[c, 0], self.histograms[c, 1]
            if positives.sum() == 0 or negatives.sum() == 0:
                return None  # undefined, as in sklearn, when a class is absent
            below = np.cumsum(negatives) - negatives
            wins = (positives * (below + 0.5 * negatives)).sum()
            aucs.append(float(wins / (positives.sum() * negatives.sum())))
        return float(np.mean(aucs))

    def to_dict(self) -> dict[str, Any]:
        used = np.flatnonzero(self.histograms.sum(axis=(0, 1)))
        return {
            "task": "classification",
            "classes": list(self.classes),
            "confusion": self.confusion.tolist(),
            "log_loss_sum": self.log_loss_sum,
            "scored": self.scored,
            # Sparse: most of the 1,000 bins are empty for a confident model.
            "histogram_bins": used.tolist(),
            "histograms": self.histograms[:, :, used].tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassificationStats:
        stats = cls(data["classes"])
        stats.confusion = np.asarray(data["confusion"], dtype=np.int64).reshape(
            len(stats.classes), len(stats.classes)
        )
        stats.log_loss_sum = float(data["log_loss_sum"])
        stats.scored = int(data["scored"])
        used = np.asarray(data["histogram_bins"], dtype=np.int64)
        if used.size:
            stats.histograms[:, :, used] = np.asarray(data["histograms"], dtype=np.int64)
        return stats


def confusion_metrics(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall and F1 (macro and weighted) of confusion matrices
    ``[..., true, predicted]`` (counts, or expected counts), one value per leading index.

    As sklearn: macro averages run over the classes seen in labels or predictions (for
    expected counts, classes expected on at least half a row), a class never predicted has
    precision 0 and one never true recall 0.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    n = cm.sum(axis=(-2, -1))
    support, predicted = cm.sum(axis=-1), cm.sum(axis=-2)
    hits = np.diagonal(cm, axis1=-2, axis2=-1)
    present = (support + predicted) >= 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(support > 0, hits / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0)
        weights = support / n[..., None]
        seen = present.sum(axis=-1)
        return {
            "accuracy": hits.sum(axis=-1) / n,
            "precision_macro": (precision * present).sum(axis=-1) / seen,
            "recall_macro": (recall * present).sum(axis=-1) / seen,
            "f1_macro": (f1 * present).sum(axis=-1) / seen,
            "precision_weighted": (precision * weights).sum(axis=-1),
            "recall_weighted": (recall * weights).sum(axis=-1),
            "f1_weighted": (f1 * weights).sum(axis=-1),
        }


class RegressionStats:
    """Sums of errors plus a Chan-merged mean and M2 of the labels (for R^2)."""

    def __init__(self) -> None:
        self.count = 0
        self.abs_error_sum = 0.0
        self.sq_error_sum = 0.0
        self.abs_pct_error_sum = 0.0
        self.label_mean = 0.0
        self.label_m2 = 0.0

    @property
    def labelled(self) -> int:
        return self.count

    def update(
        self, y_true: Sequence[float] | np.ndarray, y_pred: Sequence[float] | np.ndarray
    ) -> Self:
        true = np.asarray(y_true, dtype=np.float64)
        pred = np.asarray(y_pred, dtype=np.float64)
        if true.shape != pred.shape or true.ndim != 1:
            raise ValueError(f"y_true {true.shape} and y_pred {pred.shape} must be equal 1-D")
        error = pred - true
        other = RegressionStats()
        other.count = true.size
        other.abs_error_sum = float(np.abs(error).sum())
        other.sq_error_sum = float((error**2).sum())
        # As sklearn: relative to max(|y|, eps), so a zero label gives a huge, finite term.
        other.abs_pct_error_sum = float((np.abs(error) / np.maximum(np.abs(true), _EPS)).sum())
        if true.size:
            other.label_mean = float(true.mean())
            other.label_m2 = float(((true - other.label_mean) ** 2).sum())
        return self.merge(other)

    def merge(self, other: RegressionStats) -> Self:
        n_a, n_b = self.count, other.count
        total = n_a + n_b
        if total == 0:
            return self
        delta = other.label_mean - self.label_mean
        self.label_m2 += other.label_m2 + delta**2 * n_a * n_b / total
        self.label_mean += delta * n_b / total
        self.count = total
        self.abs_error_sum += other.abs_error_sum
        self.sq_error_sum += other.sq_error_sum
        self.abs_pct_error_sum += other.abs_pct_error_sum
        return self

    def metrics(self) -> dict[str, float | None]:
        if self.count == 0:
            return {}
        if self.label_m2 > 0:
            r2: float | None = 1.0 - self.sq_error_sum / self.label_m2
        else:  # sklearn's convention for constant labels
            r2 = 1.0 if self.sq_error_sum == 0 else 0.0
        return {
            "mae": self.abs_error_sum / self.count,
            "rmse": math.sqrt(self.sq_error_sum / self.count),
            "mape": self.abs_pct_error_sum / self.count,
            "r2": r2,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"task": "regression", **{k: v for k, v in vars(self).items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegressionStats:
        stats = cls()
        for key in vars(stats):
            setattr(stats, key, type(getattr(stats, key))(data[key]))
        return stats


Stats = ClassificationStats | RegressionStats


@dataclass(frozen=True)
class Metric:
    """A performance metric computed from mergeable statistics.

    ``compute(stats)`` gets a window's (or a lifetime's) ``ClassificationStats`` or
    ``RegressionStats``, so a metric of one's own stays mergeable: a cost from the confusion
    matrix, say. ``task`` None: it takes the statistics of either task.
    """

    name: str
    task: Task | None
    higher_is_better: bool
    compute: Callable[[Any], float | None]


_BUILTIN: dict[str, tuple[Task, bool]] = {
    "accuracy": ("classification", True),
    "precision_macro": ("classification", True),
    "recall_macro": ("classification", True),
    "f1_macro": ("classification", True),
    "precision_weighted": ("classification", True),
    "recall_weighted": ("classification", True),
    "f1_weighted": ("classification", True),
    "roc_auc": ("classification", True),
    "log_loss": ("classification", False),
    "mae": ("regression", False),
    "rmse": ("regression", False),
    "mape": ("regression", False),
    "r2": ("regression", True),
}


def builtin_metrics(task: Task) -> tuple[str, ...]:
    """The names of the built-in metrics of ``task``, in the order they are shown."""
    return tuple(name for name, (of, _) in _BUILTIN.items() if of == task)


def _builtin(name: str) -> Callable[[Any], float | None]:
    def compute(stats: Any) -> float | None:
        value: float | None = stats.metrics().get(name)
        return value

    return compute


BUILTIN: Mapping[str, Metric] = {
    name: Metric(name, task, higher, _builtin(name)) for name, (task, higher) in _BUILTIN.items()
}
MetricSpec = str | Metric


def metric(spec: MetricSpec) -> Metric:
    """A metric given as itself or by a built-in name."""
    if isinstance(spec, Metric):
        return spec
    if spec not in BUILTIN:
        raise ValueError(f"no metric named {spec!r}; the built-in ones are {sorted(BUILTIN)}")
    return BUILTIN[spec]


def task_of(stats: Stats) -> Task:
    return "classification" if isinstance(stats, ClassificationStats) else "regression"


def evaluate(stats: Stats, metrics: Sequence[MetricSpec]) -> dict[str, float | None]:
    """The metrics' values on ``stats`` by name; None where undefined (no labels, a missing
    class)."""
    task = task_of(stats)
    out = {}
    for spec in metrics:
        entry = metric(spec)
        if entry.task not in (None, task):
            raise ValueError(
                f"metric {entry.name!r} is for {entry.task}, these statistics are {task}"
            )
        value = entry.compute(stats)
        out[entry.name] = None if value is None or not math.isfinite(value) else float(value)
    return out


DEFAULT_METRICS: dict[Task, tuple[str, ...]] = {
    "classification": ("accuracy", "f1_macro", "roc_auc", "log_loss"),
    "regression": ("mae", "rmse", "r2"),
}


class PerformanceCheck(Detector):
    """Metrics of a window's labelled predictions against thresholds, coverage-gated.

    ``fit(reference_stats)`` records the reference's metric values; without an explicit
    ``thresholds`` entry a metric warns when it is ``warning_drop`` (relative) worse than the
    reference and is critical at ``critical_drop``. ``run(stats, predictions=N,
    age_seconds=T)``: a metric is evaluated once labels cover ``min_coverage`` of the N
    predictions, or once the window is older than ``max_label_delay`` seconds (the collector
    passes both); before that it is "not_enough_data". ``metrics``: built-in names or
    ``Metric`` objects, the task's defaults when None.
    """

    name = "performance"

    def __init__(
        self,
        task: Task = "classification",
        metrics: Sequence[MetricSpec] | None = None,
        thresholds: Mapping[str, Threshold] | None = None,
        warning_drop: NonNegative = 0.05,
        critical_drop: NonNegative = 0.10,
        min_coverage: PositiveShare = 0.5,
        max_label_delay: NonNegative | None = None,
        min_labels: Count = 30,
    ) -> None:
        self.task = task
        self.metrics = metrics
        self.thresholds = thresholds
        self.warning_drop = warning_drop
        self.critical_drop = critical_drop
        self.min_coverage = min_coverage
        self.max_label_delay = max_label_delay
        self.min_labels = min_labels
        self.reference_: dict[str, float | None] | None = None

    def _validate_params(self) -> None:
        super()._validate_params()
        for entry in self._metrics():
            if entry.task not in (None, self.task):
                raise ValueError(f"metric {entry.name!r} is for {entry.task}, not {self.task}")

    def _metrics(self) -> list[Metric]:
        listed = DEFAULT_METRICS[self.task] if self.metrics is None else self.metrics
        return [metric(spec) for spec in listed]

    def fit(self, reference: Stats) -> Self:
        self._validate_params()
        self.reference_ = evaluate(reference, self._metrics())
        return self

    def _threshold(self, entry: Metric) -> Threshold | None:
        thresholds = self.thresholds or {}
        if entry.name in thresholds:
            return thresholds[entry.name]
        base = (self.reference_ or {}).get(entry.name)
        if base is None:
            return None
        higher = entry.higher_is_better
        sign = -1.0 if higher else 1.0
        return Threshold(
            base + sign * self.warning_drop * abs(base),
            base + sign * self.critical_drop * abs(base),
            "below" if higher else "above",
            "reference",
        )

    def run(
        self,
        window: Stats,
        *,
        predictions: int | None = None,
        age_seconds: float | None = None,
    ) -> DetectionResult:
        labelled = window.labelled
        total = predictions if predictions is not None else labelled
        coverage = labelled / total if total else 0.0
        waited = (
            self.max_label_delay is not None
            and age_seconds is not None
            and age_seconds >= self.max_label_delay
        )
        ready = labelled >= self.min_labels and (coverage >= self.min_coverage or waited)
        if self.reference_ is None:
            self._validate_params()  # fitted detectors were checked by fit
        metrics = self._metrics()
        values = evaluate(window, metrics) if ready else {}
        features = []
        for entry in metrics:
            name = entry.name
            value = values.get(name)
            threshold = self._threshold(entry)
            base = (self.reference_ or {}).get(name)
            severity: Severity | None = None
            if not ready or value is None:
                decision = Decision.NOT_ENOUGH_DATA
                message = self._waiting(name, labelled, coverage)
            elif threshold is None:
                decision, message = Decision.OK, f"{name} = {value:.4g} (no threshold set)"
            else:
                level = threshold.level(value)
                decision, severity = VERDICTS[level]
                versus = f" vs {base:.4g} on the reference" if base is not None else ""
                message = (
                    f"{name} = {value:.4g}{versus}: {level} (warning "
                    f"{'<' if threshold.direction == 'below' else '>'} {threshold.first:.4g}; "
                    f"{labelled:,} labels, {coverage:.0%} coverage)"
                )
            features.append(
                FeatureResult(
                    feature=name,
                    test="metric",
                    statistic=value,
                    p_value=None,
                    adjusted_p_value=None,
                    effect_sizes={} if base is None or value is None else {"change": value - base},
                    decision=decision,
                    severity=severity,
                    message=message,
                    n_window=labelled,
                    details={
                        "coverage": coverage,
                        "threshold": None if threshold is None else threshold.to_dict(),
                    },
                    threshold=None if threshold is None else threshold.first,
                )
            )
        return self._summary(tuple(features), coverage, labelled)

    def _waiting(self, name: str, labelled: int, coverage: float) -> str:
        delay = f" or the window is {self.max_label_delay:g} s old" if self.max_label_delay else ""
        return (
            f"{name}: waiting for labels ({labelled:,} labels, {coverage:.0%} coverage; "
            f"evaluated at {self.min_coverage:.0%} coverage with {self.min_labels}+ labels{delay})"
        )

    def _summary(
        self, features: tuple[FeatureResult, ...], coverage: float, labelled: int
    ) -> DetectionResult:
        worst = max(features, key=_badness, default=None)
        decision = Decision.NOT_ENOUGH_DATA if worst is None else worst.decision
        bad = [f for f in features if f.decision.failing]
        if decision is Decision.NOT_ENOUGH_DATA:
            message = features[0].message if features else "no metrics configured"
        elif bad:
            message = "; ".join(f.message for f in bad)
        else:
            message = "performance ok: " + ", ".join(
                f"{f.feature} {f.statistic:.4g}" for f in features if f.statistic is not None
            )
        first = features[0] if features else None
        return DetectionResult(
            self.name,
            decision,
            first.statistic if first else None,
            None,
            first.threshold if first else None,
            message,
            features,
            details={"coverage": coverage, "labelled": labelled},
            severity=None if worst is None else worst.severity,
        )


def _badness(feature: FeatureResult) -> tuple[int, int]:
    """Critical before warning before ok before not yet known."""
    if feature.decision.failing:
        assert feature.severity is not None
        return 2, feature.severity.rank
    return (1 if feature.decision is Decision.OK else 0), 0
