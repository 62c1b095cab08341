"""The shift verdict: its weighted tests against scipy, its verdicts on wine and digits over
enough seeded windows to be decisive, and the grouping of the collector's rows under it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from inferwatch.collector.detectors import Result, ShiftVerdict, group_under_verdict
from inferwatch.collector.detectors import stats as detector_stats
from inferwatch.collector.detectors.weighted import (
    CategoricalColumn,
    NumericColumn,
    compare_categorical,
    compare_numeric,
    effective_size,
    ks_weighted,
)


def test_weighted_ks_and_wasserstein_are_scipys(rng: np.random.Generator) -> None:
    reference = np.round(rng.normal(size=400), 1)  # ties on both sides
    window = np.round(rng.normal(0.3, 1.2, size=250), 1)
    column = NumericColumn.of(reference, np.zeros(400, dtype=int), 10)
    # Unit weights: the usual two-sample statistics and the detector library's p-value.
    ones = compare_numeric(column, np.ones(1), window)
    assert ones is not None
    assert ones.statistic == pytest.approx(scipy_stats.ks_2samp(reference, window).statistic)
    d, p, _ = detector_stats.ks_and_wasserstein(detector_stats.SortedSample.of(reference), window)
    assert (ones.statistic, ones.p_value) == pytest.approx((d, p))
    assert ones.effect_sizes["wasserstein"] == pytest.approx(
        scipy_stats.wasserstein_distance(reference, window)
    )
    # Integer weights: KS on the rows repeated; Wasserstein with scipy's u_weights.
    groups = rng.integers(0, 3, size=400)
    weights = np.array([1.0, 3.0, 0.0])
    column = NumericColumn.of(reference, groups, 10)
    weighted = compare_numeric(column, weights, window)
    assert weighted is not None
    repeated = np.repeat(reference, weights[groups].astype(int))
    assert weighted.statistic == pytest.approx(scipy_stats.ks_2samp(repeated, window).statistic)
    assert weighted.effect_sizes["wasserstein"] == pytest.approx(
        scipy_stats.wasserstein_distance(reference, window, u_weights=weights[groups])
    )
    assert weighted.n_reference == pytest.approx(effective_size(weights[groups]))
    d, _ = ks_weighted(np.sort(reference), np.ones(400), window)
    assert d == pytest.approx(scipy_stats.ks_2samp(reference, window).statistic)


def test_weighted_chi_squared_is_scipys_with_unit_weights(rng: np.random.Generator) -> None:
    codes = rng.choice(3, size=500, p=[0.5, 0.3, 0.2]).astype(np.int32)
    column = CategoricalColumn(codes, np.zeros(500, dtype=int), ("a", "b", "c"))
    window = {"a": 120, "b": 40, "c": 40}
    found = compare_categorical(column, np.ones(1), window)
    assert found is not None
    table = np.vstack([np.bincount(codes, minlength=3), [120, 40, 40]])
    assert found.p_value == pytest.approx(
        scipy_stats.chi2_contingency(table, correction=False).pvalue
    )


# -- wine, drawn as the demo draws its traffic --------------------------------------------------


@pytest.fixture(scope="module")
def wine() -> tuple[np.ndarray, np.ndarray, object]:
    data = load_wine()
    x, y = data.data, data.target
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    return x, y, model


def _wine_window(
    rng: np.random.Generator,
    x: np.ndarray,
    y: np.ndarray,
    shares: tuple[float, ...] | None = None,
    shift: dict[int, float] | None = None,
    rows: int = 300,
) -> np.ndarray:
    """A class drawn, then a reference wine of that class, plus a tenth of an sd of noise."""
    p = np.bincount(y) / y.size if shares is None else np.asarray(shares)
    classes = rng.choice(3, size=rows, p=p)
    picks = np.array([rng.choice(np.flatnonzero(y == c)) for c in classes])
    window = x[picks] + rng.normal(0, 0.1, size=(rows, x.shape[1])) * x.std(axis=0)
    for j, sds in (shift or {}).items():
        window[:, j] += sds * x[:, j].std()
    return window


def test_wine_verdicts(wine: tuple[np.ndarray, np.ndarray, LogisticRegression]) -> None:
    x, y, model = wine
    names = [n.replace("/", "_") for n in load_wine().feature_names]
    verdict = ShiftVerdict().fit(x, y, model.predict(x), feature_names=names)
    rng = np.random.default_rng(5)
    mix = (0.1, 0.2, 0.7)
    scenarios: dict[str, tuple[tuple[float, ...] | None, dict[int, float]]] = {
        "clean": (None, {}),
        "label": (mix, {}),
        # alcohol, color_intensity, hue: the demo's covariate shift.
        "covariate": (None, {0: 1.5, 9: 1.5, 10: -1.0}),
        "both": (mix, {0: 1.5}),
    }
    found: dict[str, Counter[str]] = {}
    last = {}
    for name, (shares, shift) in scenarios.items():
        found[name] = Counter()
        for _ in range(40):
            window = _wine_window(rng, x, y, shares, shift)
            result = verdict.run(window, model.predict(window))
            found[name][result.details["verdict"]] += 1
            last[name] = result
    assert found["clean"]["none"] >= 36, found
    assert found["label"]["label_shift"] >= 38, found
    assert found["covariate"]["covariate_shift"] >= 38, found
    assert found["both"]["both"] >= 36, found
    label = last["label"]
    assert label.message.startswith("label shift: class `2` 27% -> ")
    assert "moved as that class mix predicts" in label.message
    assert label.decision == "alert" and not label.details["covariate_shift"]
    assert set(label.details["explained"]) <= set(label.details["consistent"])
    assert len(label.details["explained"]) >= 5
    both = last["both"]
    assert both.details["covariate_shift"] == ["alcohol"]
    assert both.feature("alcohol").decision == "alert"
    assert "beyond what the class mix explains" in both.feature("alcohol").message
    covariate = last["covariate"]
    assert set(covariate.details["covariate_shift"]) == {"alcohol", "color_intensity", "hue"}
    assert last["clean"].decision == "ok" and last["clean"].message.startswith("no shift")


def test_digits_verdicts_on_fresh_splits(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """A reference and a window drawn apart from the same rows for each window (no row in
    both): the clean windows' verdicts are `none` at about 1 - alpha."""
    x, y = digits
    rng = np.random.default_rng(9)
    order = rng.permutation(len(y))
    train, rest = order[:500], order[500:]
    model = SVC(gamma=0.001).fit(x[train], y[train])
    predicted = model.predict(x)
    # Classes 0, 1 and 2 at 18% each, the others at 6.4% (a total variation of 0.24).
    per_class = np.full(10, 16)
    per_class[[0, 1, 2]] = 45
    found: dict[str, Counter[str]] = {"clean": Counter(), "label": Counter(), "noise": Counter()}
    for _ in range(40):
        split = rng.permutation(rest)
        reference, pool = split[:650], split[650:]
        verdict = ShiftVerdict().fit(x[reference], y[reference], predicted[reference])
        clean = rng.choice(pool, 250, replace=False)
        found["clean"][verdict.run(x[clean], predicted[clean]).details["verdict"]] += 1
        rows = np.concatenate(
            [rng.choice(pool[y[pool] == c], per_class[c], replace=False) for c in range(10)]
        )
        found["label"][verdict.run(x[rows], predicted[rows]).details["verdict"]] += 1
        noisy = np.clip(x[clean] + rng.normal(0, 2, size=(250, 64)), 0, 16)
        found["noise"][verdict.run(noisy, model.predict(noisy)).details["verdict"]] += 1
    # Binomial(40, 0.05): P(more than 6 of 40) < 0.01.
    assert found["clean"]["none"] >= 34, found
    assert found["label"]["label_shift"] >= 36, found
    assert found["noise"]["covariate_shift"] >= 36, found


