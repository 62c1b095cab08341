"""The ``shift_verdict`` check: label shift, covariate shift, both or none, per closed window.

For a classifier whose reference carries predictions and labels, BBSE (``detectors.LabelShift``)
estimates the window's class priors from its predicted classes, and ``detectors.ShiftVerdict``
tests each feature against the reference as it is and re-weighted by w(y). Everything comes
from the row samples: the reference's (its rows with a prediction and a label) and the window's
reservoir (every row up to 10,000, a uniform sample beyond). The predicted class is the first
categorical output column, else the first output column of whole numbers (class indices).

One row, the verdict, with the evidence in its message and, in its details, the verdict, the
estimated priors with their intervals, the weights w(y), the test of unchanged priors, and the
features the verdict explains and those left to covariate shift. The evaluation then groups the
``univariate_drift`` findings a label shift explains under this row
(``detectors.group_under_verdict``).
"""

from __future__ import annotations

from typing import Any

from inferwatch.collector.detect.check import check, no_reference, not_enough_data
from inferwatch.collector.detect.checks.drift import class_columns
from inferwatch.collector.detect.columns import Columns
from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors import Dataset, ShiftVerdict
from inferwatch.collector.detectors import stats as detector_stats
from inferwatch.collector.detectors.label_shift import class_names
from inferwatch.collector.detectors.params import (
    Count,
    NonNegative,
    Rate,
    Share,
    default_of,
)
from inferwatch.collector.detectors.result import Result
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.settings import CheckSettings

NAME = ShiftVerdict.name
# Up to this many features, the details carry each moved feature's tests in full.
MAX_DETAILED = 200


class ShiftVerdictSettings(CheckSettings):
    """``ShiftVerdict``'s parameters."""

    alpha: Rate = default_of(ShiftVerdict, "alpha")
    correction: detector_stats.Correction = default_of(ShiftVerdict, "correction")
    min_samples: Count = default_of(ShiftVerdict, "min_samples")
    min_psi: NonNegative = default_of(ShiftVerdict, "min_psi")
    min_wasserstein_sd: NonNegative = default_of(ShiftVerdict, "min_wasserstein_sd")
    min_total_variation: Share = default_of(ShiftVerdict, "min_total_variation")
    min_prior_shift: Share = default_of(ShiftVerdict, "min_prior_shift")
    regularization: NonNegative = default_of(ShiftVerdict, "regularization")


def predicted_class_column(profile: Profile, task: str | None) -> str | None:
    """The reference's output column holding the predicted class, if it has one."""
    outputs = Columns.of(profile, "output")
    if outputs.categorical:
        return outputs.categorical[0]
    whole = class_columns(outputs, profile, task)
    return whole[0] if whole else None


def classes_of(rows: Dataset, name: str) -> list[str | None]:
    """A column of ``rows`` as class names (1.0 -> "1", a category's text, None if missing)."""
    if name in rows.numeric_names:
        return class_names(rows.numeric[:, rows.numeric_names.index(name)])
    column = next(c for c in rows.categorical if c.name == name)
    return [column.categories[code] if code >= 0 else None for code in column.codes.tolist()]


@check(NAME, ShiftVerdictSettings)
def shift_verdict(
    profile: Profile | None, window: WindowView, settings: ShiftVerdictSettings
) -> list[Result]:
    """The window's shift verdict, one row."""
    if profile is None:
        return no_reference(NAME, window.model, window.version)
    if window.state.task not in (None, "classification"):
        return not_enough_data(NAME, "the shift verdict is for classifiers (it needs classes)")
    features = Columns.of(profile, "feature")
    labels = Columns.of(profile, "label")
    predicted = predicted_class_column(profile, "classification")
    if not features or not labels or predicted is None:
        return not_enough_data(
            NAME,
            "the reference needs features, labels and the model's predicted classes: upload "
            "it with both (inferwatch.set_reference(..., predictions=..., labels=...)), the "
            "predictions made on rows the model was not trained on",
        )
    numeric = predicted in Columns.of(profile, "output").numeric
    outputs = Columns("output", (predicted,) if numeric else (), () if numeric else (predicted,))

    def fit() -> ShiftVerdict:
        reservoir = profile.reservoir
        return ShiftVerdict(**settings.detector_settings()).fit(
            features.rows(reservoir),
            classes_of(labels.rows(reservoir), labels.names[0]),
            classes_of(outputs.rows(reservoir), predicted),
        )

    key = {"settings": settings.detector_settings(), "predicted": predicted}
    verdict = window.fitted.get(NAME, window.model, window.version, profile, key, fit)
    reservoir = window.state.reservoir
    if not reservoir.size:
        return not_enough_data(NAME, "the window has no rows to judge")
    window_predictions = classes_of(outputs.rows(reservoir), predicted)
    if all(p is None for p in window_predictions):
        return not_enough_data(
            NAME, f"the window's spans carry no predicted class `{predicted}` to estimate from"
        )
    found = verdict.run(features.rows(reservoir), window_predictions)
    details: dict[str, Any] = {
        **dict(found.details),
        "predicted_column": predicted,
        "sampled_rows": reservoir.size,
        "window_rows": window.state.rows,
        "feature_status": {f.feature: f.details.get("status") for f in found.features},
        # The evidence of the features that moved (bounded: a wide model has many columns).
        "features": {
            f.feature: f.to_dict()
            for f in found.features
            if f.details.get("status") not in (None, "no_drift")
        }
        if len(found.features) <= MAX_DETAILED
        else {},
    }
    return [
        Result(
            detector=NAME,
            score=found.score,
            p_value=found.p_value,
            threshold=found.threshold,
            decision=found.decision,
            message=found.message,
            details=details,
        )
    ]
