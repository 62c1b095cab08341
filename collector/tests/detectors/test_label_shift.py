"""BBSE (``LabelShift``): checked against numpy / scipy on the same counts, and by simulation
(fixed seeds, hundreds of windows) for the intervals' coverage and the test's level."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as scipy_stats
from sklearn.svm import SVC

from inferwatch.collector.detectors import ClassificationStats, LabelShift, create
from inferwatch.collector.detectors.label_shift import (
    PriorEstimate,
    solve_weights,
    solve_weights_stacked,
)

# P(y_hat = i | y = j) of a mediocre 3-class model (columns sum to 1).
CONFUSION = np.array([[0.80, 0.10, 0.15], [0.15, 0.75, 0.05], [0.05, 0.15, 0.80]])
REFERENCE_PRIORS = np.array([0.3, 0.4, 0.3])


def _sample(
    rng: np.random.Generator, priors: np.ndarray, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn with ``priors``, predictions drawn from CONFUSION given the label."""
    labels = rng.choice(3, size=rows, p=priors)
    cumulative = np.cumsum(CONFUSION, axis=0)[:, labels]  # (3, rows)
    predictions = (rng.random(rows) > cumulative).sum(axis=0)
    return np.minimum(predictions, 2), labels


def test_the_test_of_unchanged_priors_is_scipys_chi_squared(rng: np.random.Generator) -> None:
    predictions, labels = _sample(rng, REFERENCE_PRIORS, 2000)
    window, _ = _sample(rng, np.array([0.2, 0.3, 0.5]), 600)
    result = LabelShift().fit(predictions, labels).run(window)
    table = np.vstack([np.bincount(predictions, minlength=3), np.bincount(window, minlength=3)])
    expected = scipy_stats.chi2_contingency(table, correction=False)
    assert result.details["chi2"] == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.decision == "alert" and result.message.startswith("label shift: class `2`")


def test_inside_the_simplex_the_weights_are_numpys_solve(rng: np.random.Generator) -> None:
    predictions, labels = _sample(rng, REFERENCE_PRIORS, 3000)
    window, _ = _sample(rng, np.array([0.5, 0.3, 0.2]), 1000)
    estimate = LabelShift().fit(predictions, labels).estimate(window)
    assert isinstance(estimate, PriorEstimate)
    counts = np.zeros((3, 3))
    np.add.at(counts, (predictions, labels), 1)
    joint, q = counts / counts.sum(), counts.sum(axis=0) / counts.sum()
    mu = np.bincount(window, minlength=3) / window.size
    w = np.linalg.solve(joint, mu)
    assert np.all(w > 0)
    np.testing.assert_allclose(estimate.weights, w, rtol=1e-6)
    np.testing.assert_allclose(estimate.priors, w * q, atol=1e-8)
    np.testing.assert_allclose(estimate.reference_priors, q)


def test_the_constrained_solve_is_the_constrained_least_squares_minimum() -> None:
    # Predicted shares no class mix gives exactly: the unconstrained w has a negative weight.
    joint = CONFUSION * REFERENCE_PRIORS
    mu = np.array([0.02, 0.18, 0.80])
    assert np.linalg.solve(joint, mu).min() < 0
    for regularization in (0.0, 0.05):
        w = solve_weights(joint, REFERENCE_PRIORS, mu, regularization)

        def loss(v: np.ndarray, lam: float = regularization) -> float:
            return float(np.sum((joint @ v - mu) ** 2) + lam * np.sum((v - 1) ** 2))

        best = optimize.minimize(
            loss,
            np.ones(3),
            method="SLSQP",
            bounds=[(0, None)] * 3,
            constraints=[{"type": "eq", "fun": lambda v: v @ REFERENCE_PRIORS - 1}],
            options={"ftol": 1e-14, "maxiter": 500},
        )
        assert w @ REFERENCE_PRIORS == pytest.approx(1.0, abs=1e-12) and w.min() >= 0
        np.testing.assert_allclose(w, best.x, atol=1e-5)
        assert loss(w) <= best.fun + 1e-10
    # The ridge pulls w towards 1 (no shift).
    plain = solve_weights(joint, REFERENCE_PRIORS, mu, 0.0)
    ridged = solve_weights(joint, REFERENCE_PRIORS, mu, 1.0)
    assert np.abs(ridged - 1).sum() < np.abs(plain - 1).sum()


