"""Per-row outliers: offline detectors fitted on the reference, and an online one that learns
from the stream.

Every row gets a score (higher = more unusual) and a flag; the threshold is set for a target
false-positive rate (1% by default) on reference scores the detector did not train on
(out-of-fold for the offline detectors, scored-before-update for the online one), so it is
not optimistic. The window is "outlier" when it has more flagged rows than chance allows and
their rate is well above the expected one (``RowThreshold``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Self

import numpy as np
from scipy.stats import betabinom
from sklearn.base import BaseEstimator, clone
from sklearn.covariance import EmpiricalCovariance, MinCovDet
from sklearn.ensemble import IsolationForest
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline

from inferwatch.collector.detectors import stats
from inferwatch.collector.detectors.base import Detector
from inferwatch.collector.detectors.dataset import Dataset, align, as_dataset
from inferwatch.collector.detectors.params import AtLeastTwo, Count, Flag, Rate, Ratio, Seed
from inferwatch.collector.detectors.reduction import Encoder, Whitening
from inferwatch.collector.detectors.result import Decision, DetectionResult, RowOutputs

# "auto" whitens the isolation forest's input up to this many columns, given at least twice as
# many reference rows: beyond, the rotation costs more per window than the forest, and too few
# rows leave directions the reference never showed.
AUTO_WHITEN_WIDTH = 256


@dataclass(frozen=True)
class RowThreshold:
    """A row threshold set on calibration scores, and the flag rate it implies for new rows.

    The threshold is the calibration score with ``exceeding`` of the ``calibration_rows``
    scores above it. A new row from the reference's distribution is flagged with a probability
    q that is itself uncertain: it is Beta(exceeding + 1, calibration_rows - exceeding), the
    law of the mass above an order statistic. So a window's count of flagged rows is
    beta-binomial, not binomial. Testing against the binomial at the target rate treated q as
    known: a 1% threshold set on 10,000 rows flags 0.7-1.3% of new rows depending on the draw,
    and windows of 1,000 clean rows alarmed 9% of the time at alpha 5% (5 fits x 40 windows),
    more as windows grow. The beta-binomial keeps the false-alarm rate at alpha, and a window
    can be no more precise than the calibration it is compared with.
    """

    value: float
    calibration_rows: int
    exceeding: int

    @classmethod
    def at_rate(cls, scores: np.ndarray, target_fpr: float) -> RowThreshold:
        """The ``1 - target_fpr`` quantile of ``scores`` (one of them)."""
        value = float(np.quantile(scores, 1 - target_fpr, method="higher"))
        return cls(value, int(scores.size), int(np.count_nonzero(scores > value)))

    @property
    def expected_rate(self) -> float:
        """The mean of q: the share of new rows from the reference's distribution flagged."""
        return (self.exceeding + 1) / (self.calibration_rows + 1)

    def excess_p_value(self, flagged: int, rows: int) -> float:
        """P(at least ``flagged`` of ``rows`` new reference-like rows are flagged)."""
        a, b = self.exceeding + 1, self.calibration_rows - self.exceeding
        return float(betabinom.sf(flagged - 1, rows, a, b))


class MahalanobisScorer(BaseEstimator):
    """Squared Mahalanobis distance to the reference mean, as a scikit-learn estimator.

    ``score_samples`` follows scikit-learn (higher = more normal), so it is the negated
    distance. ``robust=True`` uses the minimum covariance determinant (MinCovDet), which
    outliers in the reference cannot pull.
    """

    def __init__(self, robust: bool = False, random_state: int = 0) -> None:
        self.robust = robust
        self.random_state = random_state

    def fit(self, x: np.ndarray, y: Any = None) -> MahalanobisScorer:
        if self.robust:
            self.covariance_ = MinCovDet(random_state=self.random_state).fit(x)
        else:
            self.covariance_ = EmpiricalCovariance().fit(x)
        return self

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        return -np.asarray(self.covariance_.mahalanobis(x))


