"""Correlation drift: a change in how two numeric features move together.

A change of the correlation of one pair among many features leaves every marginal distribution
as it was, so per-feature tests cannot see it, and a kernel test on all the features at once
dilutes it (MMD at its defaults found a 0 -> 0.6 change of one pair among 25 features in 5% of
1,000-row windows). This test looks at each pair directly.

Each numeric feature is mapped to normal scores through the reference's empirical distribution
(so skewed or bimodal features count as much as normal ones and one extreme value cannot make a
correlation), and every pair's correlation in the window is compared with the reference's on
Fisher's z scale. The null variance of each pair's correlation comes from the reference's
fourth moments (the correlation's influence function, ``z_i z_j - r (z_i^2 + z_j^2) / 2``), not
from the normal-theory ``1 / (n - 3)``, so it holds when the dependence is not Gaussian. The
normal-score map is fitted on one half of the reference and the correlations and their
variances are taken on the other half: rows the map was fitted on would be scored as exactly
normal, which new rows never are.

The window's p-value is the smallest pair's, Bonferroni-corrected over the pairs; a pair fails
when its corrected p-value is under ``alpha`` and its correlation moved by ``min_change`` or
more (the effect-size gate: big windows find tiny changes significant).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from scipy.special import ndtr, ndtri

from inferwatch.collector.detectors import stats
from inferwatch.collector.detectors.base import Detector
from inferwatch.collector.detectors.dataset import as_dataset
from inferwatch.collector.detectors.params import AtLeastTwo, Count, Rate, Seed, Share
from inferwatch.collector.detectors.result import Decision, DetectionResult, FeatureResult

# Pairs named in a message; the features hold every failing one.
MESSAGE_PAIRS = 3
# Correlations this close to +-1 are clipped before Fisher's z (atanh(1) is infinite).
MAX_ABS_CORRELATION = 0.999
# A feature is paired only if at least this share of the reference's rows is off its most
# common value: a pixel lit in 2 of 250 rows gives a correlation of 1 with its neighbour and a
# variance estimate of nothing (every clean window of digits "drifted" without this rule).
MIN_VARYING_SHARE = 0.1


class CorrelationDrift(Detector):
    """Per-pair correlation changes of the numeric features, corrected over the pairs.

    Parameters
    ----------
    alpha: false-alarm rate per window, all pairs together (Bonferroni).
    min_change: the effect-size gate: a pair fails only if its correlation moved this much.
    min_samples: fewer complete window rows than this -> "not_enough_data".
    max_features: at most this many numeric features (the first ones) are paired, which bounds
        the cost (pairs grow with the square of the features); wider inputs are better served by
        ``reconstruction_drift``.
    max_reference_rows: at most this many reference rows are used (a uniform sample).
    """

    name = "correlation_drift"

    def __init__(
        self,
        alpha: Rate = 0.05,
        min_change: Share = 0.1,
        min_samples: AtLeastTwo = 100,
        max_features: AtLeastTwo = 100,
        max_reference_rows: Count = 20_000,
        random_state: Seed = 0,
    ) -> None:
        self.alpha = alpha
        self.min_change = min_change
        self.min_samples = min_samples
        self.max_features = max_features
        self.max_reference_rows = max_reference_rows
        self.random_state = random_state
        self.features_: tuple[str, ...] | None = None
        self.sorted_: np.ndarray | None = None
        self.correlation_: np.ndarray | None = None
        self.variance_: np.ndarray | None = None
        self.reference_rows_: int = 0

    def fit(self, reference: Any, *, feature_names: Sequence[str] | None = None) -> Self:
        self._validate_params()
        data = as_dataset(reference, feature_names=feature_names, what="reference")
        # A feature (nearly) constant in the reference has no correlation to compare with.
        varying = [
            j
            for j in range(data.numeric.shape[1])
            if _varying_share(data.numeric[:, j]) >= MIN_VARYING_SHARE
        ][: self.max_features]
        names = tuple(data.numeric_names[int(j)] for j in varying)
        if len(names) < 2:
            raise ValueError(
                f"the reference has {len(names)} numeric feature(s); correlation drift needs 2+"
            )
        matrix = _complete_rows(data.numeric[:, varying])
        rng = np.random.default_rng(self.random_state)
        if matrix.shape[0] > self.max_reference_rows:
            matrix = matrix[rng.choice(matrix.shape[0], self.max_reference_rows, replace=False)]
        if matrix.shape[0] < 2 * self.min_samples:
            raise ValueError(
                f"the reference has {matrix.shape[0]} complete rows; correlation drift needs "
                f"{2 * self.min_samples} (twice min_samples: half fits the map, half is compared)"
            )
        order = rng.permutation(matrix.shape[0])
        half = matrix.shape[0] // 2
        self.sorted_ = np.sort(matrix[order[:half]], axis=0)
        scores = self._normal_scores(matrix[order[half:]])
        self.correlation_, self.variance_ = _correlation_and_variance(scores)
        self.features_ = tuple(names)
        self.reference_rows_ = int(matrix.shape[0] - half)
        return self

    def run(self, window: Any) -> DetectionResult:
        self._check_fitted("features_", "sorted_", "correlation_", "variance_")
        assert self.features_ is not None and self.correlation_ is not None
        assert self.variance_ is not None
        data = as_dataset(window, feature_names=None, what="window")
        missing = [name for name in self.features_ if name not in data.numeric_names]
        if missing:
            return DetectionResult.not_enough_data(
                self.name,
                f"the window lacks numeric feature(s) {', '.join(missing[:5])}",
                threshold=self.alpha,
            )
        columns = [data.numeric_names.index(name) for name in self.features_]
        matrix = _complete_rows(data.numeric[:, columns])
        rows = matrix.shape[0]
        if rows < self.min_samples:
            return DetectionResult.not_enough_data(
                self.name,
                f"{rows} complete rows in the window; correlation drift needs {self.min_samples}",
                threshold=self.alpha,
            )
        observed, _ = _correlation_and_variance(self._normal_scores(matrix))
        upper = np.triu_indices(len(self.features_), k=1)
        reference = self.correlation_[upper]
        found = observed[upper]
        # Fisher's z of each pair's correlation, its delta-method variance from the reference.
        r0 = np.clip(reference, -MAX_ABS_CORRELATION, MAX_ABS_CORRELATION)
        r1 = np.clip(found, -MAX_ABS_CORRELATION, MAX_ABS_CORRELATION)
        scale = self.variance_[upper] / (1.0 - r0**2) ** 2
        se = np.sqrt(np.maximum(scale, 1e-12) * (1.0 / rows + 1.0 / self.reference_rows_))
        z = (np.arctanh(r1) - np.arctanh(r0)) / se
        raw = np.minimum(1.0, 2.0 * ndtr(-np.abs(z)))
        pairs = raw.size
        adjusted = np.minimum(1.0, raw * pairs)
        change = found - reference
        failing = (adjusted < self.alpha) & (np.abs(change) >= self.min_change)
        p = float(adjusted.min())
        score = float(np.abs(change).max())
        order = np.argsort(raw, kind="stable")
        features = tuple(
            self._pair(int(k), upper, reference, found, raw, adjusted, rows)
            for k in order
            if failing[k]
        )
        drift = bool(failing.any())
        if drift:
            shown = "; ".join(f.message for f in features[:MESSAGE_PAIRS])
            more = len(features) - MESSAGE_PAIRS
            message = f"correlation changed for {len(features)} of {pairs} pairs: {shown}" + (
                f"; and {more} more" if more > 0 else ""
            )
        else:
            strongest = int(order[0])
            message = (
                f"no correlation drift among {pairs} pairs: the largest change is "
                f"{score:.2f} (gate {self.min_change:g}), the smallest {stats.format_p(p)} "
                f"(pair {self._names(strongest, upper)})"
            )
        return DetectionResult(
            self.name,
            Decision.ALERT if drift else Decision.OK,
            score,
            p,
            self.alpha,
            message,
            features=features,
            details={
                "alpha": self.alpha,
                "min_change": self.min_change,
                "pairs": pairs,
                "features_paired": len(self.features_),
                "reference_rows_used": self.reference_rows_,
                "window_rows_used": rows,
            },
        )

    def _normal_scores(self, matrix: np.ndarray) -> np.ndarray:
        """Each column through the reference half's empirical CDF, then the normal quantile."""
        assert self.sorted_ is not None
        n = self.sorted_.shape[0]
        ranks = np.empty_like(matrix)
        for j in range(matrix.shape[1]):
            left = np.searchsorted(self.sorted_[:, j], matrix[:, j], side="left")
            right = np.searchsorted(self.sorted_[:, j], matrix[:, j], side="right")
            ranks[:, j] = (left + right) / 2.0
        # Mid-ranks kept off 0 and 1, so values beyond the reference stay finite.
        return ndtri(np.clip(ranks, 0.5, n - 0.5) / n)

    def _names(self, k: int, upper: tuple[np.ndarray, np.ndarray]) -> str:
        assert self.features_ is not None
        return f"{self.features_[upper[0][k]]} ~ {self.features_[upper[1][k]]}"

    def _pair(
        self,
        k: int,
        upper: tuple[np.ndarray, np.ndarray],
        reference: np.ndarray,
        found: np.ndarray,
        raw: np.ndarray,
        adjusted: np.ndarray,
        rows: int,
    ) -> FeatureResult:
        pair = self._names(k, upper)
        moved = float(found[k] - reference[k])
        return FeatureResult(
            pair,
            "fisher_z",
            moved,
            float(raw[k]),
            float(adjusted[k]),
            {"correlation_change": moved},
            Decision.ALERT,
            f"{pair} {reference[k]:.2f} -> {found[k]:.2f} ({stats.format_p(float(adjusted[k]))})",
            n_reference=self.reference_rows_,
            n_window=rows,
            details={
                "reference_correlation": float(reference[k]),
                "window_correlation": float(found[k]),
            },
            threshold=self.alpha,
        )


def _varying_share(column: np.ndarray) -> float:
    """The share of the finite values that differ from the most common one."""
    finite = column[np.isfinite(column)]
    if finite.size == 0:
        return 0.0
    _, counts = np.unique(finite, return_counts=True)
    return 1.0 - float(counts.max()) / finite.size


def _complete_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.isfinite(matrix).all(axis=1)]


def _correlation_and_variance(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlations of the columns and the variance of each one's influence function.

    With standardised columns z, the influence of a row on r_ij is
    ``z_i z_j - r_ij (z_i^2 + z_j^2) / 2``; its variance expands into fourth-moment matrices, so
    every pair costs two matrix products, not a pass over the rows each.
    """
    n = scores.shape[0]
    sd = scores.std(axis=0)
    z = (scores - scores.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    r = (z.T @ z) / n
    z2 = z * z
    m22 = (z2.T @ z2) / n
    m31 = ((z2 * z).T @ z) / n  # E[z_i^3 z_j]
    m4 = np.diag(m22)
    variance = m22 - r * (m31 + m31.T) + (r * r / 4.0) * (m4[:, None] + 2.0 * m22 + m4[None, :])
    return r, np.maximum(variance, 0.0)
