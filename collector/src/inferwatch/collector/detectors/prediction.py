"""Prediction drift and label shift: the model's outputs (and, once they arrive, the labels)
against the reference's.

Predicted classes are compared like a categorical feature (chi-squared, PSI); class
probabilities or regression outputs like numeric features (KS, Wasserstein). A shift of the
predicted-class distribution with stable inputs' marginals is the classic symptom of label
shift (black-box shift detection); the label distribution confirms it once labels arrive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np

from inferwatch.collector.detectors import stats
from inferwatch.collector.detectors.base import Detector
from inferwatch.collector.detectors.dataset import Dataset
from inferwatch.collector.detectors.params import Count, NonNegative, Rate, Share
from inferwatch.collector.detectors.result import Decision, DetectionResult
from inferwatch.collector.detectors.univariate import UnivariateDrift
from inferwatch.frame import categorical

Kind = Literal["auto", "classes", "scores"]


def outputs_dataset(
    outputs: Any,
    kind: Kind = "auto",
    classes: Sequence[Any] | np.ndarray | None = None,
    name: str = "prediction",
) -> Dataset:
    """Model outputs as features: a class column, per-class score columns, or a value column.

    1-D text, booleans or integers are classes ("auto"); 1-D floats are values (regression
    outputs or a single score); 2-D floats are class probabilities, which also give the
    predicted class (argmax; ``classes`` names the columns).
    """
    array = np.asarray(outputs)
    if array.ndim == 2 and array.dtype.kind in "iuf":
        width = array.shape[1]
        labels = (
            [str(c) for c in classes] if classes is not None else [str(j) for j in range(width)]
        )
        if len(labels) != width:
            raise ValueError(f"classes names {len(labels)} columns but outputs have {width}")
        scores = np.asarray(array, dtype=np.float64)
        predicted = categorical(f"{name}_class", [labels[j] for j in scores.argmax(axis=1)])
        return Dataset(scores, tuple(f"{name}_score[{c}]" for c in labels), (predicted,))
    if array.ndim != 1:
        raise ValueError(
            f"outputs must be 1-D (classes or values) or 2-D class probabilities, got shape "
            f"{array.shape}"
        )
    is_classes = kind == "classes" or (kind == "auto" and array.dtype.kind not in "f")
    if is_classes:
        column = categorical(f"{name}_class", array.tolist())
        return Dataset(np.empty((array.size, 0)), (), (column,))
    if array.dtype.kind not in "iuf":
        raise ValueError(f"kind='scores' needs numbers, got dtype {array.dtype}")
    return Dataset(np.asarray(array, dtype=np.float64).reshape(-1, 1), (name,))


class PredictionDrift(Detector):
    """Drift of the model's outputs; parameters as ``UnivariateDrift`` plus how to read them."""

    name = "prediction_drift"
    column = "prediction"

    def __init__(
        self,
        kind: Kind = "auto",
        classes: Sequence[Any] | np.ndarray | None = None,
        alpha: Rate = 0.05,
        correction: stats.Correction = "bonferroni",
        min_samples: Count = 100,
        min_psi: NonNegative = 0.1,
        min_wasserstein_sd: NonNegative = 0.05,
        min_total_variation: Share = 0.05,
    ) -> None:
        self.kind = kind
        self.classes = classes
        self.alpha = alpha
        self.correction = correction
        self.min_samples = min_samples
        self.min_psi = min_psi
        self.min_wasserstein_sd = min_wasserstein_sd
        self.min_total_variation = min_total_variation
        self.drift_: UnivariateDrift | None = None

    def _dataset(self, outputs: Any) -> Dataset:
        return outputs_dataset(outputs, self.kind, self.classes, self.column)

    def fit(self, reference: Any) -> Self:
        self._validate_params()
        self.drift_ = UnivariateDrift(
            alpha=self.alpha,
            correction=self.correction,
            min_samples=self.min_samples,
            min_psi=self.min_psi,
            min_wasserstein_sd=self.min_wasserstein_sd,
            min_total_variation=self.min_total_variation,
        ).fit(self._dataset(reference))
        return self

    def run(self, window: Any) -> DetectionResult:
        self._check_fitted("drift_")
        assert self.drift_ is not None
        result = self.drift_.run(self._dataset(window))
        what = "labels" if self.column == "label" else "model outputs"
        prefix = {Decision.ALERT: f"the {what} drifted: ", Decision.OK: f"{what}: "}.get(
            result.decision, ""
        )
        return DetectionResult(
            self.name,
            result.decision,
            result.score,
            result.p_value,
            result.threshold,
            prefix + result.message,
            result.features,
            details=result.details,
        )


class LabelDrift(PredictionDrift):
    """Drift of the label distribution (label shift), once labels arrive."""

    name = "label_drift"
    column = "label"
