"""Several detectors fitted on one reference and run on each window together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from inferwatch.collector.detectors.base import Detector
from inferwatch.collector.detectors.correlation import CorrelationDrift
from inferwatch.collector.detectors.dataset import as_dataset
from inferwatch.collector.detectors.family import correct_across_checks
from inferwatch.collector.detectors.multivariate import MMDDrift
from inferwatch.collector.detectors.outliers import OutlierDetector
from inferwatch.collector.detectors.result import DetectionResult, Result
from inferwatch.collector.detectors.univariate import UnivariateDrift


class DetectorSuite:
    """Fit every detector on the same reference; ``run`` returns one result per detector.

    ``results`` turns them into the rows the collector stores, with the collector's decision
    rule: failures corrected across the detectors at ``false_alarm_rate`` (``detectors.family``;
    None leaves each detector at its own alpha).
    """

    def __init__(
        self, detectors: Sequence[Detector], false_alarm_rate: float | None = 0.05
    ) -> None:
        if not detectors:
            raise ValueError("a suite needs at least one detector")
        if false_alarm_rate is not None and not 0 < false_alarm_rate < 1:
            raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate!r}")
        self.detectors = list(detectors)
        self.false_alarm_rate = false_alarm_rate

    def fit(self, reference: Any) -> Self:
        data = as_dataset(reference, what="reference")  # validated and converted once
        for detector in self.detectors:
            detector.fit(data)
        return self

    def run(self, window: Any) -> list[DetectionResult]:
        data = as_dataset(window, what="window")
        return [detector.run(data) for detector in self.detectors]

    def results(self, found: Sequence[DetectionResult]) -> list[Result]:
        """The collector's result rows for a window, every detector's in order, corrected
        across the detectors as the collector corrects its checks."""
        rows = [row for result in found for row in result.results()]
        return correct_across_checks(rows, self.false_alarm_rate)


def default_suite(random_state: int = 0) -> DetectorSuite:
    """Per-feature drift, joint (MMD) drift, correlation drift and outliers (residuals), default
    settings: the collector's default checks on the features."""
    return DetectorSuite(
        [
            UnivariateDrift(random_state=random_state),
            MMDDrift(random_state=random_state),
            CorrelationDrift(random_state=random_state),
            OutlierDetector(random_state=random_state),
        ]
    )
