"""Built-in window checks: error rate, data quality, schema and label coverage.

Each has its own rule (a share above ``threshold``); a ``threshold`` given as a table of levels
re-decides its results instead (``detect.levels``), the rule then using its default number.
"""

from __future__ import annotations

from inferwatch.collector.detect.check import check
from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors.params import Count, Share
from inferwatch.collector.detectors.result import Decision, Result
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.settings import CheckSettings, ThresholdTable


class ShareSettings(CheckSettings):
    # The share above which a window alerts, or a table of levels.
    threshold: Share | ThresholdTable = 0.0

    @property
    def levels_decide(self) -> bool:
        """A table of levels re-decides the results (detect.levels), not the share."""
        return not isinstance(self.threshold, float | int)

    @property
    def share(self) -> float:
        """The check's own threshold: its number, or the default when levels decide."""
        if isinstance(self.threshold, float | int):
            return float(self.threshold)
        default: float = type(self).model_fields["threshold"].default
        return default


class ErrorRateSettings(ShareSettings):
    threshold: Share | ThresholdTable = 0.05
    min_requests: Count = 10


class CoverageSettings(CheckSettings):
    threshold: ThresholdTable | None = None
    # The share of rows labelled below which a window alerts.
    min_coverage: Share = 0.0


@check("error_rate", ErrorRateSettings)
def error_rate(
    profile: Profile | None, window: WindowView, settings: ErrorRateSettings
) -> list[Result]:
    state = window.state
    threshold = settings.share
    rate = state.error_rate
    if rate is None or state.requests < settings.min_requests:
        return [
            Result(
                detector="error_rate",
                score=rate,
                threshold=threshold,
                decision=Decision.NOT_ENOUGH_DATA,
                message=f"{state.requests} requests; at least {settings.min_requests} needed",
            )
        ]
    decision = Decision.ALERT if rate > threshold else Decision.OK
    message = f"{state.errors} of {state.requests} requests failed ({rate:.1%})"
    if not settings.levels_decide:
        # With levels, the level crossed is quoted instead (detect.levels), never this default.
        message += f"; the threshold is {threshold:.1%}"
    return [
        Result(
            detector="error_rate",
            score=rate,
            threshold=threshold,
            decision=decision,
            message=message,
        )
    ]


@check("data_quality", ShareSettings)
def data_quality(
    profile: Profile | None, window: WindowView, settings: ShareSettings
) -> list[Result]:
    """Spans the receiver could only partly decode (bad frames, mismatched rows, no ids)."""
    state = window.state
    threshold = settings.share
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


@check("schema", ShareSettings)
def schema(profile: Profile | None, window: WindowView, settings: ShareSettings) -> list[Result]:
    """Columns whose type changed, that went missing, or that the reference does not know.

    Outputs the reference does not carry are no problem: predictions are optional in a
    reference, and the output checks only compare the columns it has.
    """
    summary = window.state.summary
    rows = max(summary.rows, 1)
    threshold = settings.share
    results: list[Result] = []
    problems = (
        (summary.type_mismatch, "has the wrong type (numeric vs categorical) in"),
        (summary.absent, "is missing from"),
        (summary.new, "is not in the reference but appears in"),
    )
    for counts, what in problems:
        for (role, name), n in sorted(counts.items()):
            if not n or (counts is summary.new and role == "output"):
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


@check("label_coverage", CoverageSettings)
def label_coverage(
    profile: Profile | None, window: WindowView, settings: CoverageSettings
) -> list[Result]:
    rows = window.state.rows
    threshold = settings.min_coverage
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