@pytest.mark.parametrize("regularization", [0.0, 0.05])
def test_the_stacked_solve_is_each_problems_constrained_solve(regularization: float) -> None:
    rng = np.random.default_rng(3)
    joints, mus = [], []
    for _ in range(200):
        k = 4
        confusion = np.eye(k) * rng.uniform(0.3, 0.9) + rng.uniform(0, 0.2, (k, k))
        joints.append(confusion / confusion.sum())
        # Some windows' shares no class mix gives: their unconstrained w has a negative weight.
        mus.append(rng.dirichlet(np.full(k, rng.choice([0.3, 30.0]))))
    # A confusion whose columns are equal: no unique least-squares solution.
    joints[0] = np.full((4, 4), 1 / 16)
    joint, mu = np.stack(joints), np.stack(mus)
    priors = np.full(4, 0.25)
    stacked = solve_weights_stacked(joint, priors, mu, regularization)
    each = np.stack(
        [solve_weights(j, priors, m, regularization) for j, m in zip(joint, mu, strict=True)]
    )
    assert (stacked >= 0).all() and np.allclose(stacked @ priors, 1.0)
    # Both are minima of the same problem: equal where it has one (SciPy's NNLS to its tolerance);
    # without the ridge, the one without a unique minimum is left to NNLS itself.
    np.testing.assert_allclose(stacked, each, atol=1e-7)
    infeasible = [
        np.linalg.lstsq(j, m, rcond=None)[0].min() < 0 for j, m in zip(joint, mu, strict=True)
    ]
    assert 10 < sum(infeasible) < 190


def test_intervals_cover_the_true_priors_at_their_confidence() -> None:
    """400 fresh references and windows: both samples' errors are in the interval."""
    rng = np.random.default_rng(7)
    true = np.array([0.6, 0.3, 0.1])
    covered = np.zeros(3)
    runs = 400
    for _ in range(runs):
        predictions, labels = _sample(rng, REFERENCE_PRIORS, 1000)
        window, _ = _sample(rng, true, 500)
        estimate = LabelShift().fit(predictions, labels).estimate(window)
        assert isinstance(estimate, PriorEstimate)
        covered += (estimate.ci_low <= true) & (true <= estimate.ci_high)
    # Binomial(400, 0.95): 0.95 +- 3 sd is [0.917, 0.983].
    assert np.all(covered / runs >= 0.915), covered / runs
    assert np.all(covered / runs <= 0.985), covered / runs


def test_unchanged_priors_alarm_at_alpha_and_a_shift_is_found() -> None:
    rng = np.random.default_rng(11)
    alarms = found = 0
    runs = 300
    for _ in range(runs):
        predictions, labels = _sample(rng, REFERENCE_PRIORS, 1000)
        detector = LabelShift(min_total_variation=0.0).fit(predictions, labels)
        window, _ = _sample(rng, REFERENCE_PRIORS, 500)
        alarms += detector.run(window).decision == "alert"
        shifted, _ = _sample(rng, np.array([0.15, 0.35, 0.5]), 500)
        found += detector.run(shifted).decision == "alert"
    # Binomial(300, 0.05): P(X > 25) < 0.01.
    assert alarms <= 25, alarms
    assert found == runs


