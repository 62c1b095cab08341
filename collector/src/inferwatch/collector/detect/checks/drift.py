"""Drift checks: per-feature and joint drift of the inputs, drift of the predictions and labels.

Each fits a detector of ``inferwatch.collector.detectors`` on the version's reference profile
once (``fitted.FITTED``) and runs it on every window:

- ``univariate_drift``: per feature, KS on the row samples (the reference's and the window's
  reservoirs) for numbers, chi-squared for categories; PSI and chi-squared take the exact counts
  of every row where the summaries have them (bins frozen on the reference, category counts
  with unseen categories). Corrected across features, gated by effect size.
- ``multivariate_drift``: MMD permutation test (or a classifier two-sample test) on the row
  samples, reduced by PCA when the encoded rows are wide.
- ``prediction_drift``: the same per-column tests on the model's output columns.
- ``label_drift``: the class frequencies of the labels joined to the window's predictions
  against the reference's labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from inferwatch.collector.detect.columns import Columns
from inferwatch.collector.detect.evaluate import no_reference, not_enough_data, register
from inferwatch.collector.detect.fitted import FITTED
from inferwatch.collector.detect.levels import Calibration, SampleScorer, SampleScores
from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors import (
    ClassifierDrift,
    Dataset,
    DetectionResult,
    Detector,
    FeatureResult,
    MMDDrift,
    UnivariateDrift,
)
from inferwatch.collector.detectors import stats as detector_stats
from inferwatch.collector.detectors.metrics import ClassificationStats
from inferwatch.collector.detectors.result import Decision, Result
from inferwatch.collector.labels.join import number_text
from inferwatch.collector.labels.scoring import stored_stats
from inferwatch.collector.reference.profile import Profile
from inferwatch.frame import Role

# The library's defaults (docs/detectors.md explains each).
UNIVARIATE_DEFAULTS: dict[str, Any] = {
    "alpha": 0.05,
    "correction": "bonferroni",
    "min_samples": 100,
    "min_psi": 0.1,
    "min_wasserstein_sd": 0.1,
    "min_total_variation": 0.1,
}
MULTIVARIATE_METHODS = ("mmd", "classifier")
REDUCTIONS = ("auto", "pca", "random", "none")
NULLS = ("binomial", "permutation")


def _params(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in settings.items() if key != "enabled"}


# -- univariate --------------------------------------------------------------------------------


def _column_scorer(role: Literal["feature", "output"]) -> Calibration:
    """Per column, the statistic ``univariate_drift`` scores a window with (KS D for numbers,
    chi-squared for categories), on samples of the reference's rows."""

    def scorer(profile: Profile, settings: Mapping[str, Any]) -> SampleScorer:
        columns = Columns.of(profile, role)
        if not columns:
            raise ValueError(_MISSING[role])
        params = _params(settings)

        def fit(rows: Dataset) -> Callable[[Dataset], SampleScores]:
            detector = UnivariateDrift(**params).fit(rows)
            return lambda sample: {f.feature: f.statistic for f in detector.run(sample).features}

        return SampleScorer(columns.rows(profile.reservoir), fit)

    return scorer


@register(
    "univariate_drift",
    calibration=_column_scorer("feature"),
    threshold=None,
    **UNIVARIATE_DEFAULTS,
)
def univariate_drift(
    profile: Profile | None, window: WindowView, settings: Mapping[str, Any]
) -> list[Result]:
    """One row per reference feature, then a summary row naming the drifted features."""
    return _per_column("univariate_drift", "feature", profile, window, settings)


