"""The calibration's curves and their vectorised application, against scikit-learn's predict
and the per-refit application they replace: the same values, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from inferwatch.collector.detectors.calibration import (
    Calibrator,
    _Constant,
    _Isotonic,
    _Logistic,
    _logit,
    apply_all,
    calibrate,
)


def _fitting_rows(rng: np.random.Generator, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    size = int(rng.integers(20, 400))
    score = rng.beta(rng.uniform(0.3, 3), rng.uniform(0.3, 3), size)
    if ties:
        score = np.round(score, 1)
    target = (rng.random(size) < score ** rng.uniform(0.5, 2)).astype(np.float64)
    return score, target


@pytest.mark.parametrize("ties", [False, True])
def test_the_isotonic_curve_predicts_as_sklearns_isotonic_regression(ties: bool) -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        score, target = _fitting_rows(rng, ties)
        window = np.concatenate([rng.uniform(-0.2, 1.2, 500), score[:50], [0.0, 1.0]])
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        expected = model.fit(score, target).predict(window)
        np.testing.assert_array_equal(_Isotonic().fit(score, target).predict(window), expected)


def test_the_logistic_curve_predicts_as_sklearns_logistic_regression() -> None:
    rng = np.random.default_rng(2)
    for _ in range(100):
        score, target = _fitting_rows(rng, ties=False)
        if target.min() == target.max():
            continue
        window = np.concatenate([rng.uniform(0, 1, 500), [0.0, 1.0]])
        model = LogisticRegression(C=1e6).fit(_logit(score).reshape(-1, 1), target)
        expected = model.predict_proba(_logit(window).reshape(-1, 1))[:, 1]
        np.testing.assert_array_equal(_Logistic().fit(score, target).predict(window), expected)


@pytest.mark.parametrize("classes", [2, 4, 10])
@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_all_bootstrap_refits_at_once_are_each_refits_own(classes: int, method: str) -> None:
    """Small resamples leave a class out of some refits (a constant curve beside the others),
    and rows every calibrator maps to 0 keep their raw scores."""
    rng = np.random.default_rng(classes)
    scores = rng.dirichlet(np.full(classes, 0.5), 120)
    labels = scores.argmax(axis=1)
    labels[labels == classes - 1] = 0
    labels[:2] = classes - 1  # in about one refit in six, the last class is absent
    calibration = calibrate(scores, labels, choice=method, bootstrap=30)  # type: ignore[arg-type]
    curves = [curve for refit in calibration.bootstrap for curve in refit.curves]
    assert any(isinstance(curve, _Constant) for curve in curves)
    uniform = np.full((5, classes), 1.0 / classes)  # isotonic: 0 for every class
    window = np.vstack([rng.dirichlet(np.full(classes, 0.5), 300), np.eye(classes), uniform])
    together = calibration.apply_bootstrap(window)
    alone = np.stack([_one_at_a_time(refit, window) for refit in calibration.bootstrap])
    np.testing.assert_array_equal(together, alone)
    np.testing.assert_array_equal(
        calibration.apply(window), _one_at_a_time(calibration.calibrator, window)
    )


def _one_at_a_time(calibrator: Calibrator, scores: np.ndarray) -> np.ndarray:
    """A calibrator's probabilities as each curve gives them alone, normalised per row."""
    columns = [1] if scores.shape[1] == 2 else range(scores.shape[1])
    curves = zip(calibrator.curves, columns, strict=True)
    raw = np.column_stack([curve.predict(scores[:, c]) for curve, c in curves])
    if scores.shape[1] == 2:
        positive = np.clip(raw[:, 0], 0.0, 1.0)
        return np.column_stack([1 - positive, positive])
    raw = np.clip(raw, 0.0, 1.0)
    total = raw.sum(axis=1, keepdims=True)
    fallback = np.clip(scores, 0, None) / np.clip(scores, 0, None).sum(axis=1, keepdims=True)
    return np.where(total > 0, raw / np.where(total > 0, total, 1.0), fallback)


def test_no_calibration_normalises_the_raw_scores() -> None:
    scores = np.array([[2.0, 2.0], [0.0, 0.0], [-1.0, 3.0]])
    np.testing.assert_array_equal(
        apply_all((Calibrator("none", ()),) * 2, scores),
        np.array([[[0.5, 0.5], [0.5, 0.5], [0.0, 1.0]]] * 2),
    )