def test_digits_priors_within_005_l1_of_the_windows_true_shares(
    digits: tuple[np.ndarray, np.ndarray],
) -> None:
    x, y = digits
    rng = np.random.default_rng(3)
    order = rng.permutation(len(y))
    train, reference, pool = order[:500], order[500:1100], order[1100:]
    predicted = SVC(gamma=0.001).fit(x[train], y[train]).predict(x)
    detector = LabelShift().fit(predicted[reference], y[reference])
    errors = []
    for _ in range(30):
        classes = rng.choice(10, 1000, p=rng.dirichlet(np.full(10, 2.0)))
        rows = np.array([rng.choice(pool[y[pool] == c]) for c in classes])
        estimate = detector.estimate(predicted[rows])
        assert isinstance(estimate, PriorEstimate)
        errors.append(np.abs(estimate.priors - np.bincount(y[rows], minlength=10) / 1000).sum())
    assert float(np.mean(errors)) <= 0.05, np.mean(errors)


def test_fit_from_a_confusion_matrix_is_fit_from_rows(rng: np.random.Generator) -> None:
    predictions, labels = _sample(rng, REFERENCE_PRIORS, 800)
    names = np.array(["a", "b", "c"])
    stats = ClassificationStats(classes=names).update(names[labels], names[predictions])
    window = names[_sample(rng, np.array([0.2, 0.2, 0.6]), 300)[0]]
    from_rows = LabelShift().fit(names[predictions], names[labels]).run(window)
    from_stats = LabelShift().fit(stats).run(window)
    assert from_rows.to_dict() == from_stats.to_dict()
    # Counts are a window too.
    counts = {c: int((window == c).sum()) for c in names}
    assert LabelShift().fit(stats).run(counts).to_dict() == from_rows.to_dict()
    per_class = {f.feature: f for f in from_rows.features}
    assert set(per_class) == {"a", "b", "c"}
    assert per_class["c"].details["weight"] == pytest.approx(
        per_class["c"].details["prior"] / per_class["c"].details["reference_prior"]
    )


def test_windows_it_cannot_judge_and_bad_input(rng: np.random.Generator) -> None:
    predictions, labels = _sample(rng, REFERENCE_PRIORS, 500)
    detector = create("label_shift").fit(predictions, labels)
    small = detector.run(predictions[:50])
    assert small.decision == "not_enough_data" and "at least 100" in small.message
    with pytest.raises(ValueError, match="one class"):
        LabelShift().fit([0, 1, 1], [1, 1, 1])
    with pytest.raises(ValueError, match="aligned"):
        LabelShift().fit([0, 1], [1])
    with pytest.raises(ValueError, match="predicted classes and their labels"):
        LabelShift().fit([0, 1])
    with pytest.raises(ValueError, match="whole numbers of rows"):
        detector.run({"0": -3})
    with pytest.raises(ValueError, match="alpha must be between 0 and 1"):
        LabelShift(alpha=2.0).fit(predictions, labels)
    # A class the reference never predicted counts against every class mix.
    unseen = detector.run(np.array(["9"] * 200 + ["0"] * 200, dtype=object))
    assert "9" in unseen.details["predicted_classes"]


def test_weight_draws_spread_as_the_delta_method_says(rng: np.random.Generator) -> None:
    # The parametric bootstrap of both inputs and the delta method's Cov(p) measure one error.
    predictions, labels = _sample(rng, REFERENCE_PRIORS, 2000)
    window, _ = _sample(rng, np.array([0.2, 0.3, 0.5]), 1000)
    detector = LabelShift().fit(predictions, labels)
    estimate = detector.estimate(window)
    assert isinstance(estimate, PriorEstimate)
    draws = detector.weight_draws(estimate, 2000, seed=3)
    assert draws.shape == (2000, 3)
    priors = draws * estimate.reference_priors
    np.testing.assert_allclose(priors.sum(axis=1), 1.0)
    np.testing.assert_allclose(priors.mean(axis=0), estimate.priors, atol=0.01)
    np.testing.assert_allclose(priors.std(axis=0), estimate.standard_errors, rtol=0.15)
    point, by_class = detector.class_weights(estimate, 50, seed=3)
    assert point == {c: estimate.weight_of(c) for c in estimate.classes}
    np.testing.assert_array_equal(
        np.column_stack([by_class[c] for c in "012"]), detector.weight_draws(estimate, 50, seed=3)
    )