class ResidualScorer(BaseEstimator):
    """How far each feature is from what the row's other features predict, as an estimator.

    Fitted on the reference: a Gaussian with the reference's mean and covariance (a ridge for
    nearly collinear columns). A feature's residual is its distance from its conditional
    mean given all the others, in conditional sds: ``(P (x - m))_j / sqrt(P_jj)`` with P the
    precision matrix, which is the residual of regressing the feature on all the others. A
    row's outlyingness is the sum of its ``top`` largest squared residuals (the largest alone
    by default).

    Why not the Mahalanobis distance: when one to three of 30 features are moved, the distance
    spreads the move over 30 degrees of freedom, while the residual of a moved feature stands
    alone, and a correlated feature's conditional sd is smaller than its marginal sd. On
    breast_cancer with 1-3 of 30 features moved 4-6 sd in 5% of the rows, the top-k rows are
    moved ones more often than by the distance (``bench/bench_detectors.py``). No transform
    makes skewed features normal first: one fitted on the reference (Yeo-Johnson) ranked
    those rows better still, but compressed the far tail it is there to find, and flagged 9
    of 12 wines set 8 sd off where the residuals flag all 12. ``score_samples`` follows
    scikit-learn (higher = more normal).
    """

    def __init__(self, top: int = 1) -> None:
        self.top = top

    def fit(self, x: np.ndarray, y: Any = None) -> ResidualScorer:
        z = _bounded(np.asarray(x, dtype=np.float64))
        self.location_ = z.mean(axis=0)
        covariance = np.atleast_2d(np.cov(z, rowvar=False))
        # A ridge keeps the inverse finite for collinear columns, and the residuals along nearly
        # collinear ones from resting on a variance the reference barely pins down: at 1e-6,
        # clean windows of 1 of 20 ill-conditioned references alarmed 6 times in 10 (19 of 200
        # over 20 references), at 1e-3 5 of 200, with the same power. Not a shrinkage estimator
        # (Ledoit-Wolf): its shrinkage depends on the row count, so the out-of-fold models that
        # set the threshold would differ from the full one (1.25% of clean rows flagged for 1%).
        ridge = _RIDGE * max(float(np.trace(covariance)) / max(covariance.shape[0], 1), 1e-12)
        self.precision_ = np.linalg.pinv(covariance + ridge * np.eye(covariance.shape[0]))
        self.conditional_sd_ = 1 / np.sqrt(np.diag(self.precision_))
        return self

    def residuals(self, x: np.ndarray) -> np.ndarray:
        """Per row and column: (value - conditional mean) / conditional sd."""
        centred = _bounded(np.asarray(x, dtype=np.float64)) - self.location_
        return np.asarray(centred @ self.precision_ * self.conditional_sd_)

    def score_samples(self, x: np.ndarray) -> np.ndarray:
        return self.score_residuals(self.residuals(x))

    def score_residuals(self, residuals: np.ndarray) -> np.ndarray:
        """``score_samples`` from rows' ``residuals``."""
        squared = residuals**2
        top = min(self.top, squared.shape[1])
        if top == 0:
            return np.zeros(squared.shape[0])
        return -np.partition(squared, squared.shape[1] - top, axis=1)[:, -top:].sum(axis=1)


def _bounded(x: np.ndarray) -> np.ndarray:
    # A value far beyond the reference is as far as can be: clipped, never overflowing to inf
    # or NaN, which would rank it as ordinary or fail the window.
    return np.clip(np.nan_to_num(x, nan=0.0, posinf=_FAR, neginf=-_FAR), -_FAR, _FAR)


_RIDGE = 1e-3
# Far enough to flag, small enough that the squared residuals stay finite.
_FAR = 1e100


def outlyingness(estimator: Any, x: np.ndarray) -> np.ndarray:
    """Higher = more unusual, from ``score_samples`` or else ``decision_function``."""
    if hasattr(estimator, "score_samples"):
        return -np.asarray(estimator.score_samples(x), dtype=np.float64)
    if hasattr(estimator, "decision_function"):
        return -np.asarray(estimator.decision_function(x), dtype=np.float64)
    raise TypeError(
        f"{type(estimator).__name__} has neither score_samples nor decision_function; an "
        "outlier estimator needs one (IsolationForest, LocalOutlierFactor(novelty=True), ...)"
    )


