"""Drift checks: per-feature and joint drift of the inputs, drift of the predictions and labels.

Each fits a detector of ``inferwatch.collector.detectors`` on the version's reference profile
once (the window's ``fitted`` cache) and runs it on every window. Their settings are the
detectors' parameters, with the detectors' own defaults:

- ``univariate_drift``: per feature, KS and Mann-Whitney (Cauchy-combined) on the row samples
  (the reference's and the window's reservoirs) for numbers, chi-squared for categories; PSI
  and chi-squared take the exact counts of every row where the summaries have them (bins
  frozen on the reference, category counts with unseen categories). Corrected across
  features, gated by effect size.
- ``multivariate_drift``: MMD permutation test (or a classifier two-sample test) on the row
  samples, reduced by PCA when the encoded rows are wide.
- ``correlation_drift``: each pair of numeric features' correlation (normal scores, Fisher's z)
  against the reference's, corrected over the pairs, gated by the size of the change.
- ``reconstruction_drift``: on wide inputs (more than 50 numeric feature columns: images,
  embeddings), the rows' mean PCA reconstruction error against the reference's held-out half;
  catches noise and structure off the reference's main directions. Narrower inputs answer
  ``not_enough_data`` saying so (``min_features`` lowers the bar).
- ``prediction_drift``: the same per-column tests on the model's output columns. In a
  classification task, an output column of whole numbers (a predicted class index or label) is
  a class column: chi-squared on the row samples' class counts, as the library tests integer
  classes, not KS on class numbers.
- ``label_drift``: the class frequencies of the labels joined to the window's predictions
  against the reference's labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from inferwatch.collector.detect.check import check, no_reference, not_enough_data
from inferwatch.collector.detect.columns import Columns
from inferwatch.collector.detect.levels import Calibration, SampleScorer, SampleScores
from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors import (
    ClassifierDrift,
    Dataset,
    DetectionResult,
    Detector,
    FeatureResult,
    MMDDrift,
    ReconstructionDrift,
    UnivariateDrift,
)
from inferwatch.collector.detectors import stats as detector_stats
from inferwatch.collector.detectors.correlation import CorrelationDrift
from inferwatch.collector.detectors.metrics import ClassificationStats
from inferwatch.collector.detectors.params import (
    AtLeastTwo,
    Count,
    NonNegative,
    Rate,
    Seed,
    Share,
    default_of,
)
from inferwatch.collector.detectors.reduction import AUTO_REDUCE_WIDTH
from inferwatch.collector.detectors.result import Decision, Result
from inferwatch.collector.labels.join import number_text
from inferwatch.collector.labels.scoring import stored_stats
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.settings import CheckSettings, ThresholdTable
from inferwatch.frame import Role, categorical


class ColumnDriftSettings(CheckSettings):
    """``univariate_drift`` and ``prediction_drift``: ``UnivariateDrift``'s parameters."""

    threshold: ThresholdTable | None = None
    alpha: Rate = default_of(UnivariateDrift, "alpha")
    correction: detector_stats.Correction = default_of(UnivariateDrift, "correction")
    min_samples: Count = default_of(UnivariateDrift, "min_samples")
    min_psi: NonNegative = default_of(UnivariateDrift, "min_psi")
    min_wasserstein_sd: NonNegative = default_of(UnivariateDrift, "min_wasserstein_sd")
    min_total_variation: Share = default_of(UnivariateDrift, "min_total_variation")

    def detector(self) -> UnivariateDrift:
        return UnivariateDrift(**self.detector_settings())


class MultivariateSettings(CheckSettings):
    """``multivariate_drift``: the MMD test (default) or the classifier two-sample test."""

    threshold: ThresholdTable | None = None
    method: Literal["mmd", "classifier"] = "mmd"
    alpha: Rate = default_of(MMDDrift, "alpha")
    # None: the method's own default (MMD: 100 permutations of 500 rows; the classifier: 1,000
    # rows, 50 permutations).
    n_permutations: Count | None = None
    max_rows: Count | None = None
    min_samples: AtLeastTwo = default_of(MMDDrift, "min_samples")
    reduction: Literal["auto", "pca", "random", "none"] = "auto"
    null: Literal["binomial", "permutation"] = default_of(ClassifierDrift, "null")
    random_state: Seed = default_of(MMDDrift, "random_state")

    def detector(self, **changes: Any) -> Detector:
        params: dict[str, Any] = {
            "alpha": self.alpha,
            "min_samples": self.min_samples,
            "reduction": None if self.reduction == "none" else self.reduction,
            "random_state": self.random_state,
        }
        for key in ("max_rows", "n_permutations"):
            if getattr(self, key) is not None:
                params[key] = getattr(self, key)
        params.update(changes)
        if self.method == "mmd":
            return MMDDrift(**params)
        return ClassifierDrift(null=self.null, **params)


