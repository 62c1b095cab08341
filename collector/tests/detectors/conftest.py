"""Shared data for the detector tests: fixed seeds, scikit-learn's bundled data sets."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> Iterator[None]:
    # The box is shared: BLAS / OpenMP thread pools fighting over 2 cores slow everything.
    with threadpool_limits(1):
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_digits()
    return data.data.astype(np.float64), data.target


@pytest.fixture(scope="session")
def breast_cancer() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    data = load_breast_cancer()
    return data.data, data.target, tuple(str(n) for n in data.feature_names)


Correlated = Callable[[np.random.Generator, int, int, float], np.ndarray]


@pytest.fixture(scope="session")
def correlated() -> Correlated:
    return _correlated


def _correlated(rng: np.random.Generator, rows: int, features: int, rho: float) -> np.ndarray:
    """Standard normal features whose pairs (0, 1), (2, 3), ... have correlation ``rho``.

    Every marginal stays N(0, 1) whatever rho is: only the joint distribution changes.
    """
    z = rng.normal(size=(rows, features))
    for k in range(0, features - 1, 2):
        z[:, k + 1] = rho * z[:, k] + np.sqrt(1 - rho**2) * z[:, k + 1]
    return z
