"""DLE: estimated MAE and RMSE of a regressor against the realized values, by scikit-learn.

Fixed seeds; 200 clean windows of 1,000 rows where a coverage is claimed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error, mean_squared_error

from inferwatch.collector.detectors import DLE, Decision, Estimate, create

WINDOW = 1000
WINDOWS = 200


def _data(rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Heteroscedastic: the noise grows with |x2|, which the model cannot see but DLE can."""
    X = rng.normal(size=(rows, 5))
    noise = rng.normal(size=rows) * (0.5 + np.abs(X[:, 2]))
    return X, X @ [1.0, 2.0, 0.0, 0.0, 0.5] + np.sin(2 * X[:, 0]) + noise


@pytest.fixture(scope="module")
def fitted() -> tuple[LinearRegression, DLE, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X, y = _data(10_000 + WINDOWS * WINDOW, rng)
    model = LinearRegression().fit(X[:5000], y[:5000])
    dle = DLE().fit(X[5000:10_000], model.predict(X[5000:10_000]), y[5000:10_000])
    return model, dle, X[10_000:], y[10_000:]


def _value(estimate: Estimate, name: str) -> float:
    value = estimate.value(name)
    assert value is not None, estimate.reasons
    return value


def test_clean_windows_estimates_match_realized_and_bands_cover(
    fitted: tuple[LinearRegression, DLE, np.ndarray, np.ndarray],
) -> None:
    model, dle, X, y = fitted
    predicted = model.predict(X)
    errors: dict[str, list[float]] = {"mae": [], "rmse": []}
    values: dict[str, list[float]] = {"mae": [], "rmse": []}
    covered: dict[str, list[bool]] = {"mae": [], "rmse": []}
    for w in range(WINDOWS):
        rows = slice(w * WINDOW, (w + 1) * WINDOW)
        estimate = dle.estimate(X[rows], predicted[rows])
        assert estimate.trusted, estimate.reasons
        realized = {
            "mae": mean_absolute_error(y[rows], predicted[rows]),
            "rmse": np.sqrt(mean_squared_error(y[rows], predicted[rows])),
        }
        for name, value in realized.items():
            errors[name].append(_value(estimate, name) - value)
            values[name].append(value)
            covered[name].append(estimate.metrics[name].covers(value))
    for name in errors:
        # MAE ~1.17, RMSE ~1.56: within 3% of the metric on average (a window's realized
        # RMSE itself strays ~3% from the population's), unbiased.
        assert np.mean(np.abs(errors[name])) <= 0.03 * np.mean(values[name]), name
        assert abs(np.mean(errors[name])) <= 0.015, name
        assert np.mean(covered[name]) >= 0.90, (name, np.mean(covered[name]))


def test_reference_metrics_are_sklearns() -> None:
    rng = np.random.default_rng(1)
    X, y = _data(3000, rng)
    predicted = LinearRegression().fit(X, y).predict(X)
    dle = DLE(max_iter=20).fit(X, predicted, y)
    reference = dle.reference_metrics()
    assert reference["mae"] == pytest.approx(mean_absolute_error(y, predicted))
    assert reference["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, predicted)))


def test_estimates_are_plain_floats() -> None:
    # A numpy scalar in an Estimated shows as np.float64(...) when printed (docs/detectors.md).
    rng = np.random.default_rng(2)
    X, y = _data(1500, rng)
    model = LinearRegression().fit(X[:500], y[:500])
    dle = DLE(max_iter=20).fit(X[500:1000], model.predict(X[500:1000]), y[500:1000])
    estimate = dle.estimate(X[1000:], model.predict(X[1000:]))
    bands = [(m.value, m.lower, m.upper) for m in estimate.metrics.values()]
    assert bands and all(type(x) is float for band in bands for x in band), bands


def test_a_shift_into_noisier_rows_is_followed(
    fitted: tuple[LinearRegression, DLE, np.ndarray, np.ndarray],
) -> None:
    """Windows of the rows with large |x2| (inside the reference's range): the error grows
    by half, the estimate follows and alerts."""
    model, dle, X, y = fitted
    predicted = model.predict(X)
    noisy = np.flatnonzero(np.abs(X[:, 2]) > 1.0)
    rng = np.random.default_rng(2)
    errors, realized_all = [], []
    for _ in range(20):
        rows = rng.choice(noisy, WINDOW, replace=False)
        estimate = dle.estimate(X[rows], predicted[rows])
        realized = mean_absolute_error(y[rows], predicted[rows])
        realized_all.append(realized)
        errors.append(_value(estimate, "mae") - realized)
    reference = dle.reference_metrics()["mae"]
    assert reference is not None and np.mean(realized_all) > 1.3 * reference
    assert np.mean(np.abs(errors)) < 0.05 * np.mean(realized_all)
    result = dle.run(X[rows], predicted[rows])
    assert result.decision is Decision.ALERT
    assert "estimated mae" in result.message and "by dle" in result.message


def test_untrusted_windows_and_references_give_reasons_not_numbers(
    fitted: tuple[LinearRegression, DLE, np.ndarray, np.ndarray],
) -> None:
    model, dle, X, _ = fitted
    far = X[:WINDOW] + np.array([0.0, 0.0, 0.0, 6.0, 0.0])  # x3 six sds off
    result = dle.run(far, model.predict(far))
    assert result.decision is Decision.NOT_ENOUGH_DATA and result.score is None
    assert "outside the reference's range" in result.message
    no_labels = (
        DLE().fit(X[:500], model.predict(X[:500]), None).run(X[:500], model.predict(X[:500]))
    )
    assert "no labels" in no_labels.message
    few = (
        DLE().fit(X[:50], model.predict(X[:50]), np.zeros(50)).run(X[:500], model.predict(X[:500]))
    )
    assert "50 rows" in few.message
    with pytest.raises(ValueError, match="predictions"):
        dle.estimate(X[:100])
    with pytest.raises(ValueError, match="folds"):
        DLE(folds=1).fit(X[:500], model.predict(X[:500]), np.zeros(500))
    with pytest.raises(ValueError, match="wide_max_leaf_nodes"):
        DLE(wide_max_leaf_nodes=1).fit(X[:500], model.predict(X[:500]), np.zeros(500))
    assert isinstance(create("estimated_error", max_iter=10), DLE)


def test_categorical_features_and_unseen_categories() -> None:
    rng = np.random.default_rng(3)
    rows = 3000
    city = rng.choice(["paris", "rome", "oslo"], rows)
    x = rng.normal(size=rows)
    # Oslo's rows are three times noisier: only the category tells.
    y = x + rng.normal(size=rows) * np.where(city == "oslo", 3.0, 1.0)
    frame = pd.DataFrame({"x": x, "city": city})
    dle = DLE().fit(frame, x, y)
    oslo = frame[city == "oslo"].iloc[:500]
    paris = frame[city == "paris"].iloc[:500]
    assert _value(dle.estimate(oslo, oslo["x"].to_numpy()), "mae") > 2 * _value(
        dle.estimate(paris, paris["x"].to_numpy()), "mae"
    )
    unseen = paris.assign(city="nice")
    estimate = dle.estimate(unseen, unseen["x"].to_numpy())
    assert not estimate.trusted and "unseen category" in estimate.reasons[0]


def test_shifted_windows_are_estimated_closely_and_bands_hold_90_percent() -> None:
    """200 windows shifted towards large |x2| (gamma 0 to 1.5) of a heteroscedastic regressor
    with a known truth (the bench's seed 6, fresh rows of the same generator; realized by
    scikit-learn). The estimates must be within 0.056 (MAE) and 0.099 (RMSE) of the realized
    values on average: the narrow error model alone (``wide_max_leaf_nodes=None``, DLE's model
    before the wide one joined it) missed both, by 0.060 and 0.107, since its edge leaves
    average over the whole noisy tail; the average with the wide one is 0.052 and 0.093. The
    band must hold >= 90% of them for MAE and RMSE. Without the error models' held-out error
    under shift (``shift_error_``: reweightings of the reference scored by out-of-fold models)
    the band held 0.89 (MAE) of these windows; with only the sampling error of the window's
    mean of predicted errors, the bench's 0.82 (MAE) and 0.63 (RMSE)."""
    rng = np.random.default_rng(6)
    X, y = _data(10_000 + 60_000, rng)
    predicted = LinearRegression().fit(X[:5000], y[:5000]).predict(X)
    dle = DLE().fit(X[5000:10_000], predicted[5000:10_000], y[5000:10_000])
    pool = np.arange(10_000, X.shape[0])
    covered: dict[str, list[bool]] = {"mae": [], "rmse": []}
    errors: dict[str, list[float]] = {"mae": [], "rmse": []}
    for gamma in np.linspace(0.0, 1.5, 200):
        weights = np.exp(gamma * np.abs(X[pool, 2]))
        window = rng.choice(pool, WINDOW, replace=False, p=weights / weights.sum())
        estimate = dle.estimate(X[window], predicted[window])
        realized = {
            "mae": mean_absolute_error(y[window], predicted[window]),
            "rmse": np.sqrt(mean_squared_error(y[window], predicted[window])),
        }
        for name, value in realized.items():
            covered[name].append(estimate.metrics[name].covers(value))
            errors[name].append(abs(_value(estimate, name) - value))
    assert np.mean(errors["mae"]) <= 0.056, np.mean(errors["mae"])
    assert np.mean(errors["rmse"]) <= 0.099, np.mean(errors["rmse"])
    assert np.mean(covered["mae"]) >= 0.90, np.mean(covered["mae"])
    assert np.mean(covered["rmse"]) >= 0.90, np.mean(covered["rmse"])
