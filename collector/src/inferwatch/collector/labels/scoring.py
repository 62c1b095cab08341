"""Model performance from labelled predictions: per window, and merged into lifetime figures.

Each window keeps the detector library's sufficient statistics next to its figures:
``ClassificationStats`` (confusion counts, log-loss sum, 1,000-bin score histograms per class)
or ``RegressionStats`` (error sums, Chan-merged label mean and M2). Lifetime figures merge the
windows' statistics, never the rows, so they are what one pass over every labelled row would
give (ROC AUC to its binning, within ~1e-3), and late labels only recompute their own window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from inferwatch.collector.detectors.metrics import (
    ClassificationStats,
    RegressionStats,
    Stats,
    Task,
    builtin_metrics,
)
from inferwatch.collector.labels.join import LabelledPair

# The key of a window's performance under which its statistics are stored; the query API
# leaves them out of what it shows.
STATS = "stats"
# The library's built-in metrics, each shown in every performance (None where undefined).
BUILTIN_METRICS: dict[Task, tuple[str, ...]] = {
    task: builtin_metrics(task) for task in ("classification", "regression")
}


def window_performance(
    pairs: Sequence[LabelledPair], task: str | None, rows: int
) -> dict[str, Any]:
    """Statistics and figures of one window's ``rows`` rows, ``pairs`` of them labelled."""
    kind: Task = "regression" if task == "regression" else "classification"
    stats = build_stats(pairs, kind)
    out: dict[str, Any] = {
        "task": kind,
        "rows": rows,
        "labelled": len(pairs),
        "coverage": len(pairs) / rows if rows else None,
        **figures(stats),
    }
    if pairs:
        delays = np.array([p.delay_ms for p in pairs], dtype=float) / 1000.0
        out["label_delay_seconds"] = {
            "p50": float(np.quantile(delays, 0.5)),
            "p95": float(np.quantile(delays, 0.95)),
            "max": float(delays.max()),
        }
    out[STATS] = stats.to_dict()
    return out


def build_stats(pairs: Sequence[LabelledPair], task: Task) -> Stats:
    """The rows' statistics; rows without a prediction (or, for regression, without numbers on
    both sides) count as labelled but are not scored."""
    if task == "regression":
        scored = [
            (p.label_num, p.prediction_num)
            for p in pairs
            if p.prediction_num is not None and p.label_num is not None
        ]
        true, pred = zip(*scored, strict=True) if scored else ((), ())
        return RegressionStats().update(np.array(true, dtype=float), np.array(pred, dtype=float))
    # Rows are grouped by the classes of their probability columns: the library takes
    # probabilities in the column order its statistics were created with.
    groups: dict[tuple[str, ...] | None, list[tuple[str, str, np.ndarray | None]]] = {}
    for pair in pairs:
        classes = pair.class_pair()
        if classes is not None:
            key = pair.classes if pair.proba is not None else None
            groups.setdefault(key, []).append((*classes, pair.proba))
    total = ClassificationStats()
    # Groups with probabilities first: the first fixes the class order, and with it the
    # positive class of a binary ROC AUC (the second column, as in sklearn).
    for key in sorted(groups, key=lambda k: k is None):
        rows = groups[key]
        total.merge(_group_stats(key, rows))
    return total


def _group_stats(
    classes: tuple[str, ...] | None, rows: list[tuple[str, str, np.ndarray | None]]
) -> ClassificationStats:
    true = np.array([r[0] for r in rows], dtype=object)
    pred = np.array([r[1] for r in rows], dtype=object)
    if classes is None:
        return ClassificationStats().update(true, pred)
    stats = ClassificationStats(classes)
    proba = np.vstack([r[2] for r in rows if r[2] is not None]).astype(np.float64)
    # A row whose label is not one of the probability columns' classes, or with a missing
    # probability, counts in the confusion matrix but not in log loss and ROC AUC.
    known = np.isin(true, np.array(classes, dtype=object)) & np.isfinite(proba).all(axis=1)
    if known.any():
        stats.update(true[known], pred[known], proba[known])
    if not known.all():
        stats.update(true[~known], pred[~known])
    return stats


def figures(stats: Stats) -> dict[str, Any]:
    """Every built-in metric of ``stats`` (None where undefined) and the counts behind them.

    ``scored`` is the rows the metrics are computed on; for classification, ``with_proba`` of
    them had probabilities (log loss and ROC AUC use those).
    """
    values = {
        k: v if v is not None and math.isfinite(v) else None for k, v in stats.metrics().items()
    }
    if isinstance(stats, ClassificationStats):
        return {
            "scored": stats.labelled,
            "correct": int(np.trace(stats.confusion)),
            "with_proba": stats.scored,
            **{name: values.get(name) for name in BUILTIN_METRICS["classification"]},
            "confusion": {"classes": list(stats.classes), "matrix": stats.confusion.tolist()},
        }
    return {
        "scored": stats.labelled,
        "abs_error_sum": stats.abs_error_sum,
        "sq_error_sum": stats.sq_error_sum,
        **{name: values.get(name) for name in BUILTIN_METRICS["regression"]},
    }


def stored_stats(performance: Mapping[str, Any]) -> Stats | None:
    """The statistics kept in a window's performance, None when it has none."""
    data = performance.get(STATS)
    if not data:
        return None
    if data.get("task") == "regression":
        return RegressionStats.from_dict(data)
    return ClassificationStats.from_dict(data)


def lifetime(performances: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Windows' statistics merged: their figures over every labelled row, and the coverage.

    ``performances`` may also be earlier lifetimes (of each version, say), which count as the
    windows they merged. Windows of another task than the first one's (a model that changed
    task between versions) are counted in rows and labels but not merged into the metrics.
    """
    windows = rows = labelled = 0
    found: list[Stats] = []
    for performance in performances:
        windows += performance.get("windows", 1)
        rows += performance.get("rows", 0)
        labelled += performance.get("labelled", 0)
        stats = stored_stats(performance)
        if stats is not None:
            found.append(stats)
    total = _merged(found)
    out: dict[str, Any] = {
        "windows": windows,
        "rows": rows,
        "labelled": labelled,
        "coverage": labelled / rows if rows else None,
    }
    if total is None:
        return {**out, "scored": 0}
    task = "classification" if isinstance(total, ClassificationStats) else "regression"
    return {"task": task, **out, **figures(total), STATS: total.to_dict()}


def _merged(found: Sequence[Stats]) -> Stats | None:
    if not found:
        return None
    if isinstance(found[0], ClassificationStats):
        classification = ClassificationStats()
        for stats in found:
            if isinstance(stats, ClassificationStats):
                classification.merge(stats)
        return classification
    regression = RegressionStats()
    for stats in found:
        if isinstance(stats, RegressionStats):
            regression.merge(stats)
    return regression


def public(performance: Mapping[str, Any]) -> dict[str, Any]:
    """A performance without its statistics, as the query API shows it."""
    return {key: value for key, value in performance.items() if key != STATS}