class CorrelationSettings(CheckSettings):
    """``correlation_drift``: ``CorrelationDrift``'s parameters."""

    threshold: ThresholdTable | None = None
    alpha: Rate = default_of(CorrelationDrift, "alpha")
    min_change: Share = default_of(CorrelationDrift, "min_change")
    min_samples: AtLeastTwo = default_of(CorrelationDrift, "min_samples")
    max_features: AtLeastTwo = default_of(CorrelationDrift, "max_features")
    random_state: Seed = default_of(CorrelationDrift, "random_state")

    def detector(self) -> CorrelationDrift:
        return CorrelationDrift(**self.detector_settings())


class ReconstructionSettings(CheckSettings):
    """``reconstruction_drift``: ``ReconstructionDrift``'s parameters, and how wide the inputs
    must be for the check to run."""

    threshold: ThresholdTable | None = None
    # The numeric feature columns the reference needs: the test is for wide inputs (images,
    # embeddings), where per-feature and kernel tests lose what lies off the main directions;
    # on narrower ones the other drift checks see the same changes.
    min_features: AtLeastTwo = AUTO_REDUCE_WIDTH + 1
    n_components: Count | Rate = default_of(ReconstructionDrift, "n_components")
    alpha: Rate = default_of(ReconstructionDrift, "alpha")
    min_samples: AtLeastTwo = default_of(ReconstructionDrift, "min_samples")
    random_state: Seed = default_of(ReconstructionDrift, "random_state")

    def detector(self) -> ReconstructionDrift:
        settings = self.model_dump(exclude={"enabled", "threshold", "min_features"})
        return ReconstructionDrift(**settings)


class LabelDriftSettings(CheckSettings):
    """``label_drift``: the chi-squared test of ``UnivariateDrift`` on the label classes."""

    threshold: ThresholdTable | None = None
    alpha: Rate = default_of(UnivariateDrift, "alpha")
    min_samples: Count = default_of(UnivariateDrift, "min_samples")
    min_psi: NonNegative = default_of(UnivariateDrift, "min_psi")
    min_total_variation: Share = default_of(UnivariateDrift, "min_total_variation")


# -- univariate --------------------------------------------------------------------------------


def _column_scorer(role: Literal["feature", "output"]) -> Calibration:
    """Per column, the statistic ``univariate_drift`` scores a window with (KS D for numbers,
    chi-squared for categories and class columns), on samples of the reference's rows."""

    def scorer(profile: Profile, settings: ColumnDriftSettings, task: str | None) -> SampleScorer:
        columns = Columns.of(profile, role)
        if not columns:
            raise ValueError(_MISSING[role])
        rows = columns.rows(profile.reservoir)

        def fit(rows: Dataset) -> Callable[[Dataset], SampleScores]:
            detector = settings.detector().fit(rows)
            return lambda sample: {f.feature: f.statistic for f in detector.run(sample).features}

        return SampleScorer(as_classes(rows, class_columns(columns, profile, task)), fit)

    return scorer


def class_columns(columns: Columns, profile: Profile, task: str | None) -> tuple[str, ...]:
    """The numeric output columns holding classes: in a classification task, those whose
    reference values are all whole numbers (class indices or integer labels)."""
    if columns.role != "output" or task != "classification":
        return ()
    matrix, names = profile.reservoir.numeric("output")
    found = []
    for j, name in enumerate(names):
        if name not in columns.numeric:
            continue
        values = matrix[:, j]
        values = values[np.isfinite(values)]
        if values.size and bool(np.all(values == np.round(values))):
            found.append(name)
    return tuple(found)


def as_classes(data: Dataset, names: tuple[str, ...]) -> Dataset:
    """``data`` with the numeric columns ``names`` turned into categorical ones (1.0 -> "1")."""
    if not names:
        return data
    kept = [j for j, name in enumerate(data.numeric_names) if name not in names]
    classes = []
    for name in names:
        values = data.numeric[:, data.numeric_names.index(name)]
        texts = [number_text(v) if math.isfinite(v) else None for v in values.tolist()]
        classes.append(categorical(name, texts, role="output"))
    return Dataset(
        data.numeric[:, kept],
        tuple(data.numeric_names[j] for j in kept),
        (*data.categorical, *classes),
        data.row_ids,
        data.named,
    )


