"""The detector library's verdicts in the collector's result vocabulary.

Detectors say ``drift``, ``outlier``, ``critical`` (alert), ``warning``, ``no_drift``,
``no_outlier``, ``ok`` (ok) or ``not_enough_data``; every check result uses the five decisions
of ``evaluate.Decision``. Result numbers and evidence are made JSON-safe here, since they are
stored and served as JSON (NaN and infinities become null).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from inferwatch.collector.detect.result import Decision, Result
from inferwatch.collector.window.state import json_safe

_DECISIONS: dict[str, Decision] = {
    "drift": "alert",
    "outlier": "alert",
    "critical": "alert",
    "warning": "warning",
    "no_drift": "ok",
    "no_outlier": "ok",
    "ok": "ok",
    "not_enough_data": "not_enough_data",
}


def decision(library: str) -> Decision:
    """The collector's decision for a detector's; an unknown one is a bug, so it raises."""
    try:
        return _DECISIONS[library]
    except KeyError:
        raise ValueError(f"the detector library returned an unknown decision {library!r}") from None


def number(value: float | None) -> float | None:
    """A finite float, or None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def result(
    detector: str,
    feature: str | None,
    score: float | None,
    p_value: float | None,
    threshold: float | None,
    verdict: Decision,
    message: str,
    details: Mapping[str, Any] | None = None,
) -> Result:
    return Result(
        detector,
        feature,
        number(score),
        number(p_value),
        number(threshold),
        verdict,
        message,
        json_safe(dict(details or {})),
    )


def not_enough_data(detector: str, message: str, **details: Any) -> list[Result]:
    return [result(detector, None, None, None, None, "not_enough_data", message, details)]


def no_reference(detector: str, model: str, version: str) -> list[Result]:
    return not_enough_data(
        detector,
        f"no reference for {model} version {version} yet: upload one (inferwatch.set_reference) "
        "or let the model's reference policy build one from early traffic",
    )