def test_bad_input_is_named(wine: tuple[np.ndarray, np.ndarray, LogisticRegression]) -> None:
    x, y, model = wine
    with pytest.raises(ValueError, match="features, labels and predictions"):
        ShiftVerdict().fit(x, y)
    with pytest.raises(ValueError, match="one value a reference row"):
        ShiftVerdict().fit(x, y[:10], model.predict(x)[:10])
    verdict = ShiftVerdict().fit(x, y, model.predict(x))
    with pytest.raises(ValueError, match="window's predictions"):
        verdict.run(x)
    small = verdict.run(x[:20], model.predict(x[:20]))
    assert small.decision == "not_enough_data" and "for a verdict" in small.message


# -- grouping the collector's rows --------------------------------------------------------------


def _rows(verdict: str, consistent: list[str]) -> list[Result]:
    drift = [
        Result(detector="univariate_drift", feature=f, decision="alert", message=f"`{f}` moved")
        for f in ("a", "b", "c")
    ]
    return [
        Result(
            detector="univariate_drift",
            decision="alert",
            p_value=1e-9,
            message="3 of 3 features drifted",
        ),
        *drift,
        Result(
            detector="shift_verdict",
            decision="alert",
            p_value=1e-9,
            message="label shift: class `2` 27% -> 70%",
            details={"verdict": verdict, "consistent": consistent},
        ),
    ]


def test_a_label_shift_groups_the_drift_it_explains() -> None:
    grouped = group_under_verdict(_rows("label_shift", ["a", "b", "c"]))
    summary, *features, verdict = grouped
    assert [r.decision for r in features] == ["ok", "ok", "ok"]
    assert all(r.message.startswith("explained by the label shift") for r in features)
    assert summary.decision == "ok" and "3 drifted feature(s) explained" in summary.message
    assert summary.details["grouped"] == ["a", "b", "c"] and verdict.decision == "alert"
    # "both": the feature the re-weighted reference does not match stays a finding.
    summary, a, b, c, _ = group_under_verdict(_rows("both", ["a", "b"]))
    assert (a.decision, b.decision, c.decision) == ("ok", "ok", "alert")
    assert summary.decision == "alert" and summary.message.startswith("1 feature(s) drifted")
    # A covariate shift, or a verdict that did not survive, explains nothing.
    for rows in (_rows("covariate_shift", ["a"]), _rows("label_shift", ["a", "b", "c"])[:-1]):
        assert group_under_verdict(rows) == rows
