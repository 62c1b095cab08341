"""CBPE: a classifier's performance estimated from its probabilities, before labels arrive.

Confidence-based performance estimation (NannyML's CBPE, on the same idea): once a model's
scores are calibrated on the labelled reference (``detectors.calibration``), a window row scored
p(y = c) = 0.8 and predicted c is right with probability 0.8. The window's expected confusion
matrix is the sum of its rows' calibrated probabilities (row i, predicted j, adds p_i to column
j), and accuracy, precision, recall and F1 (macro and weighted) follow from it; ROC AUC is the
expected count of correctly ordered (positive, negative) pairs over the expected count of
pairs. The band is the distribution of the metric the labels would give: labels are drawn from
the calibrated probabilities (each draw with one of the bootstrap refits of the calibration, so
the band carries its uncertainty too) and each draw's realized metric computed.

It assumes p(y | x) did not change (no concept shift): what the model's confidence says about
its own rows held on the reference. It says when it cannot be trusted rather than print a
number: a reference without probabilities or labels (or too few), scores that stay
miscalibrated on the reference out of fold, and windows whose scores fall where the reference
has (almost) no rows, where the calibration is extrapolated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Self

import numpy as np
from scipy.stats import rankdata

from inferwatch.collector.detectors.base import Detector
from inferwatch.collector.detectors.calibration import Calibration, Choice, calibrate
from inferwatch.collector.detectors.estimates import (
    Estimate,
    Estimated,
    default_threshold,
    estimate_result,
)
from inferwatch.collector.detectors.metrics import builtin_metrics, confusion_metrics
from inferwatch.collector.detectors.params import (
    AtLeastTwo,
    Count,
    Int,
    NonNegative,
    Rate,
    Seed,
    Share,
    within,
)
from inferwatch.collector.detectors.result import DetectionResult
from inferwatch.collector.detectors.threads import limited_threads
from inferwatch.collector.detectors.thresholds import Threshold

# What CBPE estimates: the built-in classification metrics that need no probability of the
# true class (log loss would need the labels' own probabilities, which is circular).
CBPE_METRICS = tuple(m for m in builtin_metrics("classification") if m != "log_loss")
# Equal-width bins of each class's raw score for the support check.
SUPPORT_BINS = 20
NonNegativeInt = Annotated[Int, within(0)]


class CBPE(Detector):
    """Estimated classification performance of unlabelled windows, from calibrated scores.

    ``fit(scores, labels, predictions=None)`` on the reference: ``scores`` are the model's
    class probabilities (rows x classes, columns named by ``classes``; 1-D: the positive class
    of a binary model), ``labels`` the true classes, ``predictions`` the classes the model
    predicted (default: each row's highest score). ``run(scores, predictions=None)`` on a
    window gives one result per metric, its value the estimate, ``details`` its band.

    ``calibration``: "auto" keeps the raw scores unless isotonic or sigmoid calibration gives a
    lower out-of-fold Brier score on the reference (``folds`` folds); ``bootstrap`` refits of
    the calibration widen the band by its uncertainty. ``n_samples`` label draws give a band
    holding ``confidence`` of the realized metric's distribution. ``max_unsupported``: the
    share of a window's rows that may have a score in a bin the reference holds fewer than
    ``min_support`` rows of (or outside its range) before the estimate is not trusted.
    ``max_calibration_gap``: how far (in accuracy) a bin of the calibrated reference's
    confidence may be from its accuracy, out of fold, before the scores count as
    uncalibrated. Levels: ``thresholds`` by metric, else ``warning_drop`` / ``critical_drop``
    (relative) below the reference's realized value. ``n_threads`` caps the BLAS and OpenMP
    threads of the fit and the estimates (None: the libraries' default).
    """

    name = "estimated_performance"

    def __init__(
        self,
        metrics: Sequence[str] | None = None,
        classes: Sequence[Any] | np.ndarray | None = None,
        calibration: Choice = "auto",
        folds: AtLeastTwo = 5,
        bootstrap: NonNegativeInt = 50,
        n_samples: Count = 500,
        confidence: Rate = 0.95,
        min_reference: Count = 100,
        min_rows: Count = 30,
        min_support: Count = 10,
        max_unsupported: Share = 0.1,
        max_calibration_gap: Share = 0.1,
        thresholds: Mapping[str, Threshold] | None = None,
        warning_drop: NonNegative = 0.05,
        critical_drop: NonNegative = 0.10,
        n_threads: Count | None = 1,
        random_state: Seed = 0,
    ) -> None:
        self.metrics = metrics
        self.classes = classes
        self.calibration = calibration
        self.folds = folds
        self.bootstrap = bootstrap
        self.n_samples = n_samples
        self.confidence = confidence
        self.min_reference = min_reference
        self.min_rows = min_rows
        self.min_support = min_support
        self.max_unsupported = max_unsupported
        self.max_calibration_gap = max_calibration_gap
        self.thresholds = thresholds
        self.warning_drop = warning_drop
        self.critical_drop = critical_drop
        self.n_threads = n_threads
        self.random_state = random_state
        self.classes_: tuple[str, ...] | None = None
        self.calibration_: Calibration | None = None
        self.reference_: dict[str, float | None] | None = None
        # Why the reference cannot support estimates (no labels, ...), or None.
        self.unusable_: str | None = None
        self.support_: np.ndarray | None = None  # (classes, SUPPORT_BINS) reference counts
        self.range_: np.ndarray | None = None  # (2, classes) raw score min and max
        self.reference_thin_: float | None = None  # share of reference rows in thin bins

    def _validate_params(self) -> None:
        super()._validate_params()
        unknown = sorted(set(self._metric_names()) - set(CBPE_METRICS))
        if unknown:
            raise ValueError(
                f"metrics {unknown} cannot be estimated; CBPE estimates {CBPE_METRICS}"
            )

    def _metric_names(self) -> tuple[str, ...]:
        return CBPE_METRICS if self.metrics is None else tuple(self.metrics)

    # -- fit ------------------------------------------------------------------------------

    def fit(
        self,
        reference: np.ndarray | Sequence[Any] | None,
        labels: np.ndarray | Sequence[Any] | None = None,
        predictions: np.ndarray | Sequence[Any] | None = None,
    ) -> Self:
        """Calibrate on the reference's scores and labels. Without either the detector is
        fitted but unusable: every ``run`` says why instead of estimating."""
        self._validate_params()
        self.unusable_ = None
        if reference is None or labels is None:
            missing = "class probabilities" if reference is None else "labels"
            self._unusable(f"the reference has no {missing}; CBPE calibrates on both")
            return self
        scores = _scores(reference, "reference")
        true = np.asarray(labels, dtype=object).ravel()
        if true.size != scores.shape[0]:
            raise ValueError(f"labels has {true.size} rows but the scores have {scores.shape[0]}")
        self.classes_ = self._class_names(scores.shape[1], true)
        index = {c: j for j, c in enumerate(self.classes_)}
        codes = np.array([index.get(str(v), -1) for v in true.tolist()], dtype=np.int64)
        usable = (codes >= 0) & np.isfinite(scores).all(axis=1)
        scores, codes = scores[usable], codes[usable]
        predicted = self._predicted(scores, predictions, usable, "reference")
        counts = np.bincount(codes, minlength=len(self.classes_))
        if codes.size < self.min_reference:
            self._unusable(
                f"the reference has {codes.size:,} labelled rows with scores; CBPE needs "
                f"{self.min_reference:,} to calibrate"
            )
            return self
        if (counts > 0).sum() < 2:
            self._unusable("the reference's labels are all of one class; nothing to calibrate")
            return self
        # One thread by default: the calibrations' ~200 small L-BFGS fits took 17 s on a
        # loaded 2-core box with BLAS's all-cores default, 0.85 s with one thread (wine, 3
        # classes, 178 rows).
        with limited_threads(self.n_threads):
            self.calibration_ = calibrate(
                scores,
                codes,
                choice=self.calibration,
                folds=self.folds,
                bootstrap=self.bootstrap,
                seed=self.random_state,
            )
        if self.calibration_.reliability.poor(self.max_calibration_gap):
            found = self.calibration_.reliability
            self._unusable(
                "the scores stay miscalibrated on the reference out of fold "
                f"({self.calibration_.method} calibration: a bin of a class's probability "
                f"{found.largest_gap:.1%} off that class's share of its rows, "
                f"Hosmer-Lemeshow p={found.p_value:.2g}); the estimates would be biased"
            )
        self.reference_ = self._realized(scores, codes, predicted)
        self.range_ = np.vstack([scores.min(axis=0), scores.max(axis=0)])
        self.support_ = np.stack(
            [
                np.bincount(_bins(scores[:, c]), minlength=SUPPORT_BINS)
                for c in range(scores.shape[1])
            ]
        )
        self.reference_thin_ = float(self._thin(scores).mean())
        return self

    def _unusable(self, reason: str) -> None:
        self.unusable_ = reason

    def _class_names(self, width: int, labels: np.ndarray) -> tuple[str, ...]:
        if self.classes is not None:
            names = tuple(str(c) for c in self.classes)
            if len(names) != width:
                raise ValueError(f"classes names {len(names)} columns but the scores have {width}")
            return names
        seen = sorted({v for v in labels.tolist()}, key=lambda v: (str(type(v)), v))
        if width == 2 and len(seen) <= 2 and set(map(str, seen)) <= {"0", "1"}:
            return ("0", "1")
        if len(seen) != width:
            raise ValueError(
                f"the labels have {len(seen)} classes but the scores {width} columns: pass "
                "classes= naming the columns (the model's classes_)"
            )
        return tuple(str(v) for v in seen)

    def _predicted(
        self,
        scores: np.ndarray,
        predictions: np.ndarray | Sequence[Any] | None,
        usable: np.ndarray | None,
        what: str,
    ) -> np.ndarray:
        """The predicted classes as column indices (each row's highest score by default)."""
        if predictions is None:
            return np.asarray(scores.argmax(axis=1), dtype=np.int64)
        assert self.classes_ is not None
        given = np.asarray(predictions, dtype=object).ravel()
        if usable is not None:
            if given.size != usable.size:
                raise ValueError(f"predictions has {given.size} rows, the {what} {usable.size}")
            given = given[usable]
        if given.size != scores.shape[0]:
            raise ValueError(f"predictions has {given.size} rows, the {what} {scores.shape[0]}")
        index = {c: j for j, c in enumerate(self.classes_)}
        codes = np.array([index.get(str(v), -1) for v in given.tolist()], dtype=np.int64)
        if (codes < 0).any():
            unknown = sorted({str(v) for v in given[codes < 0].tolist()})[:5]
            raise ValueError(f"predictions has classes {unknown} not among {list(self.classes_)}")
        return codes

    def _realized(
        self, scores: np.ndarray, codes: np.ndarray, predicted: np.ndarray
    ) -> dict[str, float | None]:
        k = scores.shape[1]
        confusion = np.bincount(codes * k + predicted, minlength=k * k).reshape(k, k)
        values = confusion_metrics(confusion)
        out: dict[str, float | None] = {n: float(v) for n, v in values.items()}
        auc = _sampled_auc(scores, codes[None, :])
        out["roc_auc"] = None if not np.isfinite(auc[0]) else float(auc[0])
        return {name: out.get(name) for name in self._metric_names()}

    # -- estimate -------------------------------------------------------------------------

    def estimate(
        self,
        window: np.ndarray | Sequence[Any],
        predictions: np.ndarray | Sequence[Any] | None = None,
        class_weights: Mapping[str, float] | None = None,
        weight_draws: Mapping[str, np.ndarray | Sequence[float]] | None = None,
    ) -> Estimate:
        """The window's estimated metrics with their bands, the expected confusion matrix,
        and whether they can be trusted (``reasons`` when not).

        ``class_weights``: w(y) = p_window(y) / p_reference(y) by class (BBSE's, for a label
        shift), others 1. Under a label shift p(x | y) stays and the classes' mix moves, so the
        reference's calibrated p(y | x) no longer holds; w(y) p(y | x), renormalised, does.
        ``weight_draws``: by class, draws of w(y) from its estimate's sampling distribution
        (``LabelShift.weight_draws``), all of one length; label draw t of the band re-weights
        with draw t (cycling), so the band carries the error of w(y). Without them the band
        takes ``class_weights`` as exact.
        """
        with limited_threads(self.n_threads):
            return self._estimate(window, predictions, class_weights, weight_draws)

    def _weights(self, class_weights: Mapping[str, float] | None) -> np.ndarray | None:
        if class_weights is None:
            return None
        assert self.classes_ is not None
        weights = np.array([float(class_weights.get(c, 1.0)) for c in self.classes_])
        if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
            raise ValueError(f"class_weights must be finite and non-negative, got {weights}")
        return weights

    def _weight_draws(
        self, weight_draws: Mapping[str, np.ndarray | Sequence[float]] | None
    ) -> np.ndarray | None:
        """(draws, classes) in the classes' order, 1 for a class not given."""
        if weight_draws is None:
            return None
        assert self.classes_ is not None
        given = {c: np.asarray(v, dtype=np.float64).ravel() for c, v in weight_draws.items()}
        sizes = {v.size for v in given.values()}
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError(f"weight_draws must be one non-empty length per class, got {sizes}")
        (size,) = sizes
        draws = np.column_stack([given.get(c, np.ones(size)) for c in self.classes_])
        if not (np.isfinite(draws).all() and (draws >= 0).all()):
            raise ValueError("weight_draws must be finite and non-negative")
        return draws

    def _estimate(
        self,
        window: np.ndarray | Sequence[Any],
        predictions: np.ndarray | Sequence[Any] | None,
        class_weights: Mapping[str, float] | None = None,
        weight_draws: Mapping[str, np.ndarray | Sequence[float]] | None = None,
    ) -> Estimate:
        if self.unusable_ is None:
            self._check_fitted("calibration_", "classes_", "support_", "range_")
        names = self._metric_names()
        if self.unusable_ is not None and self.calibration_ is None:
            return Estimate("cbpe", 0, {}, self.confidence, (self.unusable_,))
        assert self.calibration_ is not None and self.classes_ is not None
        scores = _scores(window, "window")
        k = len(self.classes_)
        if scores.shape[1] != k:
            raise ValueError(f"the window's scores have {scores.shape[1]} columns, not {k}")
        finite = np.isfinite(scores).all(axis=1)
        predicted_all = self._predicted(scores, predictions, None, "window")
        scores, predicted = scores[finite], predicted_all[finite]
        rows = int(scores.shape[0])
        reasons = [] if self.unusable_ is None else [self.unusable_]
        if rows < self.min_rows:
            reasons.append(f"{rows:,} rows with scores; estimates need {self.min_rows:,}")
            return Estimate("cbpe", rows, {}, self.confidence, tuple(reasons))
        unsupported = self._unsupported(scores)
        if unsupported > self.max_unsupported:
            reasons.append(
                f"{unsupported:.0%} more of the window's rows than of the reference's have "
                f"scores the reference barely holds (fewer than {self.min_support} reference "
                f"rows in their bin, or outside its range; at most {self.max_unsupported:.0%} "
                "more may): the calibration would be extrapolated"
            )
        weights = self._weights(class_weights)
        drawn_weights = self._weight_draws(weight_draws)
        proba = _reweighted(self.calibration_.apply(scores), weights)
        expected = proba.T @ np.eye(k)[predicted]  # [true, predicted]
        point: dict[str, float | None] = {
            n: float(v) for n, v in confusion_metrics(expected).items()
        }
        point["roc_auc"] = _expected_auc(scores, proba)
        draws = self._draws(scores, predicted, weights, drawn_weights)
        low, high = (1 - self.confidence) / 2, 1 - (1 - self.confidence) / 2
        metrics = {}
        for name in names:
            sampled = draws[name]
            sampled = sampled[np.isfinite(sampled)]
            value = point.get(name)
            if value is None or not np.isfinite(value) or sampled.size < draws["count"] / 2:
                metrics[name] = Estimated(None, None, None)
                continue
            lower, upper = np.quantile(sampled, [low, high])
            metrics[name] = Estimated(value, float(min(lower, value)), float(max(upper, value)))
        return Estimate(
            "cbpe",
            rows,
            metrics,
            self.confidence,
            tuple(reasons),
            {
                "calibration": self.calibration_.method,
                "unsupported_share": unsupported,
                "class_weights": None if weights is None else weights.tolist(),
                "weight_draws": 0 if drawn_weights is None else int(drawn_weights.shape[0]),
                "confusion": {"classes": list(self.classes_), "expected": expected.tolist()},
            },
        )

    def _thin(self, scores: np.ndarray) -> np.ndarray:
        """Rows with a score outside the reference's range or in a bin it holds fewer than
        ``min_support`` rows of."""
        assert self.support_ is not None and self.range_ is not None
        outside = ((scores < self.range_[0]) | (scores > self.range_[1])).any(axis=1)
        thin = np.zeros(scores.shape[0], dtype=bool)
        for c in range(scores.shape[1]):
            thin |= self.support_[c][_bins(scores[:, c])] < self.min_support
        return np.asarray(outside | thin)

    def _unsupported(self, scores: np.ndarray) -> float:
        """The window's share of thin rows beyond the reference's own: a small reference of
        many classes has thin bins everywhere, and a window like it as many rows in them."""
        assert self.reference_thin_ is not None
        return max(float(self._thin(scores).mean()) - self.reference_thin_, 0.0)

    def _draws(
        self,
        scores: np.ndarray,
        predicted: np.ndarray,
        weights: np.ndarray | None = None,
        drawn_weights: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """Each metric over ``n_samples`` label draws from the calibrated probabilities,
        re-weighted by ``weights``, or by draw t's row of ``drawn_weights`` when given."""
        assert self.calibration_ is not None
        k, n, total = scores.shape[1], scores.shape[0], self.n_samples
        refits = self.calibration_.apply_bootstrap(scores)  # (B, n, k)
        which = np.arange(total) % refits.shape[0]
        # Every draw's uniforms in one call, handed out as one call per refit did (refit 0's
        # draws first, then refit 1's, ...), so that a seed draws the same labels.
        uniforms = np.random.default_rng(self.random_state).random((total, n))
        labels = np.empty((total, n), dtype=np.int32)
        start = 0
        for b in range(refits.shape[0]):
            mine = np.flatnonzero(which == b)
            if drawn_weights is None:
                mix = None if weights is None else weights[None, None, :]
            else:
                mix = drawn_weights[mine % drawn_weights.shape[0]][:, None, :]
            labels[mine] = _drawn_labels(refits[b], mix, uniforms[start : start + mine.size])
            start += mine.size
        # Draw t, true class i, predicted j counted at (t * k + i) * k + j, built in place in
        # the smallest integer type that holds it (a third of the time of int64 temporaries).
        index = labels.astype(np.min_scalar_type(total * k * k))
        index *= k
        index += predicted.astype(index.dtype)[None, :]
        index += (np.arange(total, dtype=index.dtype) * (k * k))[:, None]
        confusion = np.bincount(index.ravel(), minlength=total * k * k).reshape(total, k, k)
        out: dict[str, Any] = dict(confusion_metrics(confusion))
        out["roc_auc"] = _sampled_auc(scores, labels)
        out["count"] = total
        return out

    # -- run ------------------------------------------------------------------------------

    def reference_metrics(self) -> dict[str, float | None]:
        """The reference's realized metrics (what the default levels are relative to)."""
        return dict(self.reference_ or {})

    def run(
        self,
        window: np.ndarray | Sequence[Any],
        predictions: np.ndarray | Sequence[Any] | None = None,
        class_weights: Mapping[str, float] | None = None,
        weight_draws: Mapping[str, np.ndarray | Sequence[float]] | None = None,
    ) -> DetectionResult:
        estimate = self.estimate(window, predictions, class_weights, weight_draws)
        reference = self.reference_metrics()
        thresholds = {
            name: (self.thresholds or {}).get(name)
            or default_threshold(name, reference.get(name), self.warning_drop, self.critical_drop)
            for name in self._metric_names()
        }
        return estimate_result(self.name, estimate, thresholds, reference)


def _reweighted(proba: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """``proba`` (classes on the last axis) times w(y), renormalised per row."""
    if weights is None:
        return proba
    moved = proba * weights
    total = moved.sum(axis=-1, keepdims=True)
    return np.where(total > 0, moved / np.where(total > 0, total, 1.0), proba)


def _drawn_labels(proba: np.ndarray, mix: np.ndarray | None, uniforms: np.ndarray) -> np.ndarray:
    """Column indices drawn by inverting each row's cumulative ``proba`` (rows, classes) at
    ``uniforms`` (draws, rows), re-weighted (``_reweighted``) by ``mix`` (draws or 1, 1,
    classes). The cumulative sum is built class by class beside the comparisons rather than
    stored whole (draws x rows x classes): the same sums and comparisons as ``np.cumsum``'s,
    with a fraction of the memory traffic. The re-weighting is ``_reweighted``'s, done here
    column by column: through ``_reweighted`` the weighted path's estimate took a third longer
    (bench_cbpe_cost, 24.6 -> 32.9 ms on 2 classes)."""
    k = proba.shape[1]
    moved, total = proba[None], None
    if mix is not None:
        moved = proba * mix
        total = moved.sum(axis=-1)
        if not (total > 0).all():  # rows all of zero weight keep their probabilities
            moved = np.where(total[..., None] > 0, moved, proba)
            total = np.where(total > 0, total, 1.0)
    cumulative = np.zeros(uniforms.shape)
    drawn = np.zeros(uniforms.shape, dtype=np.int32)
    for c in range(k - 1):  # the last class takes the rest (and any rounding above 1)
        cumulative += moved[..., c] if total is None else moved[..., c] / total
        drawn += uniforms > cumulative
    return drawn


def _scores(data: np.ndarray | Sequence[Any], what: str) -> np.ndarray:
    """Scores as (rows, classes) float64; a 1-D array is a binary model's positive class."""
    array = np.asarray(data, dtype=np.float64)
    if array.ndim == 1:
        array = np.column_stack([1 - array, array])
    if array.ndim != 2 or array.shape[1] < 2:
        raise ValueError(
            f"the {what}'s scores must be class probabilities (rows x classes, 2+ classes) or "
            f"a binary model's positive-class scores (1-D), got shape {array.shape}"
        )
    return array


def _bins(score: np.ndarray) -> np.ndarray:
    return np.clip((score * SUPPORT_BINS).astype(np.int64), 0, SUPPORT_BINS - 1)


def _sampled_auc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of ``scores`` for each draw of ``labels`` (draws, rows; column indices): binary
    the second column's, else the one-vs-rest macro average; NaN where a class is absent."""
    k = scores.shape[1]
    targets = [1] if k == 2 else range(k)
    aucs = []
    for c in targets:
        ranks = rankdata(scores[:, c])
        positive = (labels == c).astype(np.float64)
        n1 = positive.sum(axis=1)
        n0 = positive.shape[1] - n1
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = (positive @ ranks - n1 * (n1 + 1) / 2) / (n1 * n0)
        aucs.append(np.where((n1 > 0) & (n0 > 0), auc, np.nan))
    return np.asarray(np.mean(aucs, axis=0))


def _expected_auc(scores: np.ndarray, proba: np.ndarray) -> float | None:
    """Expected correctly ordered pairs over expected pairs, per class (binary: the second)."""
    k = scores.shape[1]
    targets = [1] if k == 2 else range(k)
    aucs = []
    for c in targets:
        p = proba[:, c]
        order = np.argsort(scores[:, c], kind="stable")
        s, p = scores[order, c], p[order]
        negatives = 1 - p
        # Per row: the expected negatives scored strictly lower, and tied (others only).
        starts = np.searchsorted(s, s, side="left")
        ends = np.searchsorted(s, s, side="right")
        below = np.concatenate([[0.0], np.cumsum(negatives)])
        lower = below[starts]
        tied = below[ends] - below[starts] - negatives
        wins = float((p * (lower + 0.5 * tied)).sum())
        pairs = float(p.sum() * negatives.sum() - (p * negatives).sum())
        if pairs <= 0:
            return None
        aucs.append(wins / pairs)
    return float(np.mean(aucs))
