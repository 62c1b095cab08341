"""Builders for result rows and windows."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from inferwatch.collector.alerts import AlertPolicy, WindowResults
from inferwatch.collector.detectors import Result
from inferwatch.collector.detectors.params import describe
from inferwatch.collector.settings import ConfigError

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


def policy(table: dict[str, Any], where: str = "alerts") -> AlertPolicy:
    """An alert policy from its TOML table, as a model's settings validate it (without the
    plug-in catalog: these tests' checks are made up). One failing window opens an alert
    unless ``table`` says otherwise: these tests are about what follows an opening."""
    try:
        return AlertPolicy.model_validate({"consecutive": 1, **table})
    except ValidationError as exc:
        raise ConfigError(describe(exc, where)) from None
