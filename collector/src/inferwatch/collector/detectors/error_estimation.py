"""DLE: a regressor's MAE and RMSE estimated before labels arrive, from a model of its errors.

Direct loss estimation (NannyML's DLE, on the same idea): on the labelled reference, gradient
boosting learns how large the monitored model's error is from the features and the model's
prediction, once for the absolute error and once for the squared one. A window's estimated
MAE is the mean of its rows' predicted absolute errors; its RMSE the root of the mean of their
predicted squared errors. The error models are cross-fitted: each of ``folds`` models learns on
the other folds, so every reference row has an out-of-fold prediction, and windows get the
average of the fold models. Each error model averages two boosted models: a narrow one on the
inputs, and a wide one (more, smaller leaves) that also sees each numeric input's distance
from the reference's median, so that errors growing towards both tails are learnt from both
tails' rows at once. The narrow one alone underestimated windows shifted into the tails (its
edge leaves average over the whole tail); the wide one alone overshot on references whose
squared errors are heavy-tailed; their average was closer than either on 8 seeds of the bench.

The band is that of the realized MAE (or mean squared error) given the window's rows: the
out-of-fold residuals on the reference say how far a row's realized error strays from its
prediction, relative to it (the spread of |e| grows with its mean), and a mean of n rows
strays sqrt(n) times less; plus the error models' own uncertainty, from how much the fold
models disagree on the window; plus their error where the window's rows are: the reference's
held-out residuals, binned by the predicted error, give a bias and the variance of that bias in
each bin, and the window's shares of the bins weigh them (a shifted window that sits in a few
thinly held bins gets a wider band); plus, relative to the estimate, the error models'
systematic error under covariate shift, measured on reweightings of the reference scored by the
out-of-fold models, and the uncertainty of the level the reference's rows set: neither shrinks
with the window's rows. It assumes p(y | x) did not change (no concept shift),
and is not trusted on a window whose rows are outside the reference's range (unseen
categories included), where the error model extrapolates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
from scipy.stats import norm
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, VotingRegressor
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline

from inferwatch.collector.detectors.base import Detector
from inferwatch.collector.detectors.dataset import Dataset, align, as_dataset
from inferwatch.collector.detectors.estimates import (
    Estimate,
    Estimated,
    default_threshold,
    estimate_result,
)
from inferwatch.collector.detectors.params import (
    AtLeastTwo,
    Count,
    NonNegative,
    Rate,
    Seed,
    Share,
)
from inferwatch.collector.detectors.result import DetectionResult
from inferwatch.collector.detectors.threads import limited_threads
from inferwatch.collector.detectors.thresholds import Threshold

DLE_METRICS = ("mae", "rmse")
# A categorical feature with more categories than this is given to the trees as its codes.
MAX_TREE_CATEGORIES = 250
# Bins of the predicted error in which the error models' held-out residuals are averaged.
CALIBRATION_BINS = 20
MIN_BIN_ROWS = 50


class DLE(Detector):
    """Estimated MAE and RMSE of unlabelled windows of a regressor.

    ``fit(features, predictions, labels)`` on the reference (features as any detector takes
    them: an array, a DataFrame, a dict of columns, a ``Dataset``); ``run(features,
    predictions)`` on a window. Each error model is the average of two
    ``HistGradientBoostingRegressor``s (``max_iter`` rounds, ``learning_rate``): a narrow one
    (``max_leaf_nodes``, ``min_samples_leaf``) on the features and the prediction, and a wide
    one (``wide_max_leaf_nodes``, ``wide_min_samples_leaf``) that also sees their distances
    from the reference's medians (``wide_max_leaf_nodes=None``: the narrow one alone); on
    ``n_threads`` threads. ``max_out_of_range``: the share of a window's rows that may have a
    feature or prediction outside the reference's range before the estimate is not trusted.
    Levels: ``thresholds`` by metric, else ``warning_drop`` / ``critical_drop`` (relative)
    above the reference's realized value.
    """

    name = "estimated_error"

    def __init__(
        self,
        folds: AtLeastTwo = 5,
        confidence: Rate = 0.95,
        max_iter: Count = 100,
        learning_rate: Rate = 0.1,
        max_leaf_nodes: AtLeastTwo = 15,
        min_samples_leaf: Count = 20,
        wide_max_leaf_nodes: AtLeastTwo | None = 63,
        wide_min_samples_leaf: Count = 10,
        min_reference: Count = 200,
        min_rows: Count = 30,
        max_out_of_range: Share = 0.1,
        thresholds: Mapping[str, Threshold] | None = None,
        warning_drop: NonNegative = 0.05,
        critical_drop: NonNegative = 0.10,
        n_threads: Count | None = 1,
        random_state: Seed = 0,
    ) -> None:
        self.folds = folds
        self.confidence = confidence
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.wide_max_leaf_nodes = wide_max_leaf_nodes
        self.wide_min_samples_leaf = wide_min_samples_leaf
        self.min_reference = min_reference
        self.min_rows = min_rows
        self.max_out_of_range = max_out_of_range
        self.thresholds = thresholds
        self.warning_drop = warning_drop
        self.critical_drop = critical_drop
        self.n_threads = n_threads
        self.random_state = random_state
        self.numeric_: tuple[str, ...] | None = None
        self.categories_: dict[str, tuple[str, ...]] | None = None
        self.models_: dict[str, list[Any]] | None = None
        # The reference's medians of the numeric features and of the prediction, from which
        # the wide model measures distances.
        self.center_: np.ndarray | None = None
        # How far a row's realized |e| (e^2) strays from its prediction, relative to it.
        self.spread_: dict[str, float] | None = None
        # The error models' calibration on held-out rows, by bins of the predicted error:
        # the bins' inner edges, and per bin the mean residual (realized - predicted) and
        # the variance of that mean.
        self.edges_: dict[str, np.ndarray] | None = None
        self.bin_bias_: dict[str, np.ndarray] | None = None
        self.bin_variance_: dict[str, np.ndarray] | None = None
        # Relative error of the held-out window mean under covariate shifts of the reference
        # (see ``_shift_error``): systematic, so it does not shrink with the window's rows.
        self.shift_error_: dict[str, float] | None = None
        self.range_: np.ndarray | None = None  # (2, columns) of the error models' inputs
        self.reference_: dict[str, float | None] | None = None
        # Out of fold on the reference: the error models' mean squared error against that of
        # the reference's mean error (below 1: they learnt which rows err more).
        self.relative_error_: dict[str, float] | None = None
        self.unusable_: str | None = None

    def fit(
        self,
        reference: Any,
        predictions: Sequence[float] | np.ndarray | None = None,
        labels: Sequence[float] | np.ndarray | None = None,
    ) -> Self:
        """Learn the model's absolute and squared errors on the reference. Without
        predictions or labels the detector is fitted but unusable: ``run`` says why."""
        self._validate_params()
        self.unusable_ = None
        data = as_dataset(reference, what="reference")
        self.numeric_ = data.numeric_names
        self.categories_ = {c.name: tuple(str(v) for v in c.categories) for c in data.categorical}
        if predictions is None or labels is None:
            missing = "predictions" if predictions is None else "labels"
            self.unusable_ = f"the reference has no {missing}; DLE learns the errors from both"
            return self
        predicted = _vector(predictions, data.rows, "predictions")
        true = _vector(labels, data.rows, "labels")
        inputs, _ = self._inputs(data, predicted)
        usable = np.isfinite(predicted) & np.isfinite(true)
        inputs, predicted, true = inputs[usable], predicted[usable], true[usable]
        raw = inputs
        self.center_ = None
        if inputs.shape[0]:
            self.center_ = np.nanmedian(inputs[:, self._measured()], axis=0)
        inputs = self._with_distances(inputs)
        if true.size < self.min_reference:
            self.unusable_ = (
                f"the reference has {true.size:,} rows with a prediction and a label; DLE "
                f"needs {self.min_reference:,} to learn the errors"
            )
            return self
        error = predicted - true
        targets = {"mae": np.abs(error), "rmse": error**2}
        self.models_, self.spread_, self.relative_error_ = {}, {}, {}
        self.edges_, self.bin_bias_, self.bin_variance_ = {}, {}, {}
        self.shift_error_ = {}
        splits = KFold(self.folds, shuffle=True, random_state=self.random_state).split(inputs)
        folds = list(splits)
        with limited_threads(self.n_threads):
            for name, target in targets.items():
                held_out = np.empty_like(target)
                models = []
                for train, held in folds:
                    model = self._model().fit(inputs[train], target[train])
                    held_out[held] = np.maximum(model.predict(inputs[held]), 0.0)
                    models.append(model)
                self.models_[name] = models
                self._calibrate(name, held_out, target - held_out)
                # The error models' level is learnt from the reference's rows: it is off by
                # as much as the reference's mean error is, relative to it, in every window.
                level = float(target.std() / np.sqrt(target.size) / max(target.mean(), 1e-300))
                self.shift_error_[name] = float(
                    np.hypot(_shift_error(raw, target, held_out), level)
                )
                # Var(realized | x) taken proportional to the prediction squared (for a normal
                # error, Var|e| = (pi/2 - 1) E[|e|]^2 and Var e^2 = 2 E[e^2]^2).
                self.spread_[name] = float(
                    ((target - held_out) ** 2).sum() / max((held_out**2).sum(), 1e-300)
                )
                constant = float(((target - target.mean()) ** 2).mean())
                mse = float(((target - held_out) ** 2).mean())
                self.relative_error_[name] = mse / constant if constant > 0 else 1.0
        self.range_ = np.vstack([np.nanmin(inputs, axis=0), np.nanmax(inputs, axis=0)])
        self.reference_ = {
            "mae": float(np.abs(error).mean()),
            "rmse": float(np.sqrt((error**2).mean())),
        }
        return self

    def _calibrate(self, name: str, predicted: np.ndarray, residual: np.ndarray) -> None:
        """How far off the error model is where it predicts a given error, from held-out
        rows only: a window's estimate is as uncertain as the reference's mean residual over
        rows like the window's, which grows where the window sits in thinly held bins."""
        assert self.edges_ is not None and self.bin_bias_ is not None
        assert self.bin_variance_ is not None
        bins = max(1, min(CALIBRATION_BINS, residual.size // MIN_BIN_ROWS))
        edges = np.unique(np.quantile(predicted, np.linspace(0, 1, bins + 1)[1:-1]))
        which = np.searchsorted(edges, predicted, side="right")
        counts = np.bincount(which, minlength=edges.size + 1).astype(np.float64)
        sums = np.bincount(which, weights=residual, minlength=edges.size + 1)
        squares = np.bincount(which, weights=residual**2, minlength=edges.size + 1)
        counts = np.maximum(counts, 1.0)
        mean = sums / counts
        variance = np.maximum(squares / counts - mean**2, 0.0) * counts / np.maximum(counts - 1, 1)
        self.edges_[name] = edges
        self.bin_bias_[name] = mean
        self.bin_variance_[name] = variance / counts

    def _model(self) -> Any:
        assert self.categories_ is not None
        numeric = len(self.numeric_ or ())
        categorical = [
            numeric + j
            for j, names in enumerate(self.categories_.values())
            if len(names) <= MAX_TREE_CATEGORIES
        ]

        def boosted(leaves: int, leaf_rows: int) -> HistGradientBoostingRegressor:
            return HistGradientBoostingRegressor(
                max_iter=self.max_iter,
                learning_rate=self.learning_rate,
                max_leaf_nodes=leaves,
                min_samples_leaf=leaf_rows,
                categorical_features=categorical or None,
                random_state=self.random_state,
            )

        narrow = boosted(self.max_leaf_nodes, self.min_samples_leaf)
        if self.wide_max_leaf_nodes is None:
            return narrow
        # The narrow model sees the inputs without the distances appended after them.
        inputs = numeric + len(self.categories_) + 1
        without_distances = ColumnTransformer([("inputs", "passthrough", list(range(inputs)))])
        return VotingRegressor(
            [
                ("narrow", make_pipeline(without_distances, narrow)),
                ("wide", boosted(self.wide_max_leaf_nodes, self.wide_min_samples_leaf)),
            ]
        )

    def _measured(self) -> list[int]:
        """The columns of the inputs whose distance from the median the wide model sees: the
        numeric features and the prediction (not the categories' codes)."""
        assert self.categories_ is not None
        numeric = len(self.numeric_ or ())
        return [*range(numeric), numeric + len(self.categories_)]

    def _with_distances(self, inputs: np.ndarray) -> np.ndarray:
        if self.wide_max_leaf_nodes is None or self.center_ is None:
            return inputs
        return np.column_stack([inputs, np.abs(inputs[:, self._measured()] - self.center_)])

    def _inputs(self, data: Dataset, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Numeric features, categorical codes in the reference's coding (NaN: missing or
        unseen), then the prediction; and which rows have a category the reference lacks."""
        assert self.categories_ is not None
        coded = []
        unseen = np.zeros(data.rows, dtype=bool)
        for column in data.categorical:
            known = {name: j for j, name in enumerate(self.categories_[column.name])}
            # The window's codes in the reference's coding; -2: unseen, -1: missing.
            lookup = np.array(
                [known.get(str(v), -2) for v in column.categories] + [-1], dtype=np.int64
            )
            codes = lookup[np.where(column.codes >= 0, column.codes, -1)]
            unseen |= codes == -2
            coded.append(np.where(codes >= 0, codes, np.nan))
        matrix = np.column_stack([data.numeric, *coded, predicted])
        return np.asarray(matrix, dtype=np.float64), unseen

    def estimate(
        self, window: Any, predictions: Sequence[float] | np.ndarray | None = None
    ) -> Estimate:
        """The window's estimated MAE and RMSE with their bands, and whether to trust them
        (``predictions``: the model's, one a row of ``window``; required)."""
        if predictions is None:
            raise ValueError("DLE estimates from the window's features and its predictions")
        if self.unusable_ is not None:
            return Estimate("dle", 0, {}, self.confidence, (self.unusable_,))
        self._check_fitted("models_", "spread_", "range_", "numeric_", "categories_")
        assert self.models_ is not None and self.spread_ is not None and self.range_ is not None
        assert self.numeric_ is not None and self.categories_ is not None
        data = align(as_dataset(window, what="window"), self.numeric_, list(self.categories_))
        predicted = _vector(predictions, data.rows, "predictions")
        inputs, unseen = self._inputs(data, predicted)
        inputs, unseen = inputs[np.isfinite(predicted)], unseen[np.isfinite(predicted)]
        inputs = self._with_distances(inputs)
        rows = int(inputs.shape[0])
        if rows < self.min_rows:
            reason = f"{rows:,} rows with a prediction; estimates need {self.min_rows:,}"
            return Estimate("dle", rows, {}, self.confidence, (reason,))
        reasons = []
        outside = self._out_of_range(inputs, unseen)
        if outside > self.max_out_of_range:
            reasons.append(
                f"{outside:.0%} of the window's rows have a feature or prediction outside the "
                f"reference's range (or an unseen category; at most {self.max_out_of_range:.0%} "
                "may): the error model would extrapolate"
            )
        z = float(norm.ppf(0.5 + self.confidence / 2))
        with limited_threads(self.n_threads):
            per_fold = {
                name: np.stack([np.maximum(m.predict(inputs), 0.0) for m in models])
                for name, models in self.models_.items()
            }
        metrics: dict[str, Estimated] = {}
        folds = self.folds
        for name, predicted_rows in per_fold.items():
            per_row = predicted_rows.mean(axis=0)
            value = float(per_row.mean())
            sampling = self.spread_[name] * (per_row**2).sum() / rows**2
            # The error models' own error: fold models trained on overlapping (K-1)/K of the
            # reference disagree (K-1)/sqrt(K) times less than a model's error from the
            # reference it was given (the jackknife's inflation); it does not shrink with the
            # window's rows, and grows where the reference is thin.
            model = (predicted_rows.mean(axis=1).std() * (folds - 1) / np.sqrt(folds)) ** 2
            # The error model's own error where the window's rows are, from held-out rows.
            assert self.edges_ is not None and self.bin_bias_ is not None
            assert self.bin_variance_ is not None
            which = np.searchsorted(self.edges_[name], per_row, side="right")
            share = np.bincount(which, minlength=self.bin_bias_[name].size) / rows
            bias = float(share @ self.bin_bias_[name])
            calibration = float((share**2) @ self.bin_variance_[name])
            # The bias widens the band rather than correcting the estimate: on held-out rows
            # shifting the estimate by it made the estimate worse under covariate shift.
            assert self.shift_error_ is not None
            shift = (self.shift_error_[name] * value) ** 2
            sd = float(np.sqrt(sampling + model + calibration + bias**2 + shift))
            lower, upper = max(value - z * sd, 0.0), value + z * sd
            if name == "rmse":  # the band of the mean squared error, through the root
                metrics[name] = Estimated(math.sqrt(value), math.sqrt(lower), math.sqrt(upper))
            else:
                metrics[name] = Estimated(value, lower, upper)
        assert self.relative_error_ is not None
        return Estimate(
            "dle",
            rows,
            metrics,
            self.confidence,
            tuple(reasons),
            {
                "out_of_range_share": outside,
                "error_model_relative_mse": dict(self.relative_error_),
            },
        )

    def _out_of_range(self, inputs: np.ndarray, unseen: np.ndarray) -> float:
        assert self.range_ is not None
        with np.errstate(invalid="ignore"):
            beyond = (inputs < self.range_[0]) | (inputs > self.range_[1])
        return float((beyond.any(axis=1) | unseen).mean())

    def reference_metrics(self) -> dict[str, float | None]:
        return dict(self.reference_ or {})

    def run(
        self, window: Any, predictions: Sequence[float] | np.ndarray | None = None
    ) -> DetectionResult:
        estimate = self.estimate(window, predictions)
        reference = self.reference_metrics()
        thresholds = {
            name: (self.thresholds or {}).get(name)
            or default_threshold(name, reference.get(name), self.warning_drop, self.critical_drop)
            for name in DLE_METRICS
        }
        return estimate_result(self.name, estimate, thresholds, reference)


# Covariate shifts the reference is tilted by to measure the error models' systematic error:
# row weights exp(t * z) and exp(t * |z|) for each standardized input z.
SHIFT_TILTS = (0.5, 1.0, 1.5)


def _shift_error(inputs: np.ndarray, target: np.ndarray, held_out: np.ndarray) -> float:
    """Root mean square, over covariate-shifted reweightings of the reference, of the relative
    gap between the realized mean error and the mean of the out-of-fold predicted errors. The
    predictions are held out (no row is scored by a model that learnt it), and each reweighting
    averages thousands of rows, so the gap is the error models' bias under that shift rather
    than sampling noise: a shifted window's estimate is off by as much, however many rows."""
    finite = np.where(np.isfinite(inputs), inputs, np.nanmedian(inputs, axis=0))
    spread = finite.std(axis=0)
    z = (finite - finite.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    gaps = []
    for column in z[:, spread > 0].T:
        for direction in (column, -column, np.abs(column)):
            for tilt in SHIFT_TILTS:
                weight = np.exp(tilt * (direction - direction.max()))
                predicted = float(weight @ held_out)
                if predicted > 0:
                    gaps.append((float(weight @ target) - predicted) / predicted)
    return float(np.sqrt(np.mean(np.square(gaps)))) if gaps else 0.0


def _vector(values: Sequence[float] | np.ndarray, rows: int, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size != rows:
        raise ValueError(f"{what} must be 1-D with one value a row ({rows}), got {array.shape}")
    return array
