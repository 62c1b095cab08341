"""Drift, outlier and performance detectors: fit on a reference, run on windows.

Every detector follows one contract (``Detector``: parameters in ``__init__``, checked by
``fit(reference)``; ``run(window) -> DetectionResult``) and is installed by name through the
``inferwatch.detectors`` entry points, so ``create("univariate_drift", alpha=0.01)`` builds one
from settings. See docs/detectors.md.
"""

from inferwatch.collector.detectors.base import (
    Detector,
    NotFittedError,
    create,
    registered,
)
from inferwatch.collector.detectors.calibration import Calibration, Calibrator, calibrate
from inferwatch.collector.detectors.correlation import CorrelationDrift
from inferwatch.collector.detectors.dataset import Dataset, as_dataset
from inferwatch.collector.detectors.error_estimation import DLE
from inferwatch.collector.detectors.estimated_performance import CBPE
from inferwatch.collector.detectors.estimates import Estimate, Estimated
from inferwatch.collector.detectors.label_shift import LabelShift, PriorEstimate
from inferwatch.collector.detectors.metrics import (
    ClassificationStats,
    Metric,
    PerformanceCheck,
    RegressionStats,
    confusion_metrics,
)
from inferwatch.collector.detectors.multivariate import ClassifierDrift, MMDDrift
from inferwatch.collector.detectors.outliers import (
    MahalanobisScorer,
    OnlineOutlierDetector,
    OutlierDetector,
    ResidualScorer,
    RowThreshold,
)
from inferwatch.collector.detectors.prediction import LabelDrift, PredictionDrift
from inferwatch.collector.detectors.reduction import (
    Encoder,
    ReconstructionDrift,
    Reduction,
    Whitening,
)
from inferwatch.collector.detectors.result import (
    Decision,
    DetectionResult,
    FeatureResult,
    Result,
    RowOutputs,
    Severity,
)
from inferwatch.collector.detectors.shift_verdict import ShiftVerdict, group_under_verdict
from inferwatch.collector.detectors.suite import DetectorSuite, default_suite
from inferwatch.collector.detectors.thresholds import (
    Threshold,
    calibrate_on_reference,
    learn_from_history,
    static,
)
from inferwatch.collector.detectors.univariate import UnivariateDrift, reference_counts

__all__ = [
    "CBPE",
    "DLE",
    "Calibration",
    "Calibrator",
    "ClassificationStats",
    "ClassifierDrift",
    "CorrelationDrift",
    "Dataset",
    "Decision",
    "DetectionResult",
    "Detector",
    "DetectorSuite",
    "Encoder",
    "Estimate",
    "Estimated",
    "FeatureResult",
    "LabelDrift",
    "LabelShift",
    "MMDDrift",
    "MahalanobisScorer",
    "Metric",
    "NotFittedError",
    "OnlineOutlierDetector",
    "OutlierDetector",
    "PerformanceCheck",
    "PredictionDrift",
    "PriorEstimate",
    "ReconstructionDrift",
    "Reduction",
    "RegressionStats",
    "ResidualScorer",
    "Result",
    "RowOutputs",
    "RowThreshold",
    "Severity",
    "ShiftVerdict",
    "Threshold",
    "UnivariateDrift",
    "Whitening",
    "as_dataset",
    "calibrate",
    "calibrate_on_reference",
    "confusion_metrics",
    "create",
    "default_suite",
    "group_under_verdict",
    "learn_from_history",
    "reference_counts",
    "registered",
    "static",
]
