"""Built-in window checks: error rate, data quality, schema and label coverage."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inferwatch.collector.detect.evaluate import register
from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors.result import Decision, Result
from inferwatch.collector.reference.profile import Profile


@register("error_rate", threshold=0.05, min_requests=10)
def error_rate(
    profile: Profile | None, window: WindowView, settings: Mapping[str, Any]
) -> list[Result]:
    state = window.state
    threshold = float(settings["threshold"])
    rate = state.error_rate
    if rate is None or state.requests < settings["min_requests"]:
        return [
            Result(
                detector="error_rate",
                score=rate,
                threshold=threshold,
                decision=Decision.NOT_ENOUGH_DATA,
                message=f"{state.requests} requests; at least {settings['min_requests']} needed",
            )
        ]
    decision = Decision.ALERT if rate > threshold else Decision.OK
    return [
        Result(
            detector="error_rate",
            score=rate,
            threshold=threshold,
            decision=decision,
            message=f"{state.errors} of {state.requests} requests failed ({rate:.1%}); "
            f"the threshold is {threshold:.1%}",
        )
    ]


@register("data_quality", threshold=0.0)
def data_quality(
    profile: Profile | None, window: WindowView, settings: Mapping[str, Any]
) -> list[Result]:
    """Spans the receiver could only partly decode (bad frames, mismatched rows, no ids)."""
    state = window.state
    threshold = float(settings["threshold"])
    share = state.batches_with_issues / state.requests if state.requests else 0.0
    if not state.batches_with_issues:
        message = "no data-quality problems"
    else:
        worst, count = state.issues.most_common(1)[0]
        message = (
            f"{state.batches_with_issues} of {state.requests} requests had problems; "
            f"most often ({count}x): {worst}"
        )
    decision = Decision.ALERT if share > threshold else Decision.OK
    return [
        Result(
            detector="data_quality",
            score=share,
            threshold=threshold,
            decision=decision,
            message=message,
        )
    ]


@register("schema", threshold=0.0)
def schema(
    profile: Profile | None, window: WindowView, settings: Mapping[str, Any]
) -> list[Result]:
    """Columns whose type changed, that went missing, or that the reference does not know."""
    summary = window.state.summary
    rows = max(summary.rows, 1)
    threshold = float(settings["threshold"])
    results: list[Result] = []
    problems = (
        (summary.type_mismatch, "has the wrong type (numeric vs categorical) in"),
        (summary.absent, "is missing from"),
        (summary.new, "is not in the reference but appears in"),
    )
    for counts, what in problems:
        for (role, name), n in sorted(counts.items()):
            if not n:
                continue
            share = n / rows
            decision = Decision.ALERT if share > threshold else Decision.OK
            results.append(
                Result(
                    detector="schema",
                    feature=name,
                    score=share,
                    threshold=threshold,
                    decision=decision,
                    message=f"{role} column {name!r} {what} {n} of {summary.rows} rows",
                )
            )
    return results


@register("label_coverage", threshold=None, min_coverage=0.0)
def label_coverage(
    profile: Profile | None, window: WindowView, settings: Mapping[str, Any]
) -> list[Result]:
    rows = window.state.rows
    threshold = float(settings["min_coverage"])
    coverage = window.labelled / rows if rows else None
    if coverage is None:
        return [
            Result(
                detector="label_coverage",
                threshold=threshold,
                decision=Decision.NOT_ENOUGH_DATA,
                message="no rows",
            )
        ]
    decision = Decision.ALERT if coverage < threshold else Decision.OK
    return [
        Result(
            detector="label_coverage",
            score=coverage,
            threshold=threshold,
            decision=decision,
            message=f"{window.labelled} of {rows} rows labelled ({coverage:.1%})",
        )
    ]
