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
    assert noisy.p_value == pytest.approx(1 / 1001)
    assert "reconstruction error" in noisy.message


def test_reconstruction_null_is_not_optimistic(
    digits: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
) -> None:
    reference, held_out = _split(digits, rng)
    detector = ReconstructionDrift().fit(reference)
    windows = [held_out[rng.choice(len(held_out), 100, replace=False)] for _ in range(40)]
    alarms = sum(detector.run(w).decision == "alert" for w in windows)
    assert alarms <= 6  # ~5% expected; an in-sample null would alarm on most windows


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
