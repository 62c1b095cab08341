from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from inferwatch.collector.detectors import LabelDrift, PredictionDrift, UnivariateDrift


def _label_shift_sample(
    rng: np.random.Generator, labels: np.ndarray, rows: int, boost: tuple[int, ...]
) -> np.ndarray:
    """Row indices whose class mix favours ``boost`` (8x weight): p(x | y) is unchanged."""
    weights = np.where(np.isin(labels, boost), 8.0, 1.0)
    return rng.choice(len(labels), rows, replace=False, p=weights / weights.sum())


def test_label_shift_on_digits_shows_in_predictions_and_labels(
    digits: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> None:
    x, y = digits
    order = rng.permutation(len(x))
    train, rest = order[:700], order[700:]
    model = LogisticRegression(max_iter=2000).fit(x[train] / 16, y[train])
    reference_rows = rest[:500]
    pool = rest[500:]
    prediction_drift = PredictionDrift().fit(model.predict(x[reference_rows] / 16))
    label_drift = LabelDrift().fit(y[reference_rows])

    shifted = pool[_label_shift_sample(rng, y[pool], 200, boost=(0, 1, 2))]
    # Unshifted windows: fresh reference / window splits alarm at about alpha.
    predicted = model.predict(x / 16)
    alarms = 0
    for _ in range(40):
        split = rng.permutation(rest)
        detector = PredictionDrift().fit(predicted[split[:500]])
        alarms += detector.run(predicted[split[500:700]]).decision == "alert"
    assert alarms <= 6  # Binomial(40, 0.05): P(> 6) < 0.015
    moved = prediction_drift.run(model.predict(x[shifted] / 16))
    assert moved.decision == "alert" and "the model outputs drifted" in moved.message
    assert label_drift.run(y[shifted]).decision == "alert"
    # Class probabilities: per-class score columns plus the argmax class.
    proba_drift = PredictionDrift(classes=model.classes_).fit(
        model.predict_proba(x[reference_rows] / 16)
    )
    result = proba_drift.run(model.predict_proba(x[shifted] / 16))
    assert result.decision == "alert"
    assert {f.feature for f in result.features} >= {"prediction_class", "prediction_score[0]"}


def test_regression_outputs_are_compared_as_numbers(rng: np.random.Generator) -> None:
    detector = PredictionDrift().fit(rng.normal(size=2000))
    result = detector.run(rng.normal(1.0, 1.0, size=500))
    assert result.decision == "alert" and result.features[0].test == "ks_mw"
    with pytest.raises(ValueError, match="2-D class probabilities"):
        detector.run(np.zeros((2, 2, 2)))


def test_univariate_and_prediction_share_parameters() -> None:
    assert set(UnivariateDrift().get_params()) >= {"alpha", "min_samples", "min_psi"}
    assert PredictionDrift(alpha=0.01).get_params()["alpha"] == 0.01