def _build(method: str | Any, random_state: int) -> Any:
    if method == "residuals":
        return ResidualScorer()
    if method == "isolation_forest":
        return IsolationForest(random_state=random_state)
    if method == "mahalanobis":
        return MahalanobisScorer()
    if method == "robust_mahalanobis":
        return MahalanobisScorer(robust=True, random_state=random_state)
    if isinstance(method, str):
        raise ValueError(
            "method must be 'residuals', 'isolation_forest', 'mahalanobis', "
            "'robust_mahalanobis' or a "
            f"scikit-learn estimator with score_samples or decision_function, got {method!r}"
        )
    if not (hasattr(method, "score_samples") or hasattr(method, "decision_function")):
        outlyingness(method, np.empty((0, 0)))  # raises the explanatory TypeError
    return method


def _window_verdict(
    name: str,
    scores: np.ndarray,
    threshold: RowThreshold,
    alpha: float,
    min_rate_ratio: float,
    row_ids: np.ndarray | None,
    top_features: tuple[str, ...],
    feature_sds: np.ndarray,
    measured_from: str = "the reference mean",
) -> DetectionResult:
    flags = scores > threshold.value
    n, k = int(scores.size), int(flags.sum())
    p = threshold.excess_p_value(k, n)
    expected = threshold.expected_rate
    ratio = k / n / expected
    significant = p < alpha
    excess = significant and ratio >= min_rate_ratio
    rows = RowOutputs(scores, flags, row_ids, top_features)
    examples = []
    for position in np.flatnonzero(flags)[np.argsort(-scores[flags], kind="stable")][:3]:
        who = f"row {row_ids[position]!r}" if row_ids is not None else f"row {position}"
        examples.append(
            f"{who} (`{top_features[position]}` {feature_sds[position]:.1f} sd from "
            f"{measured_from})"
        )
    evidence = (
        f"{k} of {n:,} rows ({k / n:.1%}) flagged vs {expected:.1%} expected, "
        f"{ratio:.1f}x (beta-binomial {stats.format_p(p)})"
    )
    if excess:
        message = f"more outliers than expected: {evidence}"
    elif significant:
        message = (
            f"no excess of outliers: {evidence}; significant but below the "
            f"{min_rate_ratio:g}x effect-size gate, not flagged"
        )
    else:
        message = f"no excess of outliers: {evidence}"
    if examples:
        message += "; most unusual: " + ", ".join(examples)
    return DetectionResult(
        name,
        Decision.ALERT if excess else Decision.OK,
        k / n,
        p,
        threshold.value,
        message,
        rows=rows,
        details={
            "alpha": alpha,
            "min_rate_ratio": min_rate_ratio,
            "expected_rate": expected,
            "rate_ratio": ratio,
            "flagged": k,
            "rows": n,
            "row_threshold": threshold.value,
            "calibration_rows": threshold.calibration_rows,
        },
    )