@check("univariate_drift", ColumnDriftSettings, calibration=_column_scorer("feature"))
def univariate_drift(
    profile: Profile | None, window: WindowView, settings: ColumnDriftSettings
) -> list[Result]:
    """One row per reference feature, then a summary row naming the drifted features."""
    return _per_column("univariate_drift", "feature", profile, window, settings)


@check("prediction_drift", ColumnDriftSettings, calibration=_column_scorer("output"))
def prediction_drift(
    profile: Profile | None, window: WindowView, settings: ColumnDriftSettings
) -> list[Result]:
    """The model's output columns (predicted class, class probabilities, regression values)
    against the reference's predictions."""
    return _per_column("prediction_drift", "output", profile, window, settings)


_MISSING: dict[Role, str] = {
    "feature": "the reference has no feature columns",
    "output": (
        "the reference has no predictions: upload it with predictions "
        "(inferwatch.set_reference(..., predictions=...)) to test the model's outputs"
    ),
}


def _per_column(
    name: str,
    role: Literal["feature", "output"],
    profile: Profile | None,
    window: WindowView,
    settings: ColumnDriftSettings,
) -> list[Result]:
    if profile is None:
        return no_reference(name, window.model, window.version)
    columns = Columns.of(profile, role)
    if not columns:
        return not_enough_data(name, _MISSING[role])
    summary, reservoir = window.state.summary, window.state.reservoir
    if role == "output":
        present = sorted(n for (r, n) in summary.columns if r == "output")
        if not present:
            return not_enough_data(name, "the window's spans carry no model outputs")
        if not set(present) & set(columns.names):
            return not_enough_data(
                name,
                f"the window's outputs {present} share no column with the reference's "
                f"predictions {sorted(columns.names)}",
            )

    classes = class_columns(columns, profile, window.state.task)

    def fit() -> UnivariateDrift:
        reference_bins = columns.bins(profile.summary)
        return settings.detector().fit(
            as_classes(columns.rows(profile.reservoir), classes),
            bins={k: v for k, v in reference_bins.items() if k not in classes},
            categories=columns.category_counts(profile.summary),
        )

    key = {"settings": settings.detector_settings(), "classes": classes}
    detector = window.fitted.get(name, window.model, window.version, profile, key, fit)
    assert detector.numeric_ is not None
    reference_bins = {r.name: (r.cuts, r.counts) for r in detector.numeric_}
    exact_bins = columns.window_bins(summary, reference_bins)
    exact_categories = columns.category_counts(summary)
    found = detector.run(
        as_classes(columns.rows(reservoir), classes), bins=exact_bins, categories=exact_categories
    )
    rows = [
        _column_result(
            name,
            role,
            feature,
            feature.feature in exact_bins,
            reservoir.size,
            sampled_classes=feature.feature in classes,
        )
        for feature in found.features
    ]
    return [_summary_result(name, role, found, reservoir.size, window.state.rows), *rows]


def _column_result(
    name: str,
    what: str,
    feature: FeatureResult,
    exact_bins: bool,
    sampled: int,
    *,
    sampled_classes: bool = False,
) -> Result:
    message = feature.message
    if what != "feature":
        message = message.replace("feature `", f"{what} `", 1)
    if feature.test == "ks_mw":
        counts = "KS and Mann-Whitney on the row sample; PSI on " + (
            "exact bin counts of every row" if exact_bins else "the row sample's bin counts"
        )
    elif sampled_classes:
        counts = "class counts of the row sample"
    else:
        counts = "category counts of every row"
    return Result(
        detector=name,
        feature=feature.feature,
        score=feature.statistic,
        p_value=feature.adjusted_p_value,
        threshold=feature.threshold,
        decision=feature.decision,
        message=message,
        details={
            "test": feature.test,
            "raw_p_value": feature.p_value,
            "effect_sizes": dict(feature.effect_sizes),
            "n_reference": feature.n_reference,
            "n_window": feature.n_window,
            "sampled_rows": sampled,
            "counts": counts,
            **dict(feature.details),
        },
    )


