"""Multivariate drift: kernel MMD with a permutation test, and a classifier two-sample test.

Both look at the rows jointly, so they catch changes the per-feature tests cannot see, such as
a change of correlation that leaves every marginal distribution as it was. Both work on the
``Encoder``'s matrix (reference-standardised numbers, one-hot categories), reduced by PCA when
wider than 50 columns, and subsample to a bounded number of rows so the cost per window is
bounded too (the message says when rows were subsampled).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np
from scipy.stats import binomtest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit

from inferwatch.collector.detectors import stats
from inferwatch.collector.detectors.base import Detector
from inferwatch.collector.detectors.dataset import as_dataset
from inferwatch.collector.detectors.params import AtLeastTwo, Count, Rate, Seed
from inferwatch.collector.detectors.reduction import Encoder, Method, Reduction, auto_reduction
from inferwatch.collector.detectors.result import Decision, DetectionResult
from inferwatch.collector.detectors.threads import limited_threads

ReductionSpec = Method | Reduction | Literal["auto"] | None


class _Representation:
    """Encoder + optional reduction, fitted on the reference."""

    def __init__(self, reduction: ReductionSpec, random_state: int) -> None:
        self.reduction_spec = reduction
        self.random_state = random_state
        self.encoder = Encoder()
        self.reduction: Reduction | None = None

    def fit(
        self, reference: Any, feature_names: Sequence[str] | None, keep: int
    ) -> tuple[np.ndarray, int]:
        """(up to ``keep`` encoded reference rows for the test, how many rows they came from).

        With a reduction, the encoder and the reduction are fitted on a random half of the
        reference and only the other half is compared: a projection fitted on rows fits their
        noise, so those rows sit closer to its subspace than any new row does, and the test
        sees that difference. (784 columns, a 10-dimensional signal plus noise, 3,000 reference
        rows, PCA to 32 components: the classifier test alarmed on 40 of 40 clean windows of
        800 rows, held-out AUC 0.59-0.68, with the projection fitted on the compared rows; on 1
        of 40, AUC 0.46-0.54, with this split, still catching a 0.5 sd shift in 10 of 10.)
        Without one, the encoder's per-column mean and sd come from the whole reference.
        """
        data = as_dataset(reference, feature_names=feature_names, what="reference")
        if data.rows < 10:
            raise ValueError(f"reference has {data.rows} rows; a multivariate test needs 10+")
        width = len(Encoder(self.encoder.max_categories).fit(data).names)
        self.reduction = auto_reduction(self.reduction_spec, width, self.random_state)
        rng = np.random.default_rng(self.random_state)
        if self.reduction is None:
            matrix = self.encoder.fit(data).transform(data)
            return _subsample(matrix, keep, rng), data.rows
        if data.rows < 20:
            raise ValueError(
                f"reference has {data.rows} rows; a reduced multivariate test needs 20+ (half "
                "to fit the reduction, half to compare)"
            )
        order = rng.permutation(data.rows)
        fitted_on, compared = data.take(order[: data.rows // 2]), data.take(order[data.rows // 2 :])
        self.reduction.fit(self.encoder.fit(fitted_on).transform(fitted_on))
        matrix = self.reduction.transform(self.encoder.transform(compared))
        return _subsample(matrix, keep, rng), compared.rows

    def transform(self, window: Any) -> np.ndarray:
        matrix = self.encoder.transform(as_dataset(window, what="window"))
        return matrix if self.reduction is None else self.reduction.transform(matrix)

    def describe(self) -> str:
        if self.reduction is None:
            return f"{len(self.encoder.names)} columns"
        return f"{self.reduction.method.upper()} to {self.reduction.components} components"


def _subsample(matrix: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    if matrix.shape[0] <= size:
        return matrix
    return matrix[rng.choice(matrix.shape[0], size, replace=False)]


class _PooledTest(Detector):
    """What the two multivariate tests share: reference rows drawn per window from a pool."""

    max_rows: int
    reference_pool: int

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.reference_pool < self.max_rows:
            raise ValueError(
                f"reference_pool ({self.reference_pool}) must be at least max_rows "
                f"({self.max_rows})"
            )


def _window_rng(random_state: int, matrix: np.ndarray) -> np.random.Generator:
    """A generator seeded by the window's content: the same window always gets the same draws
    (an evaluation repeated after late data is reproducible), different windows different ones."""
    digest = hashlib.blake2b(np.ascontiguousarray(matrix).tobytes(), digest_size=8).digest()
    return np.random.default_rng([random_state, int.from_bytes(digest, "big")])


class MMDDrift(_PooledTest):
    """Unbiased MMD^2 with Gaussian kernels (median heuristic), permutation test.

    The bandwidth is the median pairwise distance among reference rows, fixed at fit; the
    kernel is a mean of Gaussians at that bandwidth and four narrower ones (see
    ``mixture_kernel``), so both shifts and changes of correlation show. Each window pools at
    most ``max_rows`` of its rows with ``max_rows`` reference rows drawn afresh from a pool of
    ``reference_pool`` kept at fit; all ``n_permutations`` relabellings of the pooled rows are
    scored with one matrix product. p = (k + 1) / (n_permutations + 1).

    Why a fresh draw per window: the permutation test is exact over both samples, but with one
    fixed reference sample every window is compared with the same 500 rows, and how far those
    happen to sit from the population sets the false-alarm rate of all windows alike: over 8
    references it ranged from 0% to 11% at alpha 5% (150 windows each). Draws from a pool of
    10,000 rows bring every reference's rate close to alpha.
    """

    name = "mmd_drift"

    def __init__(
        self,
        alpha: Rate = 0.05,
        n_permutations: Count = 100,
        max_rows: Count = 500,
        reference_pool: Count = 10_000,
        min_samples: AtLeastTwo = 50,
        reduction: ReductionSpec = "auto",
        random_state: Seed = 0,
    ) -> None:
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.max_rows = max_rows
        self.reference_pool = reference_pool
        self.min_samples = min_samples
        self.reduction = reduction
        self.random_state = random_state
        self.representation_: _Representation | None = None
        self.reference_: np.ndarray | None = None
        self.reference_rows_: int = 0
        self.bandwidth_: float | None = None

    def fit(self, reference: Any, *, feature_names: Sequence[str] | None = None) -> Self:
        self._validate_params()
        self.representation_ = _Representation(self.reduction, self.random_state)
        self.reference_, self.reference_rows_ = self.representation_.fit(
            reference, feature_names, self.reference_pool
        )
        rng = np.random.default_rng(self.random_state)
        sample = _subsample(self.reference_, self.max_rows, rng)
        distances = np.sqrt(_squared_distances(sample, sample))
        upper = distances[np.triu_indices_from(distances, k=1)]
        median = float(np.median(upper))
        self.bandwidth_ = median if median > 0 else 1.0
        return self

    def run(self, window: Any) -> DetectionResult:
        self._check_fitted("representation_", "reference_", "bandwidth_")
        assert self.representation_ is not None and self.reference_ is not None
        assert self.bandwidth_ is not None
        matrix = self.representation_.transform(window)
        if matrix.shape[0] < self.min_samples:
            return DetectionResult.not_enough_data(
                self.name,
                f"{matrix.shape[0]} rows in the window; the MMD test needs {self.min_samples}",
                threshold=self.alpha,
            )
        rng = _window_rng(self.random_state, matrix)
        reference = _subsample(self.reference_, self.max_rows, rng)
        sample = _subsample(matrix, self.max_rows, rng)
        observed, null = mmd_permutation_test(
            reference, sample, self.bandwidth_, self.n_permutations, rng
        )
        p = stats.permutation_p_value(observed, null)
        exceed = int(np.count_nonzero(null >= observed))
        drift = p < self.alpha
        rows = f"{reference.shape[0]} reference + {sample.shape[0]} window rows"
        if self.reference_rows_ > reference.shape[0] or matrix.shape[0] > sample.shape[0]:
            rows += f" (subsampled from {self.reference_rows_:,} + {matrix.shape[0]:,} for speed)"
        verdict = "the joint distribution of the features drifted" if drift else "no joint drift"
        message = (
            f"{verdict}: MMD^2={observed:.4g}, {stats.format_p(p)} "
            f"({self.n_permutations} permutations; {rows}; "
            f"{self.representation_.describe()})"
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
                "permutations": self.n_permutations,
                "exceedances": exceed,
                "bandwidth": self.bandwidth_,
                "reference_rows_used": reference.shape[0],
                "window_rows_used": sample.shape[0],
            },
        )


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * a @ b.T
    return np.maximum(sq, 0.0)


# Kernel bandwidths as fractions of the median distance: 1, 1/sqrt(2), 1/2, 1/sqrt(8), 1/4. The
# median alone is too wide to see a change of correlation among 20 features (correlation 0.6 on
# 2 pairs, 500 + 500 rows: power 0.05 against 0.38 for this mixture over 40 windows; both 1.0
# on a 0.25 sd shift of 3 features); a narrow kernel alone loses power on mean shifts.
KERNEL_SCALES = 5


def mixture_kernel(squared_distances: np.ndarray, bandwidth: float) -> np.ndarray:
    """Mean of Gaussian kernels at ``bandwidth`` * 2^(-k/2), k = 0..4.

    exp(-d / (2 (b 2^(-k/2))^2)) is the base kernel raised to 2^k: one exp and four squarings,
    in place. float32: kernel values are in [0, 1] and the statistic's sums need no more.
    """
    power = np.multiply(squared_distances, -1.0 / (2.0 * bandwidth**2), dtype=np.float32)
    np.exp(power, out=power)
    total = power.copy()
    for _ in range(KERNEL_SCALES - 1):
        np.multiply(power, power, out=power)
        total += power
    total *= np.float32(1.0 / KERNEL_SCALES)
    return total


def mmd_permutation_test(
    reference: np.ndarray,
    window: np.ndarray,
    bandwidth: float,
    n_permutations: int,
    rng: np.random.Generator,
) -> tuple[float, np.ndarray]:
    """(observed unbiased MMD^2, MMD^2 of ``n_permutations`` random relabellings).

    With K the pooled kernel matrix and a the 0/1 indicator of the first group, the three
    kernel sums are a'Ka, a'K1 - a'Ka and 1'K1 - 2a'K1 + a'Ka; one product K @ A gives them for
    every relabelling at once.
    """
    pooled = np.vstack([reference, window]).astype(np.float32)
    n, m = pooled.shape[0], reference.shape[0]
    w = n - m
    kernel = mixture_kernel(_squared_distances(pooled, pooled), bandwidth)
    labels = np.zeros((n, n_permutations + 1), dtype=np.float32)
    labels[:m, 0] = 1.0  # column 0: the observed split
    for j in range(1, n_permutations + 1):
        labels[rng.permutation(n)[:m], j] = 1.0
    # Sums in float64: the statistic is a small difference of large sums.
    row_sums = kernel.sum(axis=1, dtype=np.float64)
    total = float(row_sums.sum())
    aka = np.einsum("ij,ij->j", labels, kernel @ labels, dtype=np.float64)
    ak1 = labels.T.astype(np.float64) @ row_sums
    kxx = aka - m  # the diagonal of a Gaussian kernel is 1
    kxy = ak1 - aka
    kyy = total - 2.0 * ak1 + aka - w
    mmd2 = kxx / (m * (m - 1)) + kyy / (w * (w - 1)) - 2.0 * kxy / (m * w)
    return float(mmd2[0]), mmd2[1:]


class ClassifierDrift(_PooledTest):
    """Can a classifier tell window rows from reference rows? Held-out AUC and a null.

    Equal numbers of reference and window rows (at most ``max_rows`` each) are labelled 0 and
    1 and split (stratified) into a training and a test half (``test_size``). ``estimator``
    (default: a histogram gradient-boosting classifier, which handles interactions such as a
    correlation change) learns on the first and predicts the second. Under no drift the test
    predictions are coin flips given the trained model: ``null="binomial"`` tests the count of
    correct test predictions against Binomial(n_test, 1/2) (exact up to being slightly
    conservative: the test labels are balanced); ``null="permutation"`` refits on
    ``n_permutations`` shuffled labellings and compares test AUCs, p = (k + 1) / (n + 1).
    As for MMD, each window draws its reference rows afresh from a pool of ``reference_pool``
    kept at fit, seeded by the window's content.
    Out-of-fold predictions from cross-validation are not used: they share training rows, are
    correlated, and made the binomial test alarm on 12% of unshifted windows at alpha 5%.
    ``n_threads`` caps the estimator's threads (None: the libraries' default).
    """

    name = "classifier_drift"

    def __init__(
        self,
        estimator: Any = None,
        alpha: Rate = 0.05,
        null: Literal["binomial", "permutation"] = "binomial",
        n_permutations: Count = 50,
        test_size: Rate = 0.5,
        max_rows: Count = 1000,
        reference_pool: Count = 10_000,
        min_samples: AtLeastTwo = 50,
        reduction: ReductionSpec = "auto",
        n_threads: Count | None = 1,
        random_state: Seed = 0,
    ) -> None:
        self.estimator = estimator
        self.alpha = alpha
        self.null = null
        self.n_permutations = n_permutations
        self.test_size = test_size
        self.max_rows = max_rows
        self.reference_pool = reference_pool
        self.min_samples = min_samples
        self.reduction = reduction
        self.n_threads = n_threads
        self.random_state = random_state
        self.representation_: _Representation | None = None
        self.reference_: np.ndarray | None = None

    def fit(self, reference: Any, *, feature_names: Sequence[str] | None = None) -> Self:
        self._validate_params()
        self.representation_ = _Representation(self.reduction, self.random_state)
        self.reference_, _ = self.representation_.fit(reference, feature_names, self.reference_pool)
        return self

    def _estimator(self) -> Any:
        if self.estimator is not None:
            return clone(self.estimator)
        # Depth-3 trees see two- and three-way interactions (a correlation change) and fit
        # 1,000 rows in ~0.1 s; deeper or longer boosting bought no power in our trials.
        return HistGradientBoostingClassifier(
            max_iter=50,
            max_depth=3,
            learning_rate=0.2,
            early_stopping=False,
            random_state=self.random_state,
        )

    def _test_scores(
        self, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray
    ) -> np.ndarray:
        # One thread by default: on a shared 2-core box OpenMP's all-cores default made the
        # gradient boosting 8x slower (1.6 s against 0.2 s a window).
        with limited_threads(self.n_threads):
            model = self._estimator().fit(x[train], y[train])
            return np.asarray(model.predict_proba(x[test])[:, 1])

    def run(self, window: Any) -> DetectionResult:
        self._check_fitted("representation_", "reference_")
        assert self.representation_ is not None and self.reference_ is not None
        matrix = self.representation_.transform(window)
        size = min(matrix.shape[0], self.reference_.shape[0], self.max_rows)
        if size < self.min_samples:
            return DetectionResult.not_enough_data(
                self.name,
                f"{matrix.shape[0]} rows in the window; the classifier test needs "
                f"{self.min_samples}",
                threshold=self.alpha,
            )
        rng = _window_rng(self.random_state, matrix)
        x = np.vstack([_subsample(self.reference_, size, rng), _subsample(matrix, size, rng)])
        y = np.repeat([0, 1], size)
        split = StratifiedShuffleSplit(
            1, test_size=self.test_size, random_state=int(rng.integers(2**31))
        )
        train, test = next(split.split(x, y))
        scores = self._test_scores(x, y, train, test)
        auc = float(roc_auc_score(y[test], scores))
        correct = int(np.count_nonzero((scores > 0.5) == (y[test] == 1)))
        if self.null == "binomial":
            p = float(binomtest(correct, test.size, 0.5, alternative="greater").pvalue)
            null_text = f"binomial {stats.format_p(p)}"
        else:
            null_aucs = []
            for _ in range(self.n_permutations):
                shuffled = rng.permutation(y)
                null_scores = self._test_scores(x, shuffled, train, test)
                null_aucs.append(roc_auc_score(shuffled[test], null_scores))
            p = stats.permutation_p_value(auc, np.array(null_aucs))
            null_text = f"{stats.format_p(p)} over {self.n_permutations} permutations"
        drift = p < self.alpha
        verdict = (
            "window rows are distinguishable from reference rows"
            if drift
            else "no detectable difference between window and reference rows"
        )
        message = (
            f"{verdict}: held-out AUC {auc:.3f}, accuracy {correct / test.size:.3f} "
            f"({null_text}; {size} + {size} rows, {test.size} held out; "
            f"{self.representation_.describe()})"
        )
        return DetectionResult(
            self.name,
            Decision.ALERT if drift else Decision.OK,
            auc,
            p,
            self.alpha,
            message,
            details={
                "alpha": self.alpha,
                "accuracy": correct / test.size,
                "rows_per_side": size,
                "null": self.null,
            },
        )