def _furthest_features(z: np.ndarray, names: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """Per row, the numeric feature furthest from the reference mean and its distance in sds."""
    if z.shape[1] == 0:
        return tuple("?" for _ in range(z.shape[0])), np.zeros(z.shape[0])
    absolute = np.abs(z)
    position = np.argmax(absolute, axis=1)
    return tuple(names[j] for j in position.tolist()), absolute[np.arange(z.shape[0]), position]


def _empty_window(name: str, threshold: float | None) -> DetectionResult:
    return DetectionResult.not_enough_data(
        name, "the window has no rows to score", threshold=threshold
    )


class OutlierDetector(Detector):
    """Offline outlier detection: fitted on the reference, then static.

    ``method``: "residuals" (default, ``ResidualScorer``), "isolation_forest", "mahalanobis",
    "robust_mahalanobis", or any
    scikit-learn estimator with ``score_samples`` or ``decision_function`` (e.g.
    ``LocalOutlierFactor(novelty=True)``). Estimators are cloned and refitted; the row
    threshold comes from ``n_folds`` out-of-fold reference scores. With ``prefit=True`` a
    user's already fitted detector is used as is, on the numeric columns as given, and the
    reference (which it must not have been trained on) only sets the threshold.

    ``whiten``: fit the estimator on the reference-whitened columns (``Whitening``), so that
    rows breaking the features' correlations stand out along some axis. "auto" (default)
    whitens for the isolation forest when it has 2 to 256 columns and at least twice as many
    reference rows; Mahalanobis distances are unchanged by it.
    """

    name = "outliers"

    def __init__(
        self,
        method: str | Any = "residuals",
        target_fpr: Rate = 0.01,
        alpha: Rate = 0.05,
        min_rate_ratio: Ratio = 1.5,
        n_folds: AtLeastTwo = 5,
        prefit: Flag = False,
        whiten: Flag | Literal["auto"] = "auto",
        random_state: Seed = 0,
    ) -> None:
        self.method = method
        self.target_fpr = target_fpr
        self.alpha = alpha
        self.min_rate_ratio = min_rate_ratio
        self.n_folds = n_folds
        self.prefit = prefit
        self.whiten = whiten
        self.random_state = random_state
        self.encoder_: Encoder | None = None
        self.estimator_: Any = None
        self.threshold_: RowThreshold | None = None
        self.reference_scores_: np.ndarray | None = None

    def _matrix(self, data: Dataset) -> np.ndarray:
        assert self.encoder_ is not None
        if not self.prefit:
            return self.encoder_.transform(data)
        aligned = align(data, self.encoder_.numeric_names, [])
        if np.isnan(aligned.numeric).any():
            raise ValueError("a prefit outlier estimator gets the numbers as given: no NaN allowed")
        return aligned.numeric

    def _validate_params(self) -> None:
        if self.whiten not in (True, False, "auto"):
            raise ValueError(f"whiten must be true, false or 'auto', got {self.whiten!r}")
        super()._validate_params()
        if self.whiten is True and self.prefit:
            raise ValueError("a prefit estimator gets the columns as given: it cannot whiten")
        _build(self.method, self.random_state)  # a method that is neither known nor usable

    def fit(self, reference: Any, *, feature_names: Sequence[str] | None = None) -> Self:
        self._validate_params()
        data = as_dataset(reference, feature_names=feature_names, what="reference")
        if data.rows < 2 * self.n_folds:
            raise ValueError(f"reference has {data.rows} rows; need at least {2 * self.n_folds}")
        self.encoder_ = Encoder().fit(data)
        x = self._matrix(data)
        template = _build(self.method, self.random_state)
        if self._whitens(x.shape):
            template = make_pipeline(Whitening(), template)
        if self.prefit:
            self.estimator_ = template
            held_out = outlyingness(template, x)
        else:
            held_out = np.empty(data.rows)
            folds = KFold(self.n_folds, shuffle=True, random_state=self.random_state)
            for train, test in folds.split(x):
                part = clone(template).fit(x[train])
                held_out[test] = outlyingness(part, x[test])
            self.estimator_ = clone(template).fit(x)
        self.reference_scores_ = held_out
        self.threshold_ = RowThreshold.at_rate(held_out, self.target_fpr)
        return self

    def _whitens(self, shape: tuple[int, int]) -> bool:
        if self.whiten != "auto":
            return bool(self.whiten)
        rows, columns = shape
        return (
            not self.prefit
            and self.method == "isolation_forest"
            and 2 <= columns <= AUTO_WHITEN_WIDTH
            and rows >= 2 * columns
        )

    def score(self, window: Any) -> np.ndarray:
        """Outlier scores of the window's rows (higher = more unusual)."""
        self._check_fitted("encoder_", "estimator_")
        return outlyingness(self.estimator_, self._matrix(as_dataset(window, what="window")))

    def run(self, window: Any, *, row_ids: Sequence[Any] | None = None) -> DetectionResult:
        self._check_fitted("encoder_", "estimator_", "threshold_")
        assert self.encoder_ is not None and self.threshold_ is not None
        data = as_dataset(window, row_ids=row_ids, what="window")
        if data.rows == 0:
            return _empty_window(self.name, self.threshold_.value)
        encoded = self.encoder_.transform(data)
        numeric = len(self.encoder_.numeric_names)
        if isinstance(self.estimator_, ResidualScorer):
            residuals = self.estimator_.residuals(encoded)
            scores = -self.estimator_.score_residuals(residuals)
            # The feature that breaks the row's pattern, not merely the largest value.
            z = residuals[:, :numeric]
            measured_from = "what the other features predict"
        else:
            scores = outlyingness(self.estimator_, self._matrix(data) if self.prefit else encoded)
            z = encoded[:, :numeric]
            measured_from = "the reference mean"
        names, sds = _furthest_features(z, self.encoder_.numeric_names)
        return _window_verdict(
            self.name,
            scores,
            self.threshold_,
            self.alpha,
            self.min_rate_ratio,
            data.row_ids,
            names,
            sds,
            measured_from,
        )


class OnlineOutlierDetector(Detector):
    """Streaming outliers on the numeric features: running mean and covariance (Welford /
    Chan batch updates) for a Mahalanobis distance, or running means and variances for the
    largest per-feature z-score.

    Each window is scored with the state before it, then its rows (the unflagged ones, unless
    ``update="all"``) update the state. ``to_dict()`` / ``from_dict()`` carry the whole state,
    so a restarted collector continues where it stopped. ``fit(reference)`` streams the
    reference through the same score-then-update loop and sets the row threshold at the target
    false-positive rate of the scores of its second half.
    """

    name = "online_outliers"

    def __init__(
        self,
        method: Literal["mahalanobis", "zscore"] = "mahalanobis",
        target_fpr: Rate = 0.01,
        alpha: Rate = 0.05,
        min_rate_ratio: Ratio = 1.5,
        update: Literal["inliers", "all", "none"] = "inliers",
        chunk_rows: Count = 100,
        random_state: Seed = 0,
    ) -> None:
        self.method = method
        self.target_fpr = target_fpr
        self.alpha = alpha
        self.min_rate_ratio = min_rate_ratio
        self.update = update
        self.chunk_rows = chunk_rows
        self.random_state = random_state
        self.names_: tuple[str, ...] | None = None
        self.count_ = 0
        self.mean_ = np.empty(0)
        self.m2_ = np.empty(0)  # (p, p) for mahalanobis, (p,) for zscore
        self.threshold_: RowThreshold | None = None

    # -- state ------------------------------------------------------------------------------

    def _reset(self, names: tuple[str, ...]) -> None:
        p = len(names)
        self.names_ = names
        self.count_ = 0
        self.mean_ = np.zeros(p)
        self.m2_ = np.zeros((p, p)) if self.method == "mahalanobis" else np.zeros(p)

    def partial_fit(self, x: np.ndarray) -> Self:
        """Fold rows into the running mean and (co)variance (Chan et al.'s batch update)."""
        if self.names_ is None:
            raise ValueError("call fit(reference) or set the feature names before partial_fit")
        x = self._impute(x)
        n_b = x.shape[0]
        if n_b == 0:
            return self
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        m2_b = centred.T @ centred if self.method == "mahalanobis" else (centred**2).sum(axis=0)
        n_a, total = self.count_, self.count_ + n_b
        delta = mean_b - self.mean_
        correction = n_a * n_b / total
        if self.method == "mahalanobis":
            self.m2_ = self.m2_ + m2_b + np.outer(delta, delta) * correction
        else:
            self.m2_ = self.m2_ + m2_b + delta**2 * correction
        self.mean_ = self.mean_ + delta * n_b / total
        self.count_ = total
        return self

    def _impute(self, x: np.ndarray) -> np.ndarray:
        # A missing value counts as the running mean: it adds nothing to the distance.
        return np.where(np.isfinite(x), x, self.mean_) if not np.isfinite(x).all() else x

    def _z(self, x: np.ndarray) -> np.ndarray:
        variance = (np.diag(self.m2_) if self.m2_.ndim == 2 else self.m2_) / max(self.count_ - 1, 1)
        return (self._impute(x) - self.mean_) / np.sqrt(np.where(variance > 0, variance, 1.0))

    def score_rows(self, x: np.ndarray) -> np.ndarray:
        """Scores under the current state: squared Mahalanobis distance or largest |z|."""
        if self.count_ < 2:
            raise ValueError(f"the running state has {self.count_} rows; scoring needs 2+")
        if self.method == "zscore":
            return np.asarray(np.abs(self._z(x)).max(axis=1))
        covariance = self.m2_ / (self.count_ - 1)
        # A small ridge keeps the inverse finite when features are collinear.
        ridge = 1e-9 * max(float(np.trace(covariance)) / max(covariance.shape[0], 1), 1e-12)
        precision = np.linalg.pinv(covariance + ridge * np.eye(covariance.shape[0]))
        centred = self._impute(x) - self.mean_
        return np.asarray(np.einsum("ij,jk,ik->i", centred, precision, centred))

    # -- contract ---------------------------------------------------------------------------

    def fit(self, reference: Any, *, feature_names: Sequence[str] | None = None) -> Self:
        self._validate_params()
        data = as_dataset(reference, feature_names=feature_names, what="reference")
        if not data.numeric_names:
            raise ValueError("online outlier detection needs numeric features; reference has none")
        self._reset(data.numeric_names)
        rows = data.numeric[np.random.default_rng(self.random_state).permutation(data.rows)]
        if rows.shape[0] < 4 * self.chunk_rows:
            raise ValueError(
                f"reference has {rows.shape[0]} rows; the online detector needs at least "
                f"{4 * self.chunk_rows} (4 chunks of chunk_rows={self.chunk_rows})"
            )
        held_out = []
        half = rows.shape[0] // 2
        for start in range(0, rows.shape[0], self.chunk_rows):
            chunk = rows[start : start + self.chunk_rows]
            if start >= half:
                held_out.append(self.score_rows(chunk))
            self.partial_fit(chunk)
        self.threshold_ = RowThreshold.at_rate(np.concatenate(held_out), self.target_fpr)
        return self

    def run(self, window: Any, *, row_ids: Sequence[Any] | None = None) -> DetectionResult:
        self._check_fitted("names_", "threshold_")
        assert self.names_ is not None and self.threshold_ is not None
        data = align(as_dataset(window, row_ids=row_ids, what="window"), self.names_, [])
        if data.rows == 0:
            return _empty_window(self.name, self.threshold_.value)
        x = data.numeric
        scores = self.score_rows(x)
        names, sds = _furthest_features(self._z(x), self.names_)
        result = _window_verdict(
            self.name,
            scores,
            self.threshold_,
            self.alpha,
            self.min_rate_ratio,
            data.row_ids,
            names,
            sds,
        )
        if self.update == "all":
            self.partial_fit(x)
        elif self.update == "inliers":
            assert result.rows is not None
            self.partial_fit(x[~result.rows.flags])
        return result

    def to_dict(self) -> dict[str, Any]:
        """The parameters and the running state, JSON-ready."""
        return {
            "params": self.get_params(),
            "names": None if self.names_ is None else list(self.names_),
            "count": self.count_,
            "mean": self.mean_.tolist(),
            "m2": self.m2_.tolist(),
            "threshold": None if self.threshold_ is None else asdict(self.threshold_),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OnlineOutlierDetector:
        detector = cls(**data["params"])
        if data.get("names") is not None:
            detector.names_ = tuple(data["names"])
            detector.count_ = int(data["count"])
            detector.mean_ = np.asarray(data["mean"], dtype=np.float64)
            detector.m2_ = np.asarray(data["m2"], dtype=np.float64)
        threshold = data.get("threshold")
        detector.threshold_ = None if threshold is None else RowThreshold(**threshold)
        return detector
