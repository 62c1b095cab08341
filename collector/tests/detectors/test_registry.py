from __future__ import annotations

import json
from typing import Any, Self

import numpy as np
import pytest

from inferwatch.collector.detectors import (
    DetectionResult,
    Detector,
    create,
    register,
    registered,
)


def test_builtin_detectors_are_registered() -> None:
    names = set(registered())
    assert {
        "univariate_drift",
        "mmd_drift",
        "classifier_drift",
        "reconstruction_drift",
        "outliers",
        "online_outliers",
        "performance",
        "prediction_drift",
        "label_drift",
    } <= names


def test_a_new_detector_registers_and_is_created_by_name() -> None:
    @register("test_mean_above")
    class MeanAbove(Detector):
        def __init__(self, limit: float = 1.0) -> None:
            self.limit = limit

        def fit(self, reference: Any) -> Self:
            return self

        def run(self, window: Any) -> DetectionResult:
            mean = float(np.mean(window))
            decision = "alert" if mean > self.limit else "ok"
            return DetectionResult(self.name, decision, mean, None, self.limit, f"mean {mean}")

    detector = create("test_mean_above", limit=0.5).fit(None)
    result = detector.run(np.ones(3))
    assert result.decision == "alert" and result.detector == "test_mean_above"
    assert detector.get_params() == {"limit": 0.5}


def test_create_names_unknown_detectors_and_parameters() -> None:
    with pytest.raises(ValueError, match="no detector named 'nope'; registered: "):
        create("nope")
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['alpah'\]"):
        create("univariate_drift", alpah=0.1)


def test_results_are_the_collectors_rows_and_are_json(rng: np.random.Generator) -> None:
    detector = create("univariate_drift").fit(rng.normal(size=(500, 3)))
    result = detector.run(rng.normal(size=(200, 3)) + np.array([0, 0, 1]))
    rows = [row.model_dump(mode="json") for row in result.results()]
    assert len(rows) == 4  # summary + one per feature
    for row in rows:
        assert set(row) == {
            "detector",
            "feature",
            "score",
            "p_value",
            "threshold",
            "decision",
            "severity",
            "message",
            "details",
        }
    assert rows[0]["feature"] is None and rows[3]["feature"] == "x2"
    assert rows[3]["decision"] == "alert" and rows[1]["decision"] == "ok"
    assert rows[3]["severity"] == "warning" and rows[1]["severity"] is None
    json.dumps(result.to_dict(), allow_nan=False)