@register(
    "prediction_drift",
    calibration=_column_scorer("output"),
    threshold=None,
    **UNIVARIATE_DEFAULTS,
)
def prediction_drift(
    profile: Profile | None, window: WindowView, settings: Mapping[str, Any]
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
    settings: Mapping[str, Any],
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
    params = _params(settings)

    def fit() -> UnivariateDrift:
        reference_bins = columns.bins(profile.summary)
        return UnivariateDrift(**params).fit(
            columns.rows(profile.reservoir),
            bins=reference_bins,
            categories=columns.category_counts(profile.summary),
        )

    detector = FITTED.get(name, window.model, window.version, profile, settings, fit)
    assert detector.numeric_ is not None
    reference_bins = {r.name: (r.cuts, r.counts) for r in detector.numeric_}
    exact_bins = columns.window_bins(summary, reference_bins)
    exact_categories = columns.category_counts(summary)
    found = detector.run(columns.rows(reservoir), bins=exact_bins, categories=exact_categories)
    rows = [
        _column_result(name, role, feature, feature.feature in exact_bins, reservoir.size)
        for feature in found.features
    ]
    return [_summary_result(name, role, found, reservoir.size, window.state.rows), *rows]


def _column_result(
    name: str, what: str, feature: FeatureResult, exact_bins: bool, sampled: int
) -> Result:
    message = feature.message
    if what != "feature":
        message = message.replace("feature `", f"{what} `", 1)
    if feature.test == "ks":
        counts = "KS on the row sample; PSI on " + (
            "exact bin counts of every row" if exact_bins else "the row sample's bin counts"
        )
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


def _multivariate_scorer(profile: Profile, settings: Mapping[str, Any]) -> SampleScorer:
    """MMD^2 of samples of the reference's rows; the classifier would train a model for each
    bootstrap window, so it is refused."""
    if settings["method"] != "mmd":
        raise ValueError(
            "only method 'mmd' is calibrated on the reference (the classifier would train a "
            "model per bootstrap window); use mode 'history' or 'static'"
        )
    columns = Columns.of(profile, "feature")
    if not columns:
        raise ValueError(_MISSING["feature"])
    # The statistic does not depend on the permutations, only its p-value does.
    quick = {**settings, "n_permutations": 1}

    def fit(rows: Dataset) -> Callable[[Dataset], SampleScores]:
        detector = _multivariate(quick).fit(rows)
        return lambda sample: {None: detector.run(sample).score}

    return SampleScorer(columns.rows(profile.reservoir), fit)


@register(
    "multivariate_drift",
    calibration=_multivariate_scorer,
    threshold=None,
    method="mmd",
    alpha=0.05,
    n_permutations=None,
    max_rows=None,
    min_samples=50,
    reduction="auto",
    null="binomial",
    random_state=0,
)
def multivariate_drift(
    profile: Profile | None, window: WindowView, settings: Mapping[str, Any]
) -> list[Result]:
    """The rows' joint distribution: catches a change of correlation that leaves every
    feature's own distribution as it was."""
    name = "multivariate_drift"
    if profile is None:
        return no_reference(name, window.model, window.version)
    columns = Columns.of(profile, "feature")
    if not columns:
        return not_enough_data(name, _MISSING["feature"])
    detector = FITTED.get(
        name,
        window.model,
        window.version,
        profile,
        settings,
        lambda: _multivariate(settings).fit(columns.rows(profile.reservoir)),
    )
    sample = columns.rows(window.state.reservoir)
    if not sample.rows:
        return not_enough_data(name, "the window has no rows to compare")
    found = detector.run(sample)
    return [
        Result(
            detector=name,
            score=found.score,
            p_value=found.p_value,
            threshold=found.threshold,
            decision=found.decision,
            message=found.message,
            details={
                **dict(found.details),
                "method": settings["method"],
                "sampled_rows": sample.rows,
                "window_rows": window.state.rows,
            },
        )
    ]


def _multivariate(settings: Mapping[str, Any]) -> Detector:
    method, reduction, null = settings["method"], settings["reduction"], settings["null"]
    if method not in MULTIVARIATE_METHODS:
        raise ValueError(f"multivariate_drift.method must be 'mmd' or 'classifier', got {method!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"multivariate_drift.reduction must be one of {REDUCTIONS}, got {reduction!r}"
        )
    if null not in NULLS:
        raise ValueError(f"multivariate_drift.null must be one of {NULLS}, got {null!r}")
    common: dict[str, Any] = {
        "alpha": settings["alpha"],
        "min_samples": settings["min_samples"],
        "reduction": None if reduction == "none" else reduction,
        "random_state": settings["random_state"],
    }
    # None: the method's own default (500 rows and 100 permutations for MMD, 1,000 rows and
    # 50 permutations for the classifier).
    for key in ("max_rows", "n_permutations"):
        if settings[key] is not None:
            common[key] = settings[key]
    if method == "mmd":
        return MMDDrift(**common)
    return ClassifierDrift(null=null, **common)


# -- labels ------------------------------------------------------------------------------------


@register(
    "label_drift",
    threshold=None,
    alpha=0.05,
    min_samples=100,
    min_psi=0.1,
    min_total_variation=0.1,
)
def label_drift(
    profile: Profile | None, window: WindowView, settings: Mapping[str, Any]
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
    reference = FITTED.get(
        name,
        window.model,
        window.version,
        profile,
        settings,
        lambda: _reference_classes(profile, columns, column),
    )
    detector = UnivariateDrift(
        alpha=settings["alpha"],
        min_samples=settings["min_samples"],
        min_psi=settings["min_psi"],
        min_total_variation=settings["min_total_variation"],
    ).fit_counts(categories={column: reference})
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
