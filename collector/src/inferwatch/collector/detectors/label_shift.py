"""Black-box shift estimation (BBSE, Lipton, Wang and Smola, ICML 2018): a window's class priors
from its predicted classes, before any label arrives.

Under label shift p(y) changes and p(x | y) does not, so the model's confusion P(y_hat = i | y =
j) = M[i, j] is the same in the reference and the window, and the window's predicted-class shares
are mu = M p, p its class priors. On the reference (rows the model was not trained on, with
predictions and labels) C[i, j] = P(y_hat = i, y = j) = M[i, j] q_j, q the reference's priors.
The importance weights w(y) = p(y) / q(y) solve C w = mu; they are estimated by least squares
under the constraints that make them weights (w >= 0, sum_j q_j w_j = 1), optionally pulled
towards w = 1 (no shift) by a ridge as RLLS does (Azizzadenesheli et al., ICLR 2019), for few
rows or many classes. The priors are p = w q.

Confidence intervals are the delta method's, with both samples' errors: the window's predicted
shares (multinomial over its m rows) and the reference's confusion (each label class's predicted
shares, multinomial over its n_j rows), Cov(p) = M^+ (Cov(mu) + sum_j p_j^2 Cov(M_j)) M^+T.

The test of "priors unchanged" is the chi-squared test of homogeneity of the reference's and
the window's predicted classes (black-box shift detection): with M invertible, p = q exactly when
mu = M q, the reference's predicted shares, so the test of mu needs no inverse and holds its
level however badly conditioned M is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

from inferwatch.collector.detectors import stats
from inferwatch.collector.detectors.base import Detector
from inferwatch.collector.detectors.metrics import ClassificationStats
from inferwatch.collector.detectors.params import Count, NonNegative, Rate, Share
from inferwatch.collector.detectors.result import Decision, DetectionResult, FeatureResult

# Above this condition number of M, the estimate is said to be unreliable (an inverse that
# amplifies sampling noise by 1,000 or more).
ILL_CONDITIONED = 1e3
# The weight given to the constraint sum_j q_j w_j = 1 in the least-squares solve, relative to
# the data rows: large enough that the constraint holds to ~1e-9 before renormalising.
_CONSTRAINT_WEIGHT = 1e4
# Below this share of its largest, a diagonal entry of R makes a problem rank-deficient.
_RANK_TOLERANCE = 1e-10


def class_names(values: Any) -> list[str | None]:
    """Classes as text, written as the collector's label join writes them (1.0 -> "1"); a
    missing value (None, NaN) is None."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"classes must be 1-D (one a row), got shape {array.shape}")
    names: list[str | None] = []
    for value in array.tolist():
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            names.append(None)
        elif isinstance(value, bool):
            names.append(str(value))
        elif isinstance(value, int | float):
            number = float(value)
            integral = number.is_integer() and abs(number) < 2**53
            names.append(str(int(number)) if integral else repr(number))
        else:
            names.append(str(value))
    return names


def _ordered(names: Sequence[str]) -> list[str]:
    """Classes in numeric order when they are all numbers, else in text order."""
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)


@dataclass(frozen=True)
class PriorEstimate:
    """A window's estimated class priors, their intervals and the importance weights."""

    classes: tuple[str, ...]  # the reference's label classes
    reference_priors: np.ndarray  # q
    priors: np.ndarray  # p = w q, on the simplex
    ci_low: np.ndarray
    ci_high: np.ndarray
    standard_errors: np.ndarray
    weights: np.ndarray  # w(y) = p / q
    statistic: float  # chi-squared of the predicted classes, reference vs window
    p_value: float
    dof: int
    total_variation: float  # between q and p
    condition_number: float
    n_reference: int
    n_window: int
    predicted_classes: tuple[str, ...]
    reference_predicted_shares: np.ndarray
    window_predicted_shares: np.ndarray

    def weight_of(self, label: str) -> float:
        return float(self.weights[self.classes.index(label)])

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "reference_priors": self.reference_priors.tolist(),
            "priors": self.priors.tolist(),
            "ci_low": self.ci_low.tolist(),
            "ci_high": self.ci_high.tolist(),
            "weights": self.weights.tolist(),
            "chi2": self.statistic,
            "dof": self.dof,
            "p_value": self.p_value,
            "total_variation": self.total_variation,
            "condition_number": self.condition_number,
            "n_reference": self.n_reference,
            "n_window": self.n_window,
            "predicted_classes": list(self.predicted_classes),
            "reference_predicted_shares": self.reference_predicted_shares.tolist(),
            "window_predicted_shares": self.window_predicted_shares.tolist(),
        }


