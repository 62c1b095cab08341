"""The one result shape: decisions and severities are checked when a result is made."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from inferwatch.collector.detectors import Decision, DetectionResult, Result, Severity


def test_a_failing_result_has_a_severity_and_the_others_none() -> None:
    assert Result(detector="d", decision="alert", message="m").severity is Severity.WARNING
    assert Result(detector="d", decision="warning", message="m").severity is Severity.WARNING
    critical = Result(detector="d", decision="alert", severity="critical", message="m")
    assert critical.severity is Severity.CRITICAL and critical.failing
    for decision in ("ok", "not_enough_data", "error"):
        assert Result(detector="d", decision=decision, message="m").severity is None


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"decision": "alert", "message": "m"}, "detector"),
        ({"detector": "d", "message": "m"}, "decision"),
        ({"detector": "d", "decision": "drift", "message": "m"}, "not a valid Decision"),
        ({"detector": "d", "decision": "ok", "severity": "warning", "message": "m"}, "no severity"),
        ({"detector": "d", "decision": "warning", "severity": "critical", "message": "m"}, "alert"),
        ({"detector": "d", "decision": "ok", "message": "m", "colour": "red"}, "colour"),
    ],
)
def test_malformed_results_are_refused_with_a_reason(
    fields: dict[str, object], needle: str
) -> None:
    with pytest.raises(ValidationError, match=needle):
        Result.model_validate(fields)


def test_numbers_and_evidence_are_json_safe() -> None:
    result = Result(
        detector="d",
        score=np.float64("nan"),
        p_value=np.float32(0.5),
        threshold=float("inf"),
        decision="ok",
        message="m",
        details={"n": np.int64(3), "sizes": (np.float64(1.5), float("-inf")), 7: np.bool_(True)},
    )
    assert (result.score, result.p_value, result.threshold) == (None, 0.5, None)
    assert result.details == {"n": 3, "sizes": [1.5, None], "7": True}
    json.dumps(result.model_dump(mode="json"), allow_nan=False)


def test_a_replaced_decision_brings_its_own_severity() -> None:
    failed = Result(detector="d", decision="alert", severity="critical", message="m")
    assert failed.replaced(decision="ok").severity is None
    assert failed.replaced(decision="warning").severity is Severity.WARNING
    assert failed.replaced(message="n").severity is Severity.CRITICAL


def test_not_enough_data_says_why() -> None:
    found = DetectionResult.not_enough_data("mmd", "12 rows; 50 needed", threshold=0.05, rows=12)
    assert found.decision is Decision.NOT_ENOUGH_DATA and not found.alerting
    (row,) = found.results()
    assert (row.message, row.threshold, row.severity) == ("12 rows; 50 needed", 0.05, None)
    assert Result.not_enough_data("c", "no rows", rows=0).details == {"rows": 0}
