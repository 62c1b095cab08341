"""A classifier's scores calibrated on labelled reference rows, cross-fitted.

Estimating performance without labels (``estimated_performance``) needs probabilities that
mean what they say: of the rows scored 0.8, eight in ten are of that class. A model's raw
scores often do not. Each class's score is mapped through a monotone calibrator learnt on the
reference (isotonic regression, or a logistic curve on the score's logit), one-vs-rest, and the
rows renormalised. Which one (or none) is chosen by how well calibrated its **out-of-fold**
probabilities are: every reference row calibrated by a calibrator fitted without it. Scored on its
own rows, isotonic regression always looks better than the raw scores (it fits their noise),
and would replace well-calibrated scores with a noisier copy; out of fold, the raw scores are
kept unless a calibrator does better.

Calibrators refitted on bootstrap resamples of the reference give the uncertainty of the
calibration itself, which the estimates' bands carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from scipy import special, stats
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold

Method = Literal["isotonic", "sigmoid", "none"]
Choice = Literal["auto", "isotonic", "sigmoid", "none"]
# Scores are clipped this far from 0 and 1 before their logit is taken.
_LOGIT_CLIP = 1e-6
# Bins of the reliability check (by probability quantile).
RELIABILITY_BINS = 10
# "auto" calibrates only scores whose reliability test rejects them at this level: on scores
# that are calibrated already, the best of two calibrators out of fold often beats them by
# chance alone, and would replace them with a noisier copy.
RAW_ALPHA = 0.05


class _Curve(Protocol):
    def predict(self, score: np.ndarray, /) -> np.ndarray: ...


# The curves predict from their fitted parameters rather than through scikit-learn's predict,
# whose input validation cost five times the arithmetic on a window of 1,000 rows, paid for
# every class of every bootstrap refit of every window (the same values: tests check it).


class _Isotonic:
    """Isotonic regression, interpolated between its thresholds and clipped to the fitted
    range, as ``IsotonicRegression(out_of_bounds="clip").predict`` does."""

    def fit(self, score: np.ndarray, target: np.ndarray) -> _Isotonic:
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, target)
        self.x, self.y = model.X_thresholds_, model.y_thresholds_
        return self

    def predict(self, score: np.ndarray) -> np.ndarray:
        # np.interp holds the end values beyond the thresholds, which run from the fitted
        # minimum to the maximum: sklearn's clip to that range, without the clip.
        return np.interp(score, self.x, self.y)


class _Logistic:
    """Platt scaling on the score's logit: p = sigmoid(a * logit(s) + b), identity reachable."""

    def fit(self, score: np.ndarray, target: np.ndarray) -> _Logistic:
        model = LogisticRegression(C=1e6).fit(_logit(score).reshape(-1, 1), target)
        self.slope, self.intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
        return self

    def predict(self, score: np.ndarray) -> np.ndarray:
        return np.asarray(special.expit(_logit(score) * self.slope + self.intercept))


