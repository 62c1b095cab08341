"""Correlation drift: its statistics against numpy's, its level on clean windows, its power on a
change of one pair's correlation that leaves every marginal as it was, and its effect gate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from inferwatch.collector.detectors import CorrelationDrift, Dataset
from inferwatch.collector.detectors.correlation import _correlation_and_variance

FEATURES = 12
NAMES = tuple(f"x{j}" for j in range(FEATURES))


def draw(rng: np.random.Generator, rows: int, rho: float = 0.0) -> Dataset:
    """Normal, lognormal and bimodal columns, independent; ``x2`` and ``x3`` correlated by
    ``rho`` with both still standard normal."""
    x = np.empty((rows, FEATURES))
    x[:, :4] = rng.normal(size=(rows, 4))
    x[:, 4:8] = rng.lognormal(0.0, 0.5, size=(rows, 4))
    x[:, 8:] = np.where(rng.integers(0, 2, size=(rows, 4)), 2.0, -2.0) + rng.normal(size=(rows, 4))
    x[:, 3] = rho * x[:, 2] + np.sqrt(1 - rho**2) * x[:, 3]
    return Dataset(x, NAMES)


def test_correlations_and_their_variance_match_numpy() -> None:
    rng = np.random.default_rng(0)
    scores = rng.multivariate_normal([0, 0, 0], [[1, 0.5, 0], [0.5, 1, 0.2], [0, 0.2, 1]], 4000)
    scores[:, 2] = np.exp(scores[:, 2])
    r, variance = _correlation_and_variance(scores)
    np.testing.assert_allclose(r, np.corrcoef(scores, rowvar=False), atol=1e-12)
    z = (scores - scores.mean(axis=0)) / scores.std(axis=0)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        influence = z[:, i] * z[:, j] - r[i, j] / 2 * (z[:, i] ** 2 + z[:, j] ** 2)
        assert variance[i, j] == pytest.approx(influence.var(), rel=1e-9)
    # For a bivariate normal the influence variance is (1 - rho^2)^2: 0.5625 at rho 0.5.
    assert variance[0, 1] == pytest.approx(0.5625, abs=0.05)


def test_clean_windows_fail_at_about_alpha() -> None:
    rng = np.random.default_rng(1)
    detector = CorrelationDrift(alpha=0.05).fit(draw(rng, 10_000))
    windows = 400
    failed = sum(detector.run(draw(rng, 1_000)).alerting for _ in range(windows))
    # At the level: a binomial test against 0.05 does not reject (it would at 0.09).
    assert stats.binomtest(failed, windows, 0.05, alternative="greater").pvalue > 0.01


def test_a_change_of_one_pair_is_found_and_named() -> None:
    rng = np.random.default_rng(2)
    detector = CorrelationDrift().fit(draw(rng, 10_000))
    results = [detector.run(draw(rng, 1_000, rho=0.5)) for _ in range(40)]
    assert all(result.alerting for result in results)
    assert all(result.features[0].feature == "x2 ~ x3" for result in results)
    # Other pairs are named only by chance, at about alpha a window.
    assert sum(len(result.features) > 1 for result in results) <= 5
    found = results[0].features[0]
    assert found.details["window_correlation"] == pytest.approx(0.5, abs=0.1)
    assert (
        "x2 ~ x3" in results[0].message and f"of {FEATURES * 11 // 2} pairs" in results[0].message
    )


def test_a_tiny_change_in_a_huge_window_is_significant_but_gated() -> None:
    rng = np.random.default_rng(3)
    detector = CorrelationDrift(min_change=0.1).fit(draw(rng, 20_000))
    found = detector.run(draw(rng, 200_000, rho=0.08))
    assert found.p_value is not None and found.p_value < 1e-6
    assert not found.alerting and "gate 0.1" in found.message
    assert CorrelationDrift(min_change=0.02).fit(draw(rng, 20_000)).run(draw(rng, 200_000, 0.08))


def test_too_little_to_pair_is_said() -> None:
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="numeric feature"):
        CorrelationDrift().fit(Dataset(rng.normal(size=(500, 1)), ("only",)))
    with pytest.raises(ValueError, match="complete rows"):
        CorrelationDrift().fit(draw(rng, 150))
    detector = CorrelationDrift().fit(draw(rng, 2_000))
    assert detector.run(draw(rng, 50)).decision == "not_enough_data"
    # A constant reference feature is left out of the pairs rather than compared.
    constant = draw(rng, 2_000)
    constant.numeric[:, 0] = 1.0
    assert CorrelationDrift().fit(constant).features_ == NAMES[1:]


def test_a_rarely_varying_feature_is_not_paired() -> None:
    rng = np.random.default_rng(5)
    reference = draw(rng, 2_000)
    # Lit in 2% of the rows: its correlations rest on a few rows and would fail clean windows.
    reference.numeric[:, 0] = np.where(rng.random(2_000) < 0.02, 16.0, 0.0)
    detector = CorrelationDrift().fit(reference)
    assert detector.features_ == NAMES[1:]
