from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics

from inferwatch.collector.detectors import (
    ClassificationStats,
    Metric,
    PerformanceCheck,
    RegressionStats,
    static,
)


def _classification(rng: np.random.Generator, rows: int, classes: int):
    y = rng.integers(0, classes, rows)
    proba = rng.dirichlet(np.ones(classes), rows)
    proba[np.arange(rows), y] += 0.6
    proba /= proba.sum(axis=1, keepdims=True)
    return y, proba.argmax(axis=1), proba


@pytest.mark.parametrize("classes", [2, 4])
def test_classification_metrics_match_sklearn(rng: np.random.Generator, classes: int) -> None:
    y, pred, proba = _classification(rng, 3000, classes)
    # Two windows merged = one pass over all rows.
    stats = ClassificationStats(range(classes)).update(y[:1100], pred[:1100], proba[:1100])
    stats.merge(ClassificationStats(range(classes)).update(y[1100:], pred[1100:], proba[1100:]))
    got = stats.metrics()
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y, pred), abs=1e-12)
    for average in ("macro", "weighted"):
        for name, fn in (
            ("precision", metrics.precision_score),
            ("recall", metrics.recall_score),
            ("f1", metrics.f1_score),
        ):
            assert got[f"{name}_{average}"] == pytest.approx(
                fn(y, pred, average=average), abs=1e-12
            )
    assert got["log_loss"] == pytest.approx(metrics.log_loss(y, proba), abs=1e-12)
    np.testing.assert_array_equal(stats.confusion, metrics.confusion_matrix(y, pred))
    # ROC AUC from 1,000-bin histograms: exact on binned scores, ~1e-3 on raw ones.
    binned = np.floor(proba * 1000) / 1000
    if classes == 2:
        exact, raw = metrics.roc_auc_score(y, binned[:, 1]), metrics.roc_auc_score(y, proba[:, 1])
    else:
        exact = np.mean([metrics.roc_auc_score(y == c, binned[:, c]) for c in range(classes)])
        raw = metrics.roc_auc_score(y, proba, multi_class="ovr")
    assert got["roc_auc"] == pytest.approx(exact, abs=1e-12)
    assert got["roc_auc"] == pytest.approx(raw, abs=2e-3)


def test_text_labels_and_unseen_predicted_classes(rng: np.random.Generator) -> None:
    y = rng.choice(["cat", "dog"], 500)
    pred = np.where(rng.random(500) < 0.1, "fox", y)
    got = ClassificationStats().update(y, pred).metrics()
    assert got["f1_macro"] == pytest.approx(
        metrics.f1_score(y, pred, average="macro", zero_division=0)
    )
    assert got["roc_auc"] is None and got["log_loss"] is None


def test_regression_metrics_match_sklearn(rng: np.random.Generator) -> None:
    y = rng.normal(50, 10, 2000)
    y[:3] = 0.0  # MAPE's eps guard, as sklearn
    pred = y + rng.normal(0, 3, 2000)
    stats = (
        RegressionStats()
        .update(y[:700], pred[:700])
        .merge(RegressionStats().update(y[700:], pred[700:]))
    )
    got = stats.metrics()
    assert got["mae"] == pytest.approx(metrics.mean_absolute_error(y, pred), rel=1e-12)
    assert got["rmse"] == pytest.approx(metrics.root_mean_squared_error(y, pred), rel=1e-12)
    assert got["mape"] == pytest.approx(metrics.mean_absolute_percentage_error(y, pred), rel=1e-9)
    assert got["r2"] == pytest.approx(metrics.r2_score(y, pred), rel=1e-12)


def test_statistics_round_trip_through_json(rng: np.random.Generator) -> None:
    y, pred, proba = _classification(rng, 400, 3)
    stats = ClassificationStats(range(3)).update(y, pred, proba)
    again = ClassificationStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again.metrics() == stats.metrics()
    reg = RegressionStats().update(rng.normal(size=50), rng.normal(size=50))
    assert (
        RegressionStats.from_dict(json.loads(json.dumps(reg.to_dict()))).metrics() == reg.metrics()
    )


def test_metrics_wait_for_coverage_or_delay(rng: np.random.Generator) -> None:
    y, pred, proba = _classification(rng, 400, 2)
    reference = ClassificationStats(range(2)).update(y, pred, proba)
    check = PerformanceCheck(min_coverage=0.5, max_label_delay=3600).fit(reference)
    window = ClassificationStats(range(2)).update(y[:100], pred[:100], proba[:100])
    early = check.run(window, predictions=1000, age_seconds=60)
    assert early.decision == "not_enough_data" and "10% coverage" in early.message
    late = check.run(window, predictions=1000, age_seconds=7200)
    assert late.decision == "ok"
    assert check.run(window, predictions=150).decision == "ok"  # 67% coverage


def test_worse_performance_warns_then_turns_critical(rng: np.random.Generator) -> None:
    y, pred, proba = _classification(rng, 2000, 2)
    reference = ClassificationStats(range(2)).update(y, pred, proba)
    check = PerformanceCheck(metrics=["accuracy"]).fit(reference)
    base = reference.metrics()["accuracy"]
    cases = ((0.0, "ok", None), (0.07, "warning", "warning"), (0.2, "alert", "critical"))
    for flip, decision, severity in cases:
        wrong = np.where(rng.random(2000) < flip, 1 - pred, pred)
        result = check.run(ClassificationStats(range(2)).update(y, wrong))
        assert (result.decision, result.severity) == (decision, severity), (flip, result.message)
    assert f"vs {base:.4g} on the reference" in result.message
    row = result.results()[1]
    assert row.feature == "accuracy" and row.threshold == pytest.approx(0.95 * base)
    assert row.severity == "critical"
    mae = PerformanceCheck("regression", ["mae"], thresholds={"mae": static(1.0, 2.0)})
    window = RegressionStats().update(np.zeros(100), np.full(100, 1.5))
    assert mae.run(window).decision == "warning"


def test_a_metric_of_ones_own_is_computed_from_the_statistics(rng: np.random.Generator) -> None:
    def false_negative_rate(stats: ClassificationStats) -> float | None:
        tp, fn = stats.confusion[1, 1], stats.confusion[1, 0]
        return fn / (tp + fn) if tp + fn else None

    fnr = Metric("test_fnr", "classification", False, false_negative_rate)
    y, pred, _ = _classification(rng, 500, 2)
    check = PerformanceCheck(metrics=[fnr], thresholds={"test_fnr": static(0.5)})
    result = check.run(ClassificationStats(range(2)).update(y, pred))
    expected = 1 - metrics.recall_score(y, pred)
    assert result.features[0].statistic == pytest.approx(expected)
    with pytest.raises(ValueError, match="metric 'mae' is for regression"):
        PerformanceCheck(metrics=["mae"]).run(ClassificationStats(range(2)).update(y, pred))
    with pytest.raises(ValueError, match="no metric named 'acuracy'"):
        PerformanceCheck(metrics=["acuracy"]).fit(ClassificationStats(range(2)).update(y, pred))