class _Constant:
    """A class with one target value in the fitting rows (no curve to fit)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, score: np.ndarray) -> np.ndarray:
        return np.full(score.shape, self.value)


def _logit(score: np.ndarray) -> np.ndarray:
    clipped = np.clip(score, _LOGIT_CLIP, 1 - _LOGIT_CLIP)
    return np.asarray(np.log(clipped / (1 - clipped)))


def _curve(method: Method, score: np.ndarray, target: np.ndarray) -> _Curve:
    if target.min() == target.max():
        return _Constant(float(target[0]))
    if method == "isotonic":
        return _Isotonic().fit(score, target)
    return _Logistic().fit(score, target)


@dataclass(frozen=True)
class Calibrator:
    """One curve per calibrated column: the positive class's alone for two classes."""

    method: Method
    curves: tuple[_Curve, ...]

    @classmethod
    def fit(cls, method: Method, scores: np.ndarray, labels: np.ndarray) -> Calibrator:
        if method == "none":
            return cls("none", ())
        columns = [1] if scores.shape[1] == 2 else range(scores.shape[1])
        curves = tuple(
            _curve(method, scores[:, c], (labels == c).astype(np.float64)) for c in columns
        )
        return cls(method, curves)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (rows x classes), each row summing to 1."""
        return apply_all((self,), scores)[0]


def apply_all(calibrators: Sequence[Calibrator], scores: np.ndarray) -> np.ndarray:
    """(calibrators, rows, classes): each calibrator's probabilities, rows summing to 1. The
    logistic curves of a column are applied at once (one logit, one sigmoid)."""
    if calibrators[0].method == "none":
        return np.repeat(_normalised(scores)[None], len(calibrators), axis=0)
    columns = [1] if scores.shape[1] == 2 else list(range(scores.shape[1]))
    raw = np.empty((len(calibrators), scores.shape[0], len(columns)))
    for j, c in enumerate(columns):
        curves = [calibrator.curves[j] for calibrator in calibrators]
        sigmoids = [curve for curve in curves if isinstance(curve, _Logistic)]
        if sigmoids:
            slopes = np.array([[curve.slope] for curve in sigmoids])
            intercepts = np.array([[curve.intercept] for curve in sigmoids])
            logistic = [i for i, curve in enumerate(curves) if isinstance(curve, _Logistic)]
            raw[logistic, :, j] = special.expit(_logit(scores[:, c]) * slopes + intercepts)
        # np.interp searches sorted scores from the last one's place: twice as fast.
        order = np.argsort(scores[:, c], kind="stable")
        ordered = scores[order, c]
        for i, curve in enumerate(curves):
            if not isinstance(curve, _Logistic):
                raw[i, order, j] = curve.predict(ordered)
    if scores.shape[1] == 2:
        positive = np.clip(raw[..., 0], 0.0, 1.0)
        return np.stack([1 - positive, positive], axis=-1)
    calibrated = np.clip(raw, 0.0, 1.0)
    total = calibrated.sum(axis=-1, keepdims=True)
    # A row every calibrator maps to 0 keeps its raw scores rather than dividing by 0.
    empty = total <= 0
    return np.where(empty, _normalised(scores), calibrated / np.where(empty, 1.0, total))


def _normalised(scores: np.ndarray) -> np.ndarray:
    clipped = np.clip(scores, 0.0, None)
    total = clipped.sum(axis=1, keepdims=True)
    uniform = np.full_like(clipped, 1.0 / max(clipped.shape[1], 1))
    return np.asarray(np.where(total > 0, clipped / np.where(total > 0, total, 1.0), uniform))


def brier(proba: np.ndarray, labels: np.ndarray) -> float:
    """Multiclass Brier score: the mean over rows of sum_k (p_k - [y = k])^2."""
    onehot = np.zeros_like(proba)
    onehot[np.arange(labels.size), labels] = 1.0
    return float(((proba - onehot) ** 2).sum(axis=1).mean())


def _splits(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    counts = np.bincount(labels)
    smallest = counts[counts > 0].min()
    splitter: StratifiedKFold | KFold
    if smallest >= folds:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:  # a class rarer than the folds: stratification is impossible
        splitter = KFold(folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(labels.size), labels))


def out_of_fold(
    method: Method, scores: np.ndarray, labels: np.ndarray, folds: int, seed: int
) -> np.ndarray:
    """Every row's probabilities from a calibrator fitted on the other folds."""
    if method == "none":
        return _normalised(scores)
    proba = np.empty_like(scores, dtype=np.float64)
    for train, held in _splits(labels, folds, seed):
        proba[held] = Calibrator.fit(method, scores[train], labels[train]).apply(scores[held])
    return proba


@dataclass(frozen=True)
class Reliability:
    """How far probabilities are from the shares of rows of their class, by probability bin."""

    statistic: float  # Hosmer-Lemeshow chi-squared over the bins (both tests')
    p_value: float
    largest_gap: float  # the largest |share of the class - mean probability| of a bin

    def poor(self, max_gap: float, alpha: float = 1e-3) -> bool:
        """Significantly (at ``alpha``) and materially (a bin off by over ``max_gap``) off."""
        return self.p_value < alpha and self.largest_gap > max_gap


def _binned(score: np.ndarray, hit: np.ndarray) -> tuple[float, int, float]:
    """Hosmer-Lemeshow over quantile bins of ``score``: statistic, bins used, largest gap."""
    order = np.argsort(score, kind="stable")
    statistic, gap, used = 0.0, 0.0, 0
    for chunk in np.array_split(order, min(RELIABILITY_BINS, score.size)):
        expected, observed = score[chunk].sum(), hit[chunk].sum()
        variance = (score[chunk] * (1 - score[chunk])).sum()
        gap = max(gap, abs(observed - expected) / chunk.size)
        if variance > 0:
            statistic += (observed - expected) ** 2 / variance
            used += 1
    return statistic, used, gap