def _summary_result(
    name: str, what: str, found: DetectionResult, sampled: int, window_rows: int
) -> Result:
    drifted = [f for f in found.features if f.decision is Decision.ALERT]
    tested = [f for f in found.features if f.adjusted_p_value is not None]
    plural = f"{what}s"
    if found.decision is Decision.ALERT:
        ranked = sorted(drifted, key=lambda f: f.adjusted_p_value or 0.0)
        names = ", ".join(f"`{f.feature}`" for f in ranked)
        strongest = ranked[0].message
        if what != "feature":
            strongest = strongest.replace("feature `", f"{what} `", 1)
        message = (
            f"{len(drifted)} of {len(tested)} {plural} drifted: {names}; strongest: {strongest}"
        )
    elif found.decision is Decision.OK:
        smallest = detector_stats.format_p(found.p_value)
        message = f"no drift in {len(tested)} {plural} (smallest adjusted {smallest})"
        skipped = len(found.features) - len(tested)
        if skipped:
            message += f"; {skipped} {what}(s) had too few values to test"
    else:
        message = found.message.replace("no feature has", f"no {what} has")
    return Result(
        detector=name,
        score=found.score,
        p_value=found.p_value,
        threshold=found.threshold,
        decision=found.decision,
        message=message,
        details={
            **dict(found.details),
            "sampled_rows": sampled,
            "window_rows": window_rows,
        },
    )


# -- multivariate ------------------------------------------------------------------------------


def _multivariate_scorer(
    profile: Profile, settings: MultivariateSettings, task: str | None
) -> SampleScorer:
    """MMD^2 of samples of the reference's rows; the classifier would train a model for each
    bootstrap window, so it is refused."""
    if settings.method != "mmd":
        raise ValueError(
            "only method 'mmd' is calibrated on the reference (the classifier would train a "
            "model per bootstrap window); use mode 'history' or 'static'"
        )
    columns = Columns.of(profile, "feature")
    if not columns:
        raise ValueError(_MISSING["feature"])

    def fit(rows: Dataset) -> Callable[[Dataset], SampleScores]:
        # The statistic does not depend on the permutations, only its p-value does.
        detector = settings.detector(n_permutations=1).fit(rows)
        return lambda sample: {None: detector.run(sample).score}

    return SampleScorer(columns.rows(profile.reservoir), fit)


@check("multivariate_drift", MultivariateSettings, calibration=_multivariate_scorer)
def multivariate_drift(
    profile: Profile | None, window: WindowView, settings: MultivariateSettings
) -> list[Result]:
    """The rows' joint distribution: catches a change of correlation that leaves every
    feature's own distribution as it was."""
    name = "multivariate_drift"
    if profile is None:
        return no_reference(name, window.model, window.version)
    columns = Columns.of(profile, "feature")
    if not columns:
        return not_enough_data(name, _MISSING["feature"])
    detector = window.fitted.get(
        name,
        window.model,
        window.version,
        profile,
        settings,
        lambda: settings.detector().fit(columns.rows(profile.reservoir)),
    )
    sample = columns.rows(window.state.reservoir)
    if not sample.rows:
        return not_enough_data(name, "the window has no rows to compare")
    found = detector.run(sample)
    return [_summary_row(name, found, method=settings.method, **_sampled(sample, window))]


def _fitted_on_reference(
    name: str,
    profile: Profile,
    window: WindowView,
    settings: CheckSettings,
    make: Callable[[], Detector],
    columns: Columns,
) -> Detector | list[Result]:
    """The check's detector fitted on the reference's rows (once: the window's cache), or the
    not_enough_data row saying why the reference cannot fit it."""
    try:
        return window.fitted.get(
            name,
            window.model,
            window.version,
            profile,
            settings,
            lambda: make().fit(columns.rows(profile.reservoir)),
        )
    except ValueError as exc:
        return not_enough_data(name, str(exc))


def _sampled(sample: Dataset, window: WindowView) -> dict[str, int]:
    return {"sampled_rows": sample.rows, "window_rows": window.state.rows}


def _summary_row(name: str, found: DetectionResult, **details: Any) -> Result:
    """A detector's window result as the check's own row."""
    return Result(
        detector=name,
        score=found.score,
        p_value=found.p_value,
        threshold=found.threshold,
        decision=found.decision,
        message=found.message,
        details={**dict(found.details), **details},
    )


# -- correlation -------------------------------------------------------------------------------


@check("correlation_drift", CorrelationSettings)
def correlation_drift(
    profile: Profile | None, window: WindowView, settings: CorrelationSettings
) -> list[Result]:
    """How pairs of numeric features move together: a summary row, then one row per pair whose
    correlation changed (``feature`` is ``"a ~ b"``)."""
    name = "correlation_drift"
    if profile is None:
        return no_reference(name, window.model, window.version)
    columns = Columns.of(profile, "feature")
    if not columns:
        return not_enough_data(name, _MISSING["feature"])
    # Fewer than two numeric features, or too few reference rows, leave nothing to pair.
    detector = _fitted_on_reference(name, profile, window, settings, settings.detector, columns)
    if isinstance(detector, list):
        return detector
    sample = columns.rows(window.state.reservoir)
    found = detector.run(sample)
    summary = _summary_row(name, found, **_sampled(sample, window))
    pairs = [
        Result(
            detector=name,
            feature=pair.feature,
            score=pair.statistic,
            p_value=pair.adjusted_p_value,
            threshold=pair.threshold,
            decision=pair.decision,
            message=pair.message,
            details={"test": pair.test, "raw_p_value": pair.p_value, **dict(pair.details)},
        )
        for pair in found.features
    ]
    return [summary, *pairs]