class LabelShift(Detector):
    """BBSE: a window's class priors, their confidence intervals, a test of "priors unchanged"
    and the importance weights w(y), from the reference's confusion and the window's predictions.

    Parameters
    ----------
    alpha: level of the test of unchanged priors; per-class tests are Holm-corrected at it.
    confidence: the coverage of the priors' intervals.
    min_samples: fewer window predictions than this -> "not_enough_data".
    min_total_variation: the effect-size gate: the priors must move by at least this total
        variation (the share of rows whose class would have to change) to be a label shift.
    regularization: RLLS-style ridge pulling w towards 1 (no shift), relative to the squared
        residual of C w = mu; 0 (default) is the constrained least-squares BBSE estimate.
    """

    name = "label_shift"

    def __init__(
        self,
        alpha: Rate = 0.05,
        confidence: Rate = 0.95,
        min_samples: Count = 100,
        min_total_variation: Share = 0.1,
        regularization: NonNegative = 0.0,
    ) -> None:
        self.alpha = alpha
        self.confidence = confidence
        self.min_samples = min_samples
        self.min_total_variation = min_total_variation
        self.regularization = regularization
        self.classes_: tuple[str, ...] | None = None
        self.predicted_: tuple[str, ...] | None = None
        # counts_[i, j]: reference rows predicted predicted_[i] and labelled classes_[j].
        self.counts_: np.ndarray | None = None

    # -- fitting ----------------------------------------------------------------------------

    def fit(self, reference: Any, labels: Any = None) -> Self:
        """Learn the confusion from the reference's predicted classes and ``labels`` (1-D,
        aligned; rows missing either are left out), or from a ``ClassificationStats``."""
        self._validate_params()
        if labels is None:
            if not isinstance(reference, ClassificationStats):
                raise ValueError(
                    "fit needs the reference's predicted classes and their labels "
                    "(fit(predictions, labels)) or a ClassificationStats"
                )
            # ClassificationStats.confusion is [true, predicted].
            true, predicted_index = np.nonzero(reference.confusion)
            pairs = [
                (reference.classes[j], reference.classes[i], int(reference.confusion[i, j]))
                for i, j in zip(true.tolist(), predicted_index.tolist(), strict=True)
            ]
        else:
            predicted, truth = class_names(reference), class_names(labels)
            if len(predicted) != len(truth):
                raise ValueError(
                    f"predictions and labels must be aligned: {len(predicted)} predictions, "
                    f"{len(truth)} labels"
                )
            tally: dict[tuple[str, str], int] = {}
            for p, y in zip(predicted, truth, strict=True):
                if p is not None and y is not None:
                    tally[(p, y)] = tally.get((p, y), 0) + 1
            pairs = [(p, y, n) for (p, y), n in tally.items()]
        if not pairs:
            raise ValueError("the reference has no row with both a prediction and a label")
        classes = _ordered(list({y for _, y, _ in pairs}))
        if len(classes) < 2:
            raise ValueError(f"the reference's labels hold one class ({classes[0]!r}); need two")
        predicted_classes = _ordered(list({p for p, _, _ in pairs} | set(classes)))
        counts = np.zeros((len(predicted_classes), len(classes)))
        row = {c: i for i, c in enumerate(predicted_classes)}
        column = {c: j for j, c in enumerate(classes)}
        for p, y, n in pairs:
            counts[row[p], column[y]] += n
        self.classes_, self.predicted_, self.counts_ = (
            tuple(classes),
            tuple(predicted_classes),
            counts,
        )
        return self

    # -- running ----------------------------------------------------------------------------

    def run(self, window: Any) -> DetectionResult:
        """The window's priors from its predicted classes (1-D, or ``{class: count}``)."""
        estimate = self.estimate(window)
        if isinstance(estimate, DetectionResult):
            return estimate
        return self._result(estimate)

    def estimate(self, window: Any) -> PriorEstimate | DetectionResult:
        """The estimate, or the ``not_enough_data`` result of a window too small to judge."""
        self._check_fitted("counts_")
        assert self.counts_ is not None and self.classes_ and self.predicted_
        window_counts = _class_counts(window)
        n_window = int(sum(window_counts.values()))
        if n_window < self.min_samples:
            return DetectionResult.not_enough_data(
                self.name,
                f"not enough data: {n_window} predicted classes in the window; at least "
                f"{self.min_samples} are needed to estimate its class priors",
                threshold=self.alpha,
                n_window=n_window,
            )
        unseen = sorted(set(window_counts) - set(self.predicted_))
        predicted = self.predicted_ + tuple(unseen)
        counts = np.vstack([self.counts_, np.zeros((len(unseen), len(self.classes_)))])
        mu_counts = np.array([window_counts.get(c, 0) for c in predicted], dtype=np.float64)
        return self._estimate(predicted, counts, mu_counts)

    def _estimate(
        self, predicted: tuple[str, ...], counts: np.ndarray, mu_counts: np.ndarray
    ) -> PriorEstimate:
        assert self.classes_ is not None
        n = float(counts.sum())
        m = float(mu_counts.sum())
        n_j = counts.sum(axis=0)
        q = n_j / n
        joint = counts / n  # C
        confusion = counts / n_j  # M, columns sum to 1
        mu = mu_counts / m
        weights = _normalised(solve_weights(joint, q, mu, self.regularization), q)
        priors = weights * q
        # Delta method: the window's shares and each label class's predicted shares.
        noise = (np.diag(mu) - np.outer(mu, mu)) / m
        for j in range(q.size):
            column = confusion[:, j]
            noise += priors[j] ** 2 * (np.diag(column) - np.outer(column, column)) / n_j[j]
        inverse = np.linalg.pinv(confusion)
        covariance = inverse @ noise @ inverse.T
        se = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        z = float(scipy_stats.norm.ppf(0.5 + self.confidence / 2))
        chi = stats.chi2_two_sample(counts.sum(axis=1), mu_counts)
        singular = np.linalg.svd(confusion, compute_uv=False)
        condition = float(singular[0] / singular[-1]) if singular[-1] > 0 else float("inf")
        return PriorEstimate(
            classes=self.classes_,
            reference_priors=q,
            priors=priors,
            ci_low=np.clip(priors - z * se, 0.0, 1.0),
            ci_high=np.clip(priors + z * se, 0.0, 1.0),
            standard_errors=se,
            weights=weights,
            statistic=chi.statistic,
            p_value=chi.p_value,
            dof=chi.dof,
            total_variation=float(0.5 * np.abs(priors - q).sum()),
            condition_number=condition,
            n_reference=int(n),
            n_window=int(m),
            predicted_classes=predicted,
            reference_predicted_shares=counts.sum(axis=1) / n,
            window_predicted_shares=mu,
        )

    def weight_draws(self, estimate: PriorEstimate, draws: int, seed: int = 0) -> np.ndarray:
        """(draws, classes): w(y) from BBSE's own sampling distribution, by the parametric
        bootstrap of both of its inputs: each label class's predicted classes in the reference
        (multinomial over its n_j rows at the confusion's column) and the window's predicted
        classes (multinomial over its m rows at its shares), each draw solved as the estimate
        is. What estimates re-weighted by w(y) need to carry the error of w(y) into their band.
        """
        self._check_fitted("counts_")
        assert self.counts_ is not None
        extra = len(estimate.predicted_classes) - self.counts_.shape[0]
        counts = np.vstack([self.counts_, np.zeros((extra, self.counts_.shape[1]))])
        n_j = counts.sum(axis=0)
        q = n_j / n_j.sum()
        rng = np.random.default_rng(seed)
        # (draws, predicted, label classes): column j redrawn over its own n_j rows.
        joint = np.stack(
            [
                rng.multinomial(int(n_j[j]), counts[:, j] / n_j[j], size=draws)
                for j in range(q.size)
            ],
            axis=2,
        ) / float(n_j.sum())
        shares = rng.multinomial(estimate.n_window, estimate.window_predicted_shares, size=draws)
        mu = shares / float(estimate.n_window)
        return _normalised(solve_weights_stacked(joint, q, mu, self.regularization), q)

    def class_weights(
        self, estimate: PriorEstimate, draws: int, seed: int = 0
    ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """w(y) by class and ``draws`` draws of it by class (``weight_draws``), as
        ``CBPE.estimate`` takes them (``class_weights``, ``weight_draws``)."""
        sampled = self.weight_draws(estimate, draws, seed)
        point = {c: float(w) for c, w in zip(estimate.classes, estimate.weights, strict=True)}
        return point, {c: sampled[:, j] for j, c in enumerate(estimate.classes)}

    def shifted(self, estimate: PriorEstimate, alpha: float | None = None) -> bool:
        """Whether the priors moved: the test significant at ``alpha`` (the detector's by
        default) and the move at least ``min_total_variation``."""
        level = self.alpha if alpha is None else alpha
        return estimate.p_value < level and estimate.total_variation >= self.min_total_variation

    def _result(self, estimate: PriorEstimate) -> DetectionResult:
        shifted = self.shifted(estimate)
        features = self._per_class(estimate, shifted)
        evidence = (
            f"chi-squared={estimate.statistic:.3g} on the predicted classes, "
            f"{stats.format_p(estimate.p_value)}"
        )
        moves = prior_moves(estimate)
        if shifted:
            decision = Decision.ALERT
            message = f"label shift: {moves}; {evidence}"
        elif estimate.p_value < self.alpha:
            decision = Decision.OK
            message = (
                f"class priors: a significant but small move ({evidence}; total variation "
                f"{estimate.total_variation:.3f} < {self.min_total_variation:g}): {moves}"
            )
        else:
            decision = Decision.OK
            message = f"class priors unchanged ({evidence}); estimated: {moves}"
        if estimate.condition_number > ILL_CONDITIONED:
            message += (
                f"; the reference's confusion matrix is ill-conditioned (condition number "
                f"{estimate.condition_number:.3g}): the estimates are unreliable"
            )
        return DetectionResult(
            self.name,
            decision,
            estimate.total_variation,
            estimate.p_value,
            self.alpha,
            message,
            features,
            details=estimate.to_dict(),
        )

    def _per_class(self, estimate: PriorEstimate, shifted: bool) -> tuple[FeatureResult, ...]:
        """Per class, a two-sided z-test of p_j = q_j (Holm-corrected); Var(p_j - q_j) =
        Var(p_j) + q_j (1 - q_j) / n: the confusion's estimate and the reference's class shares
        are asymptotically independent (orthogonal multinomial parameters)."""
        q, p = estimate.reference_priors, estimate.priors
        se = np.sqrt(estimate.standard_errors**2 + q * (1 - q) / estimate.n_reference)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(se > 0, (p - q) / se, 0.0)
        raw = 2 * scipy_stats.norm.sf(np.abs(z))
        adjusted = stats.adjust_p_values(raw, "holm")
        rows = []
        for j, label in enumerate(estimate.classes):
            moved = shifted and adjusted[j] < self.alpha
            interval = f"{estimate.ci_low[j]:.0%}-{estimate.ci_high[j]:.0%}"
            rows.append(
                FeatureResult(
                    feature=label,
                    test="bbse",
                    statistic=float(p[j]),
                    p_value=float(raw[j]),
                    adjusted_p_value=float(adjusted[j]),
                    effect_sizes={
                        "prior_change": float(p[j] - q[j]),
                        "weight": float(estimate.weights[j]),
                    },
                    decision=Decision.ALERT if moved else Decision.OK,
                    message=(
                        f"class `{label}`: {q[j]:.0%} -> {p[j]:.0%} ({self.confidence:.0%} CI "
                        f"{interval}), w={estimate.weights[j]:.2f}"
                    ),
                    n_reference=estimate.n_reference,
                    n_window=estimate.n_window,
                    details={
                        "reference_prior": float(q[j]),
                        "prior": float(p[j]),
                        "ci_low": float(estimate.ci_low[j]),
                        "ci_high": float(estimate.ci_high[j]),
                        "weight": float(estimate.weights[j]),
                    },
                    threshold=self.alpha,
                )
            )
        return tuple(rows)


def prior_moves(estimate: PriorEstimate, limit: int = 3) -> str:
    """The classes whose priors moved most: ``class `2` 27% -> 70% (CI 64-76%)``."""
    change = estimate.priors - estimate.reference_priors
    order = np.argsort(-np.abs(change), kind="stable")[:limit]
    return ", ".join(
        f"class `{estimate.classes[j]}` {estimate.reference_priors[j]:.0%} -> "
        f"{estimate.priors[j]:.0%} (CI {estimate.ci_low[j]:.0%}-{estimate.ci_high[j]:.0%})"
        for j in order
    )


def solve_weights(
    joint: np.ndarray, priors: np.ndarray, mu: np.ndarray, regularization: float = 0.0
) -> np.ndarray:
    """w >= 0 with sum_j priors_j w_j = 1 minimising ||C w - mu||^2 + lambda ||w - 1||^2.

    Non-negative least squares with the sum constraint as one heavily weighted row; the result
    is clipped at 0 and renormalised so that the constraint holds exactly.
    """
    k = priors.size
    scale = max(1.0, float(np.abs(joint).sum()))
    rows = [joint, _CONSTRAINT_WEIGHT * scale * priors.reshape(1, -1)]
    targets = [mu, np.array([_CONSTRAINT_WEIGHT * scale])]
    if regularization > 0:
        root = math.sqrt(regularization)
        rows.append(root * np.eye(k))
        targets.append(root * np.ones(k))
    weights, _ = optimize.nnls(np.vstack(rows), np.concatenate(targets), maxiter=50 * k)
    weights = np.clip(weights, 0.0, None)
    total = float(weights @ priors)
    return weights / total if total > 0 else np.ones(k)


def solve_weights_stacked(
    joints: np.ndarray, priors: np.ndarray, mus: np.ndarray, regularization: float = 0.0
) -> np.ndarray:
    """``solve_weights`` for each of a stack of problems (joints (T, k, k), mus (T, k)).

    Where a problem's unconstrained least-squares solution is non-negative it is also the
    non-negative one, so all are solved at once by stacked QR, and only the others by
    ``solve_weights`` (one SciPy NNLS call a problem costs more than the arithmetic)."""
    draws, k = mus.shape
    scale = np.maximum(1.0, np.abs(joints).sum(axis=(1, 2)))
    heavy = _CONSTRAINT_WEIGHT * scale
    rows = [joints, heavy[:, None, None] * priors[None, None, :]]
    targets = [mus, heavy[:, None]]
    if regularization > 0:
        root = math.sqrt(regularization)
        rows.append(np.broadcast_to(root * np.eye(k), (draws, k, k)))
        targets.append(np.full((draws, k), root))
    q, r = np.linalg.qr(np.concatenate(rows, axis=1))
    projected = np.swapaxes(q, 1, 2) @ np.concatenate(targets, axis=1)[:, :, None]
    # A rank-deficient problem (a confusion with dependent columns) has no unique solution.
    diagonal = np.abs(np.diagonal(r, axis1=1, axis2=2))
    ranked = diagonal.min(axis=1) > _RANK_TOLERANCE * diagonal.max(axis=1)
    weights = np.full((draws, k), np.nan)
    weights[ranked] = np.linalg.solve(r[ranked], projected[ranked])[:, :, 0]
    total = weights @ priors
    usable = np.isfinite(weights).all(axis=1) & (weights >= 0).all(axis=1) & (total > 0)
    weights[usable] /= total[usable, None]
    for t in np.flatnonzero(~usable):
        weights[t] = solve_weights(joints[t], priors, mus[t], regularization)
    return weights


def _normalised(weights: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Weights whose priors w q sum to 1 exactly (each row of a stack of them)."""
    moved = weights * priors
    return moved / moved.sum(axis=-1, keepdims=True) / priors


def _class_counts(window: Any) -> dict[str, int]:
    if isinstance(window, Mapping):
        counts: dict[str, int] = {}
        for key, value in window.items():
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(
                    f"window counts must be whole numbers of rows, got {value!r} for {key!r}"
                )
            if value:
                (name,) = class_names([key])
                if name is not None:
                    counts[name] = counts.get(name, 0) + int(value)
        return counts
    tally: dict[str, int] = {}
    for name in class_names(window):
        if name is not None:
            tally[name] = tally.get(name, 0) + 1
    return tally
