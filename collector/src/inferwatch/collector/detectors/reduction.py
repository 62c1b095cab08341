"""Representations fitted on the reference: an encoder to a numeric matrix, PCA or random
projection for wide data, PCA whitening for outlier detectors that split on one axis at a time,
and PCA reconstruction error as a drift score of its own.

``Encoder`` standardises numeric features with the reference's mean and sd (missing -> the
mean, i.e. 0) and one-hot encodes categorical ones on the reference's most frequent categories,
so multivariate tests, classifiers and outlier detectors see one float matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np
from scipy.stats import mannwhitneyu
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.random_projection import GaussianRandomProjection

from inferwatch.collector.detectors import stats
from inferwatch.collector.detectors.base import Detector
from inferwatch.collector.detectors.dataset import Dataset, align, as_dataset
from inferwatch.collector.detectors.params import AtLeastTwo, Count, Rate, Seed
from inferwatch.collector.detectors.result import Decision, DetectionResult

Method = Literal["pca", "random"]
# Wider encoded data than this is reduced by default before kernel / classifier tests.
AUTO_REDUCE_WIDTH = 50
AUTO_COMPONENTS = 32
# Reconstruction drift: half of the reference fits the PCA, the other half is the null.
MIN_REFERENCE_ROWS = 20


class Encoder:
    """Reference-standardised numbers plus one-hot categories, as one float64 matrix."""

    def __init__(self, max_categories: int = 20) -> None:
        self.max_categories = max_categories
        self.numeric_names: tuple[str, ...] = ()
        self.categories: dict[str, tuple[str, ...]] = {}
        self.mean: np.ndarray = np.empty(0)
        self.scale: np.ndarray = np.empty(0)

    def fit(self, data: Dataset) -> Self:
        self.numeric_names = data.numeric_names
        with np.errstate(all="ignore"):
            self.mean = (
                np.nan_to_num(np.nanmean(data.numeric, axis=0))
                if data.rows
                else np.zeros(len(data.numeric_names))
            )
            sd = np.nan_to_num(np.nanstd(data.numeric, axis=0))
        self.scale = np.where(sd > 0, sd, 1.0)
        self.categories = {}
        for column in data.categorical:
            counts = np.bincount(column.codes[column.codes >= 0], minlength=len(column.categories))
            top = np.argsort(-counts, kind="stable")[: self.max_categories]
            self.categories[column.name] = tuple(column.categories[i] for i in top if counts[i])
        return self

    @property
    def names(self) -> tuple[str, ...]:
        onehot = (f"{n}={c}" for n, cats in self.categories.items() for c in cats)
        return self.numeric_names + tuple(onehot)

    def transform(self, data: Dataset) -> np.ndarray:
        data = align(data, self.numeric_names, list(self.categories))
        numeric = (data.numeric - self.mean) / self.scale
        numeric = np.where(np.isfinite(numeric), numeric, 0.0)
        blocks = [numeric]
        for column in data.categorical:
            wanted = self.categories[column.name]
            position = {c: j for j, c in enumerate(wanted)}
            lookup = np.array([position.get(c, -1) for c in column.categories] + [-1])
            # Codes of -1 (missing) index the trailing -1: no category set.
            slots = lookup[column.codes]
            onehot = np.zeros((data.rows, len(wanted)))
            hit = slots >= 0
            onehot[np.flatnonzero(hit), slots[hit]] = 1.0
            blocks.append(onehot)
        return np.hstack(blocks)


class Whitening(TransformerMixin, BaseEstimator):
    """Rotate onto the reference's principal axes and scale each to unit variance.

    A row that breaks the features' correlations (each value plausible, the combination not)
    then sits far out along some axis, where a detector that splits one feature at a time (an
    isolation forest) can isolate it. On breast_cancer with 20 rows moved 5 sd on 5 of 30
    features, an isolation forest's ROC AUC goes from 0.88 to 0.99 and its recall at a 1%
    threshold from 0.01 to 0.93. Directions of (nearly) no variance are not dropped but scaled
    by at least ``floor`` times the largest variance, so a row that breaks an exact relation
    of the reference stands out instead of vanishing, and rounding noise is not magnified.
    """

    def __init__(self, floor: float = 1e-6) -> None:
        self.floor = floor

    def fit(self, x: np.ndarray, y: Any = None) -> Whitening:
        self.pca_ = PCA(svd_solver="covariance_eigh").fit(x)
        variance = self.pca_.explained_variance_
        smallest = max(float(variance.max(initial=0.0)) * self.floor, np.finfo(np.float64).tiny)
        self.scale_ = np.sqrt(np.maximum(variance, smallest))
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.pca_.transform(x) / self.scale_)


class Reduction:
    """PCA (default) or Gaussian random projection, fitted on the reference."""

    def __init__(
        self,
        method: Method = "pca",
        n_components: int | float | None = None,
        random_state: int = 0,
    ) -> None:
        if method not in ("pca", "random"):
            raise ValueError(f"method must be 'pca' or 'random', got {method!r}")
        self.method = method
        self.n_components = n_components
        self.random_state = random_state
        self.model_: Any = None

    def fit(self, matrix: np.ndarray) -> Self:
        width = matrix.shape[1]
        n = self.n_components
        if self.method == "pca":
            if n is None:
                n = 0.9  # components explaining 90% of the variance
            elif isinstance(n, int):
                n = min(n, width, matrix.shape[0])
            self.model_ = PCA(n_components=n, random_state=self.random_state).fit(matrix)
        else:
            k = int(n) if n is not None else min(AUTO_COMPONENTS, width)
            self.model_ = GaussianRandomProjection(k, random_state=self.random_state).fit(matrix)
        return self

    @property
    def components(self) -> int:
        if self.model_ is None:
            raise RuntimeError("Reduction is not fitted")
        return int(self.model_.n_components_)

    def transform(self, matrix: np.ndarray) -> np.ndarray:
        if self.model_ is None:
            raise RuntimeError("Reduction is not fitted: call fit(reference) first")
        return np.asarray(self.model_.transform(matrix))

    def reconstruction_error(self, matrix: np.ndarray) -> np.ndarray:
        """Per-row squared distance to the PCA subspace (PCA only)."""
        if self.method != "pca":
            raise ValueError("reconstruction error needs method='pca'")
        restored = self.model_.inverse_transform(self.model_.transform(matrix))
        return np.asarray(np.square(matrix - restored).sum(axis=1))


def auto_reduction(
    reduction: Method | Reduction | Literal["auto"] | None, width: int, random_state: int
) -> Reduction | None:
    """``"auto"``: PCA to at most 32 components when the encoded data is wider than 50."""
    if isinstance(reduction, Reduction):
        return reduction
    if reduction == "auto":
        if width <= AUTO_REDUCE_WIDTH:
            return None
        return Reduction("pca", AUTO_COMPONENTS, random_state)
    if reduction is None:
        return None
    return Reduction(reduction, None, random_state)


class ReconstructionDrift(Detector):
    """PCA reconstruction errors of the window's rows against the reference's, by a one-sided
    Mann-Whitney test.

    Catches changes off the reference's main directions (noise, new structure) that a
    low-dimensional projection hides. The encoder and the PCA are fitted on a random half of the
    reference and the other half's per-row errors are the null: a PCA fits the noise of the rows
    it was fitted on, so their errors are smaller than any new row's. The window is scored by
    the same PCA, so under no drift its rows and the held-out half are alike, and a rank test of
    the two sets of errors is exact whatever their distribution. A test of the mean error is
    not: a column that is almost constant in the reference (a pixel that is nearly always blank)
    gives the rare row that sets it an error hundreds of times the typical one, so the mean's
    tail is set by rows a reference of a few hundred may not hold. On digits (64 pixels, 400
    held-out rows, 1,000-row windows) a bootstrap null of the mean error alarmed on 25% of clean
    windows at alpha 5%. The score is the window's mean error; ``auc`` in the details is the
    chance that a window row's error exceeds a reference row's (0.5 under no drift).
    """

    name = "reconstruction_drift"

    def __init__(
        self,
        # Components kept: a count, or the share of the variance to explain.
        n_components: Count | Rate = 0.9,
        alpha: Rate = 0.05,
        min_samples: AtLeastTwo = 30,
        random_state: Seed = 0,
    ) -> None:
        self.n_components = n_components
        self.alpha = alpha
        self.min_samples = min_samples
        self.random_state = random_state
        self.encoder_: Encoder | None = None
        self.reduction_: Reduction | None = None
        self.reference_errors_: np.ndarray | None = None

    def fit(self, reference: Any, *, feature_names: Sequence[str] | None = None) -> Self:
        self._validate_params()
        data = as_dataset(reference, feature_names=feature_names, what="reference")
        if data.rows < MIN_REFERENCE_ROWS:
            raise ValueError(
                f"reference has {data.rows} rows; reconstruction drift needs "
                f"{MIN_REFERENCE_ROWS}+ (half to fit the PCA, half to compare)"
            )
        order = np.random.default_rng(self.random_state).permutation(data.rows)
        fitted_on, compared = data.take(order[: data.rows // 2]), data.take(order[data.rows // 2 :])
        self.encoder_ = Encoder().fit(fitted_on)
        self.reduction_ = Reduction("pca", self.n_components, self.random_state)
        self.reduction_.fit(self.encoder_.transform(fitted_on))
        self.reference_errors_ = self.reduction_.reconstruction_error(
            self.encoder_.transform(compared)
        )
        return self

    def run(self, window: Any) -> DetectionResult:
        self._check_fitted("encoder_", "reduction_", "reference_errors_")
        assert self.encoder_ is not None and self.reduction_ is not None
        assert self.reference_errors_ is not None
        data = as_dataset(window, what="window")
        if data.rows < self.min_samples:
            return DetectionResult.not_enough_data(
                self.name,
                f"{data.rows} rows in the window; reconstruction drift needs {self.min_samples}",
                threshold=self.alpha,
            )
        errors = self.reduction_.reconstruction_error(self.encoder_.transform(data))
        reference = self.reference_errors_
        test = mannwhitneyu(errors, reference, alternative="greater", method="asymptotic")
        p = float(test.pvalue)
        auc = float(test.statistic) / (errors.size * reference.size)
        observed, baseline = float(errors.mean()), float(reference.mean())
        ratio = observed / baseline if baseline > 0 else float("inf")
        drift = p < self.alpha
        verdict = "drifted" if drift else "did not drift"
        message = (
            f"the rows' structure {verdict}: mean PCA reconstruction error {observed:.3g}, "
            f"{ratio:.2f}x the reference's ({baseline:.3g}; {self.reduction_.components} "
            f"components of {len(self.encoder_.names)} columns); a window row's error exceeds a "
            f"reference row's in {auc:.1%} of pairs (Mann-Whitney {stats.format_p(p)})"
        )
        return DetectionResult(
            self.name,
            Decision.ALERT if drift else Decision.OK,
            observed,
            p,
            self.alpha,
            message,
            details={
                "alpha": self.alpha,
                "auc": auc,
                "reference_error": baseline,
                "ratio": ratio,
                "components": self.reduction_.components,
                "columns": len(self.encoder_.names),
                "n_reference": int(reference.size),
                "n_window": data.rows,
            },
        )