# -- reconstruction ----------------------------------------------------------------------------


@check("reconstruction_drift", ReconstructionSettings)
def reconstruction_drift(
    profile: Profile | None, window: WindowView, settings: ReconstructionSettings
) -> list[Result]:
    """The rows' distance to the reference's principal subspace: one row, on wide numeric
    inputs only."""
    name = "reconstruction_drift"
    if profile is None:
        return no_reference(name, window.model, window.version)
    numeric = Columns.of(profile, "feature").numeric
    if len(numeric) < settings.min_features:
        return not_enough_data(
            name,
            f"the reference has {len(numeric)} numeric feature columns; reconstruction drift "
            f"runs on wide inputs, {settings.min_features} or more (images, embeddings), where "
            "the other drift checks miss change off the main directions "
            "(min_features lowers the bar)",
            features=len(numeric),
        )
    columns = Columns("feature", numeric, ())
    # Too few reference rows fail to fit the PCA on one half and compare the other.
    detector = _fitted_on_reference(name, profile, window, settings, settings.detector, columns)
    if isinstance(detector, list):
        return detector
    sample = columns.rows(window.state.reservoir)
    return [_summary_row(name, detector.run(sample), **_sampled(sample, window))]


# -- labels ------------------------------------------------------------------------------------


@check("label_drift", LabelDriftSettings)
def label_drift(
    profile: Profile | None, window: WindowView, settings: LabelDriftSettings
) -> list[Result]:
    """Class frequencies of the window's labels (those joined to its predictions) against the
    reference's labels: label shift, confirmed once labels arrive."""
    name = "label_drift"
    if profile is None:
        return no_reference(name, window.model, window.version)
    columns = Columns.of(profile, "label")
    if not columns:
        return not_enough_data(
            name,
            "the reference has no labels: upload it with labels "
            "(inferwatch.set_reference(..., labels=...)) to test the window's labels",
        )
    stats = stored_stats(window.performance)
    if stats is None or not stats.labelled:
        return not_enough_data(name, "no labels have joined this window's predictions yet")
    if not isinstance(stats, ClassificationStats):
        return not_enough_data(
            name,
            "label drift compares class frequencies; for regression the window keeps only "
            "its labels' mean and variance, not their distribution",
        )
    column = columns.names[0]
    reference = window.fitted.get(
        name,
        window.model,
        window.version,
        profile,
        settings,
        lambda: _reference_classes(profile, columns, column),
    )
    detector = UnivariateDrift(**settings.detector_settings()).fit_counts(
        categories={column: reference}
    )
    counts = dict(zip(stats.classes, stats.confusion.sum(axis=1).tolist(), strict=True))
    found = detector.run_counts(categories={column: {c: n for c, n in counts.items() if n}})
    (feature,) = found.features
    message = feature.message.replace("feature `", "label `", 1)
    if found.decision is Decision.ALERT:
        message = f"the labels drifted: {message}"
    return [
        Result(
            detector=name,
            score=feature.statistic,
            p_value=feature.adjusted_p_value,
            threshold=feature.threshold,
            decision=found.decision,
            message=message,
            details={
                "column": column,
                "effect_sizes": dict(feature.effect_sizes),
                "n_reference": feature.n_reference,
                "n_window": feature.n_window,
                "window_classes": counts,
                **dict(feature.details),
            },
        )
    ]


def _reference_classes(profile: Profile, columns: Columns, column: str) -> dict[str, int]:
    """The reference's label counts by class, written as the label join writes classes: exact
    counts of a text column, counts of the row sample for a numeric one (1.0 -> "1")."""
    counts: dict[str, int] = {}
    if column in columns.categorical:
        counts = columns.category_counts(profile.summary).get(column, {})
    else:
        values = columns.rows(profile.reservoir).numeric[:, 0]
        for value in values[values == values].tolist():
            key = number_text(float(value))
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        raise ValueError(f"the reference's label column {column!r} has no values")
    return counts