def reliability(proba: np.ndarray, labels: np.ndarray) -> Reliability:
    """Three tests, Bonferroni-combined: each class's probability against how often the row is
    of that class (the positive class alone for two), in quantile bins of that probability
    (the calibration the expected confusion matrix rests on); and the predicted class's
    probability against whether it was right (accuracy's own calibration: the per-class test,
    spread over many bins of near-zero probabilities, misses a model that is underconfident
    by ten points); and the mean of that probability against the accuracy."""
    columns = [1] if proba.shape[1] == 2 else range(proba.shape[1])
    statistic, used, gap = 0.0, 0, 0.0
    for c in columns:
        found = _binned(proba[:, c], (labels == c).astype(np.float64))
        statistic, used, gap = statistic + found[0], used + found[1], max(gap, found[2])
    predicted = proba.argmax(axis=1)
    confidence = proba[np.arange(labels.size), predicted]
    correct = (predicted == labels).astype(np.float64)
    top = _binned(confidence, correct)
    # Accuracy's calibration in the large, in one degree of freedom: the test with power on
    # a small reference (59 rows of wine, ten points underconfident: p = 0.01).
    spread = float((confidence * (1 - confidence)).sum())
    overall = (correct.sum() - confidence.sum()) ** 2 / spread if spread > 0 else 0.0
    p_values = [float(stats.chi2.sf(statistic, used)) if used else 1.0]
    p_values.append(float(stats.chi2.sf(top[0], top[1])) if top[1] else 1.0)
    p_values.append(float(stats.chi2.sf(overall, 1)) if spread > 0 else 1.0)
    combined = min(1.0, len(p_values) * min(p_values))
    return Reliability(statistic + top[0] + overall, combined, max(gap, top[2]))


@dataclass(frozen=True)
class Calibration:
    """The chosen calibrator, what each candidate scored out of fold, and bootstrap refits."""

    calibrator: Calibrator
    out_of_fold_brier: dict[str, float]
    out_of_fold_reliability: dict[str, Reliability]
    bootstrap: tuple[Calibrator, ...]

    @property
    def reliability(self) -> Reliability:
        """The chosen calibration's, out of fold."""
        return self.out_of_fold_reliability[self.method]

    @property
    def method(self) -> Method:
        return self.calibrator.method

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return self.calibrator.apply(scores)

    def apply_bootstrap(self, scores: np.ndarray) -> np.ndarray:
        """(refits, rows, classes): the probabilities of each bootstrap refit; the chosen
        calibrator's alone when there are no refits."""
        return apply_all(self.bootstrap or (self.calibrator,), scores)


def calibrate(
    scores: np.ndarray,
    labels: np.ndarray,
    *,
    choice: Choice = "auto",
    folds: int = 5,
    bootstrap: int = 20,
    seed: int = 0,
) -> Calibration:
    """Choose and fit the calibration of ``scores`` (rows x classes) for ``labels`` (column
    indices).

    "auto" keeps the raw scores unless their reliability test rejects them (p below
    ``RAW_ALPHA``); then it takes the calibrator whose out-of-fold probabilities are best
    calibrated (the smallest Hosmer-Lemeshow statistic over the probability bins).
    Not the lowest Brier score: it rewards sharpness as well as calibration, and a
    sigmoid that is sharp but off in some range (a random forest's scores) beats an isotonic
    fit that is right everywhere, which is what estimates need.
    """
    candidates: Sequence[Method] = (
        ("none", "isotonic", "sigmoid") if choice == "auto" else (choice,)
    )
    briers: dict[str, float] = {}
    checks: dict[str, Reliability] = {}
    for method in candidates:
        held_out = out_of_fold(method, scores, labels, folds, seed)
        briers[method] = brier(held_out, labels)
        checks[method] = reliability(held_out, labels)
    chosen: Method = candidates[0]
    if choice == "auto" and checks["none"].p_value < RAW_ALPHA:
        chosen = min(("isotonic", "sigmoid"), key=lambda m: checks[m].statistic)
    calibrator = Calibrator.fit(chosen, scores, labels)
    rng = np.random.default_rng(seed)
    refits: list[Calibrator] = []
    if chosen != "none":
        for _ in range(bootstrap):
            rows = rng.integers(0, labels.size, labels.size)
            refits.append(Calibrator.fit(chosen, scores[rows], labels[rows]))
    return Calibration(calibrator, briers, checks, tuple(refits))
