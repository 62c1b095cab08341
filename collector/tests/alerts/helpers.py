"""Builders for result rows and windows."""

from __future__ import annotations

from typing import Any

from inferwatch.collector.alerts import WindowResults
from inferwatch.collector.detectors import Result

MINUTE_MS = 60_000


def row(
    detector: str,
    decision: str,
    feature: str | None = None,
    score: float | None = 0.5,
    **extra: Any,
) -> Result:
    fields: dict[str, Any] = {
        "detector": detector,
        "feature": feature,
        "score": score,
        "threshold": 0.1,
        "decision": decision,
        "message": f"{detector} says {decision}",
        **extra,
    }
    return Result.model_validate(fields)


def window(window_id: int, *rows: Result) -> WindowResults:
    """Window ``n`` covers minute ``n``, so ids and time order agree."""
    return WindowResults(window_id, window_id * MINUTE_MS, (window_id + 1) * MINUTE_MS, rows)
