"""A window's shift verdict: ``label_shift``, ``covariate_shift``, ``both`` or ``none``, in one
sentence with its evidence.

Under pure label shift the window's p(x) is the reference's re-weighted by the class mix,
sum_y p(y) p(x | y): each reference row weighted by w(y) of its label (BBSE, ``label_shift``)
matches the window. So each feature is tested twice, against the reference as it is and against
it re-weighted by w(y) (``detectors.weighted``, the same tests both times):

- drift the re-weighting explains (drifted as is, not after re-weighting) is label shift;
- drift that remains after re-weighting is covariate shift.

The verdict, with ``alpha`` split in two halves (Bonferroni), one for the test of unchanged
priors and one for the features (each family corrected across features, each finding gated by
effect size as ``univariate_drift`` gates it), so that a clean window is ``none`` with chance at
least 1 - alpha:

- priors moved and no feature drifts after re-weighting: ``label_shift`` (the drifted features
  are the ones it explains);
- priors moved, some drift explained and some not: ``both``;
- priors moved but the re-weighting explains no drifted feature: ``covariate_shift`` (the
  features moved in a way no class mix predicts; the predicted classes moved with them);
- priors unchanged and features drifted: ``covariate_shift``; nothing: ``none``.

``group_under_verdict`` applies it to the collector's rows: a per-feature drift finding the
verdict explains is no longer a finding of its own, so a label shift reads as one label shift,
not as ten unrelated drifted features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np

from inferwatch.collector.detectors import stats
from inferwatch.collector.detectors.base import Detector
from inferwatch.collector.detectors.dataset import align, as_dataset
from inferwatch.collector.detectors.label_shift import LabelShift, PriorEstimate, class_names
from inferwatch.collector.detectors.params import (
    AtLeastTwo,
    Count,
    NonNegative,
    Rate,
    Share,
)
from inferwatch.collector.detectors.result import Decision, DetectionResult, FeatureResult, Result
from inferwatch.collector.detectors.weighted import (
    CategoricalColumn,
    Comparison,
    NumericColumn,
    compare_categorical,
    compare_numeric,
)

Verdict = Literal["label_shift", "covariate_shift", "both", "none"]
VERDICTS: tuple[Verdict, ...] = ("label_shift", "covariate_shift", "both", "none")
# What a feature's drift is, once the verdict is known.
Status = Literal["explained", "covariate_shift", "no_drift", "not_enough_data"]


@dataclass(frozen=True)
class FeatureFinding:
    """One feature against the reference as it is (``plain``) and re-weighted by w(y)."""

    feature: str
    plain: Comparison | None
    reweighted: Comparison | None
    plain_adjusted: float | None = None
    reweighted_adjusted: float | None = None
    plain_drift: bool = False
    reweighted_drift: bool = False


class ShiftVerdict(Detector):
    """Tells label shift from covariate shift in a window, from the reference's features,
    labels and predictions and the window's features and predictions.

    Parameters
    ----------
    alpha: the chance that a window without shift gets a verdict other than ``none``; half of
        it for the test of unchanged priors, half for the features.
    correction: across features (each family): "bonferroni", "holm", "bh" or "none".
    min_samples: fewer window rows (or a feature's values) than this -> not tested.
    min_psi, min_wasserstein_sd, min_total_variation: the features' effect-size gate, as in
        ``univariate_drift``.
    min_prior_shift: the priors' effect-size gate (their total variation), as ``LabelShift``'s
        ``min_total_variation``.
    confidence, regularization: ``LabelShift``'s.
    bins: quantile bins of the reference for PSI.
    """

    name = "shift_verdict"

    def __init__(
        self,
        alpha: Rate = 0.05,
        correction: stats.Correction = "bonferroni",
        min_samples: Count = 100,
        min_psi: NonNegative = 0.1,
        min_wasserstein_sd: NonNegative = 0.05,
        min_total_variation: Share = 0.05,
        min_prior_shift: Share = 0.1,
        confidence: Rate = 0.95,
        regularization: NonNegative = 0.0,
        bins: AtLeastTwo = 10,
    ) -> None:
        self.alpha = alpha
        self.correction = correction
        self.min_samples = min_samples
        self.min_psi = min_psi
        self.min_wasserstein_sd = min_wasserstein_sd
        self.min_total_variation = min_total_variation
        self.min_prior_shift = min_prior_shift
        self.confidence = confidence
        self.regularization = regularization
        self.bins = bins
        self.label_shift_: LabelShift | None = None
        self.numeric_: tuple[tuple[str, NumericColumn], ...] | None = None
        self.categorical_: tuple[tuple[str, CategoricalColumn], ...] | None = None

    # -- fitting ----------------------------------------------------------------------------

    def fit(
        self,
        reference: Any,
        labels: Any = None,
        predictions: Any = None,
        *,
        feature_names: Sequence[str] | None = None,
    ) -> Self:
        """Learn from the reference's features, its ``labels`` and the model's ``predictions``
        on it (1-D classes aligned with the rows; rows missing either are left out). The
        predictions should be on rows the model was not trained on: BBSE needs the confusion
        the model will have on new rows."""
        self._validate_params()
        if labels is None or predictions is None:
            raise ValueError(
                "fit needs the reference's features, labels and predictions: "
                "fit(features, labels, predictions)"
            )
        data = as_dataset(reference, feature_names=feature_names, what="reference")
        truth, predicted = class_names(labels), class_names(predictions)
        if not len(truth) == len(predicted) == data.rows:
            raise ValueError(
                f"labels ({len(truth)}) and predictions ({len(predicted)}) must have one value "
                f"a reference row ({data.rows})"
            )
        kept = np.array(
            [y is not None and p is not None for y, p in zip(truth, predicted, strict=True)],
            dtype=bool,
        )
        label_shift = LabelShift(
            alpha=self.alpha / 2,
            confidence=self.confidence,
            min_samples=self.min_samples,
            min_total_variation=self.min_prior_shift,
            regularization=self.regularization,
        ).fit(
            [p for p, k in zip(predicted, kept, strict=True) if k],
            [y for y, k in zip(truth, kept, strict=True) if k],
        )
        assert label_shift.classes_ is not None
        index = {c: j for j, c in enumerate(label_shift.classes_)}
        groups = np.array([index[y] for y, k in zip(truth, kept, strict=True) if k and y])
        rows = data.take(np.flatnonzero(kept))
        self.numeric_ = tuple(
            (name, NumericColumn.of(rows.numeric[:, j], groups, self.bins))
            for j, name in enumerate(rows.numeric_names)
        )
        self.categorical_ = tuple(
            (c.name, CategoricalColumn(c.codes, groups, c.categories)) for c in rows.categorical
        )
        self.label_shift_ = label_shift
        return self

    # -- running ----------------------------------------------------------------------------

    def run(self, window: Any, predictions: Any = None) -> DetectionResult:
        """The verdict on the window's features and the model's ``predictions`` on them."""
        self._check_fitted("label_shift_", "numeric_", "categorical_")
        assert self.label_shift_ is not None
        assert self.numeric_ is not None and self.categorical_ is not None
        if predictions is None:
            raise ValueError("run needs the window's predictions: run(features, predictions)")
        data = align(
            as_dataset(window, what="window"),
            [name for name, _ in self.numeric_],
            [name for name, _ in self.categorical_],
        )
        estimate = self.label_shift_.estimate(predictions)
        if isinstance(estimate, DetectionResult):
            return DetectionResult.not_enough_data(
                self.name,
                estimate.message.replace("to estimate its class priors", "for a verdict"),
                threshold=self.alpha,
            )
        shifted = self.label_shift_.shifted(estimate)
        ones = np.ones(len(estimate.classes))
        weights = estimate.weights if shifted else ones
        findings = []
        for j, (name, numeric) in enumerate(self.numeric_):
            values = data.numeric[:, j]
            plain = compare_numeric(numeric, ones, values)
            reweighted = compare_numeric(numeric, weights, values) if shifted else plain
            findings.append(FeatureFinding(name, plain, reweighted))
        for (name, categorical), coded in zip(self.categorical_, data.categorical, strict=True):
            present = coded.codes[coded.codes >= 0]
            tally = np.bincount(present, minlength=len(coded.categories))
            counts = {c: int(n) for c, n in zip(coded.categories, tally.tolist(), strict=True) if n}
            plain = compare_categorical(categorical, ones, counts)
            reweighted = compare_categorical(categorical, weights, counts) if shifted else plain
            findings.append(FeatureFinding(name, plain, reweighted))
        return self._verdict(estimate, shifted, self._decide(findings))

    def _decide(self, findings: list[FeatureFinding]) -> list[FeatureFinding]:
        """Correct each family across the testable features at alpha / 2; gate by effect."""
        level = self.alpha / 2
        decided = list(findings)
        for side in ("plain", "reweighted"):
            testable = [
                i
                for i, f in enumerate(findings)
                if (c := getattr(f, side)) is not None and c.n_window >= self.min_samples
            ]
            p = np.array([getattr(findings[i], side).p_value for i in testable], np.float64)
            adjusted = stats.adjust_p_values(p, self.correction)
            for i, a in zip(testable, adjusted.tolist(), strict=True):
                comparison = getattr(findings[i], side)
                drift = a < level and self._large(comparison)
                decided[i] = _with(decided[i], side, a, drift)
        return decided

    def _large(self, comparison: Comparison) -> bool:
        sizes = comparison.effect_sizes
        if sizes.get("psi", 0.0) >= self.min_psi:
            return True
        if comparison.test == "ks":
            return sizes.get("wasserstein_sd", 0.0) >= self.min_wasserstein_sd
        return sizes.get("total_variation", 0.0) >= self.min_total_variation

    def _verdict(
        self, estimate: PriorEstimate, shifted: bool, findings: list[FeatureFinding]
    ) -> DetectionResult:
        drifted = [f.feature for f in findings if f.plain_drift]
        remaining = [f.feature for f in findings if f.reweighted_drift]
        tested = [f for f in findings if f.plain_adjusted is not None]
        explained: list[str] = []
        covariate: list[str] = []
        verdict: Verdict
        # Features that match the reference as it is but not re-weighted: the class mix the
        # predictions imply moves them, and they did not move. The predictions moved for
        # another reason (a covariate shift), and that class mix explains nothing. A "both"
        # needs drift the class mix explains and none it contradicts: priors that moved with
        # no feature following them are the covariate shift's doing as far as the features
        # can tell.
        contradicted = [f for f in remaining if f not in drifted]
        if shifted and not remaining:
            verdict, explained = "label_shift", drifted
        elif shifted and not contradicted and set(drifted) - set(remaining):
            verdict = "both"
            explained = [f for f in drifted if f not in remaining]
            covariate = remaining
        elif shifted or drifted:
            verdict, covariate = "covariate_shift", drifted or remaining
        else:
            verdict = "none"
        smallest = min(
            (f.plain_adjusted for f in tested if f.plain_adjusted is not None), default=1.0
        )
        p_value = min(1.0, 2 * min(estimate.p_value, smallest))
        statuses = {f.feature: _status(f, explained, covariate) for f in findings}
        message = _sentence(verdict, shifted, estimate, findings, explained, covariate, smallest)
        details: dict[str, Any] = {
            "verdict": verdict,
            "explained": explained,
            "covariate_shift": covariate,
            # Features the re-weighted reference matches: what a label shift would explain.
            "consistent": [
                f.feature
                for f in findings
                if f.reweighted_adjusted is not None and not f.reweighted_drift
            ],
            "drifted": drifted,
            "drifted_after_reweighting": remaining if shifted else [],
            "contradicted": contradicted if shifted else [],
            "priors_moved": shifted,
            "priors": estimate.to_dict(),
            "alpha": self.alpha,
            "correction": self.correction,
            "features_tested": len(tested),
        }
        return DetectionResult(
            self.name,
            Decision.OK if verdict == "none" else Decision.ALERT,
            estimate.total_variation,
            p_value,
            self.alpha,
            message,
            tuple(self._feature_result(f, statuses[f.feature], shifted) for f in findings),
            details=details,
        )

    def _feature_result(self, f: FeatureFinding, status: Status, shifted: bool) -> FeatureResult:
        name = f"feature `{f.feature}`"
        shown = f.reweighted if shifted else f.plain
        adjusted = f.reweighted_adjusted if shifted else f.plain_adjusted
        if status == "not_enough_data" or shown is None:
            n = 0 if f.plain is None else f.plain.n_window
            return FeatureResult(
                f.feature,
                "none",
                None,
                None,
                None,
                {},
                Decision.NOT_ENOUGH_DATA,
                f"{name}: {n} values in the window; at least {self.min_samples} are needed",
                threshold=self.alpha / 2,
            )
        plain = _evidence(f.plain, f.plain_adjusted)
        after = _evidence(f.reweighted, f.reweighted_adjusted)
        if status == "explained":
            message = (
                f"{name} drifted as the class mix predicts: {plain}; re-weighted by w(y): {after}"
            )
        elif status == "covariate_shift":
            message = f"{name} drifted beyond what the class mix explains: {plain}"
            if shifted:
                message += f"; re-weighted by w(y): {after}"
        else:
            message = f"{name}: no drift ({plain})"
        details: dict[str, Any] = {
            "status": status,
            "plain": _comparison(f.plain, f.plain_adjusted),
        }
        if shifted:
            details["reweighted"] = _comparison(f.reweighted, f.reweighted_adjusted)
        return FeatureResult(
            feature=f.feature,
            test=shown.test,
            statistic=shown.statistic,
            p_value=shown.p_value,
            adjusted_p_value=adjusted,
            effect_sizes=shown.effect_sizes,
            decision=Decision.ALERT if status == "covariate_shift" else Decision.OK,
            message=message,
            n_reference=round(shown.n_reference),
            n_window=shown.n_window,
            details=details,
            threshold=self.alpha / 2,
        )


def _with(finding: FeatureFinding, side: str, adjusted: float, drift: bool) -> FeatureFinding:
    if side == "plain":
        return FeatureFinding(
            finding.feature,
            finding.plain,
            finding.reweighted,
            adjusted,
            finding.reweighted_adjusted,
            drift,
            finding.reweighted_drift,
        )
    return FeatureFinding(
        finding.feature,
        finding.plain,
        finding.reweighted,
        finding.plain_adjusted,
        adjusted,
        finding.plain_drift,
        drift,
    )


def _status(f: FeatureFinding, explained: list[str], covariate: list[str]) -> Status:
    if f.plain_adjusted is None:
        return "not_enough_data"
    if f.feature in covariate:
        return "covariate_shift"
    if f.feature in explained:
        return "explained"
    return "no_drift"


def _evidence(comparison: Comparison | None, adjusted: float | None) -> str:
    if comparison is None:
        return "not tested"
    label = {"ks": "KS D", "chi2": "chi-squared"}[comparison.test]
    return (
        f"{label}={comparison.statistic:.3g}, {stats.format_p(adjusted)}, "
        f"PSI {comparison.effect_sizes.get('psi', 0.0):.2f}"
    )


def _comparison(comparison: Comparison | None, adjusted: float | None) -> dict[str, Any] | None:
    if comparison is None:
        return None
    return {
        "test": comparison.test,
        "statistic": comparison.statistic,
        "p_value": comparison.p_value,
        "adjusted_p_value": adjusted,
        "effect_sizes": dict(comparison.effect_sizes),
        "n_reference": comparison.n_reference,
        "n_window": comparison.n_window,
    }


def _names(features: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(f"`{f}`" for f in features[:limit])
    return shown + (f" and {len(features) - limit} more" if len(features) > limit else "")


def _moves(estimate: PriorEstimate, limit: int = 2) -> str:
    change = estimate.priors - estimate.reference_priors
    order = np.argsort(-np.abs(change), kind="stable")[:limit]
    return ", ".join(
        f"class `{estimate.classes[j]}` {estimate.reference_priors[j]:.0%} -> "
        f"{estimate.priors[j]:.0%}"
        for j in order
    )


def _sentence(
    verdict: Verdict,
    shifted: bool,
    estimate: PriorEstimate,
    findings: list[FeatureFinding],
    explained: list[str],
    covariate: list[str],
    smallest: float,
) -> str:
    """The verdict and its evidence in one sentence."""
    moves = _moves(estimate)
    count = len(explained)
    if verdict == "label_shift":
        features = (
            f"the {count} drifted feature{'s' if count != 1 else ''} ({_names(explained)}) "
            "moved as that class mix predicts"
            if explained
            else "the features are as that class mix predicts"
        )
        return f"label shift: {moves}; {features}"
    if verdict == "both":
        return (
            f"label shift and covariate shift: {moves}; the class mix explains the drift of "
            f"{_names(explained)}, not of {_names(covariate)}"
        )
    if verdict == "covariate_shift":
        drifted = [f.feature for f in findings if f.plain_drift]
        if not shifted:
            return (
                f"covariate shift: {_names(covariate)} drifted; class priors unchanged "
                f"({stats.format_p(estimate.p_value)} on the predicted classes)"
            )
        if drifted:
            return (
                f"covariate shift: {_names(covariate)} drifted in a way no class mix explains "
                f"(the predicted classes moved too: {moves})"
            )
        return (
            f"covariate shift: the predicted classes moved ({moves}) but the features did not "
            f"move as that class mix predicts ({_names(covariate)} would have)"
        )
    return (
        f"no shift: class priors unchanged ({stats.format_p(estimate.p_value)} on the predicted "
        f"classes) and no feature drifted (smallest adjusted {stats.format_p(smallest)})"
    )


# -- the collector's rows ----------------------------------------------------------------------

# What a grouped row's details say explained it.
EXPLAINED_BY = "explained_by"


def group_under_verdict(
    rows: Sequence[Result], drift_check: str = "univariate_drift"
) -> list[Result]:
    """``rows`` with the per-feature drift findings a failing label-shift verdict explains
    turned into passes that say so (and the drift check's summary re-worded, passing when
    nothing of its own remains). A verdict of ``label_shift`` explains every drifted feature
    the re-weighted reference matches; ``both`` those among them; the others explain nothing.
    """
    verdict = next((r for r in rows if r.detector == ShiftVerdict.name and r.feature is None), None)
    if verdict is None or not verdict.failing:
        return list(rows)
    kind = verdict.details.get("verdict")
    if kind not in ("label_shift", "both"):
        return list(rows)
    consistent = set(verdict.details.get("consistent") or ())
    evidence = verdict.message
    grouped: list[str] = []
    out: list[Result] = []
    for row in rows:
        if (
            row.detector == drift_check
            and row.feature is not None
            and row.failing
            and row.feature in consistent
        ):
            grouped.append(row.feature)
            out.append(
                row.replaced(
                    decision=Decision.OK,
                    message=f"explained by the label shift ({ShiftVerdict.name}): {row.message}",
                    details={**row.details, EXPLAINED_BY: ShiftVerdict.name},
                )
            )
        else:
            out.append(row)
    if not grouped:
        return out
    remaining = [
        r.feature for r in out if r.detector == drift_check and r.feature is not None and r.failing
    ]
    for i, row in enumerate(out):
        if row.detector != drift_check or row.feature is not None or not row.failing:
            continue
        details = {**row.details, EXPLAINED_BY: ShiftVerdict.name, "grouped": grouped}
        if remaining:
            message = (
                f"{len(remaining)} feature(s) drifted beyond the class mix: "
                f"{_names([f for f in remaining if f is not None])}; "
                f"{len(grouped)} more explained by the label shift ({evidence})"
            )
            out[i] = row.replaced(message=message, details=details)
        else:
            message = (
                f"{len(grouped)} drifted feature(s) explained by the label shift, grouped "
                f"under {ShiftVerdict.name}: {evidence}"
            )
            out[i] = row.replaced(decision=Decision.OK, message=message, details=details)
    return out
