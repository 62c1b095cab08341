from __future__ import annotations

import numpy as np
import pytest

from inferwatch.collector.detectors import MMDDrift, ReconstructionDrift, Reduction


def _split(
    digits: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    x, _ = digits
    order = rng.permutation(len(x))
    return x[order[:1200]], x[order[1200:]]


def test_reconstruction_error_flags_noise_on_digits_not_clean_digits(
    digits: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> None:
    reference, held_out = _split(digits, rng)
    detector = ReconstructionDrift().fit(reference)
    clean = detector.run(held_out[:300])
    noisy = detector.run(held_out[:300] + rng.normal(0, 2.0, size=(300, 64)))
    assert clean.decision == "ok"
    assert noisy.decision == "alert" and noisy.details["ratio"] > 1.2
    assert noisy.p_value is not None and noisy.p_value < 1e-6
    assert noisy.details["auc"] > 0.99 and clean.details["n_reference"] == 600
    assert "reconstruction error" in noisy.message


def test_reconstruction_null_is_not_optimistic(
    digits: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> None:
    reference, held_out = _split(digits, rng)
    detector = ReconstructionDrift().fit(reference)
    windows = [held_out[rng.choice(len(held_out), 100, replace=False)] for _ in range(40)]
    alarms = sum(detector.run(w).decision == "alert" for w in windows)
    assert alarms <= 6  # ~5% expected; an in-sample null would alarm on most windows


def wide(rng: np.random.Generator, loadings: np.ndarray, rows: int, off: float = 0.0) -> np.ndarray:
    """A 10-dimensional signal (``loadings``: 10 x width) plus unit noise; ``off`` adds a
    component of that sd along a direction the reference never varies in more than by noise."""
    signal = rng.normal(size=(rows, loadings.shape[0])) @ loadings
    x = signal + rng.normal(size=(rows, loadings.shape[1]))
    if off:
        direction = np.linalg.qr(rng.normal(size=(loadings.shape[1], 1)))[0][:, 0]
        x += off * rng.normal(size=(rows, 1)) * direction
    return x


@pytest.mark.parametrize("width", [64, 784])
def test_clean_wide_windows_fail_at_about_alpha(width: int) -> None:
    rng = np.random.default_rng(width)
    alarms = 0
    # Many references, few windows each: given one reference, how its held-out half happened
    # to fall moves every window's p-value alike (by design the level holds over references).
    for _ in range(20):
        loadings = rng.normal(0, 2.0, size=(10, width))
        detector = ReconstructionDrift().fit(wide(rng, loadings, 3000))
        for _ in range(10):
            alarms += detector.run(wide(rng, loadings, 1000)).decision == "alert"
    # 200 windows at alpha 5%: 10 expected; 18 is past the binomial's 99.5% quantile.
    assert alarms <= 18, alarms


def test_off_manifold_change_is_found() -> None:
    rng = np.random.default_rng(5)
    loadings = rng.normal(0, 2.0, size=(10, 784))
    detector = ReconstructionDrift().fit(wide(rng, loadings, 4000))
    for _ in range(10):
        # A new direction of sd 6: each of the 784 columns gains 0.2 sd of its noise, 0.03 sd
        # of its whole spread, where per-feature tests see nothing.
        found = detector.run(wide(rng, loadings, 500, off=6.0))
        assert found.decision == "alert", found.message
        assert found.details["ratio"] > 1.02


def test_the_null_holds_where_the_mean_error_is_heavy_tailed(
    digits: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> None:
    # Digits have pixels that are nearly always blank: standardised, the rare image that inks
    # one has a huge error. Fresh splits of 797 reference / 1,000 window images: a bootstrap
    # null of the mean error alarmed on a quarter of them.
    x, _ = digits
    alarms = 0
    for _ in range(40):
        order = rng.permutation(len(x))
        reference, window = x[order[:797]], x[order[797:]]
        alarms += ReconstructionDrift().fit(reference).run(window).decision == "alert"
    assert alarms <= 6, alarms  # 2 expected


def test_too_few_rows_are_said() -> None:
    x = np.random.default_rng(1).normal(size=(19, 60))
    with pytest.raises(ValueError, match="half to fit the PCA, half to compare"):
        ReconstructionDrift().fit(x)
    detector = ReconstructionDrift().fit(np.random.default_rng(2).normal(size=(400, 60)))
    assert detector.run(x).decision == "not_enough_data"


@pytest.mark.parametrize("reduction", ["auto", "pca", "random"])
def test_mmd_on_64_dimensions_with_a_reduction(
    digits: tuple[np.ndarray, np.ndarray], rng: np.random.Generator, reduction: str
) -> None:
    reference, held_out = _split(digits, rng)
    detector = MMDDrift(reduction=reduction).fit(reference)
    assert detector.representation_ is not None
    assert detector.representation_.reduction is not None  # 64 columns > 50: reduced
    noisy = detector.run(held_out[:300] + rng.normal(0, 2.0, size=(300, 64)))
    assert noisy.decision == "alert"
    assert detector.run(held_out[:300]).decision == "ok"


def test_reduction_options() -> None:
    x = np.random.default_rng(0).normal(size=(200, 100))
    assert Reduction("random", 16).fit(x).transform(x).shape == (200, 16)
    assert Reduction("pca", 10).fit(x).reconstruction_error(x).shape == (200,)
    with pytest.raises(ValueError, match="reconstruction error needs method='pca'"):
        Reduction("random", 8).fit(x).reconstruction_error(x)
    with pytest.raises(ValueError, match="method must be 'pca' or 'random'"):
        Reduction("umap")  # type: ignore[arg-type]
