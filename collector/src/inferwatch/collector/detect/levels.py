"""The threshold layer: a check's ``threshold`` setting re-decides its results from their scores.

A check whose ``threshold`` setting holds a table (``settings.threshold_table``) has levels that
replace its own rule: a score beyond the warning level gives ``warning``, beyond
the critical level ``alert`` with severity ``critical``. ``Result.threshold`` becomes the level
crossed first and the message says which level the score met, e.g. ``(score 0.31 above the
calibrated warning level 0.22)``; the check's own decision stays in ``details.check_decision``.
Only decisive rows with a score are re-decided; ``not_enough_data`` and ``error`` stand.

A check with per-feature rows is judged feature by feature; its feature-less row then summarises
them (the worst level, and which features crossed). The levels come from

- ``static``: the table's numbers;
- ``reference``: bootstrap windows of the live window's row-sample size drawn from the
  reference's row sample and scored by the check's own statistic (``Calibration``, for the
  checks that register one), fitted on one half of the sample and drawn from the other as
  ``detectors.thresholds.calibrate_on_reference`` does. Cached like a fitted detector, per
  model, version, reference, settings and window-size bucket;
- ``history``: mean +/- k sd of the check's last ``last`` scores (per feature) in the version's
  earlier windows, read from storage. Rows that were critical are left out, so a lasting
  incident does not become the norm; until ``min_windows`` scores exist the row is
  ``not_enough_data``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors import Dataset, Threshold, learn_from_history
from inferwatch.collector.detectors.result import Decision, Result
from inferwatch.collector.detectors.thresholds import VERDICTS, bootstrap_null
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.settings import (
    CheckSettings,
    HistoryLevels,
    ReferenceLevels,
    StaticLevels,
)

Levels = StaticLevels | ReferenceLevels | HistoryLevels

SampleScores = Mapping[str | None, float | None]


@dataclass(frozen=True)
class SampleScorer:
    """How a check scores samples of its reference, for thresholds calibrated on it.

    ``rows``: the reference rows the check reads (its row sample). ``fit(rows)`` returns a
    function giving a sample's score per feature (``None`` for the check's own row), computed
    as the check computes its live score.
    """

    rows: Dataset
    fit: Callable[[Dataset], Callable[[Dataset], SampleScores]]


# A check's hook: its scorer for a reference, its settings and the window's task; ValueError
# when the settings cannot be calibrated (the message says why).
Calibration = Callable[[Profile, Any, str | None], SampleScorer]


class ThresholdError(ValueError):
    """The levels could not be set; the check's result becomes an ``error`` saying why."""


# How many times ``last`` windows history mode reads back, to find ``last`` usable scores.
HISTORY_LOOKBACK = 4
_WORDS = {"static": "static", "reference": "calibrated", "history": "learned"}


def apply(
    name: str,
    spec: Levels,
    calibration: Calibration | None,
    profile: Profile | None,
    window: WindowView,
    settings: CheckSettings,
    results: Sequence[Result],
) -> list[Result]:
    """``results`` re-decided by ``spec``'s levels; ThresholdError when none can be set."""
    keyed = any(r.feature is not None for r in results)
    judged = [
        r
        for r in results
        if r.decision.decisive and r.score is not None and (r.feature is not None or not keyed)
    ]
    if not judged:
        return list(results)
    levels = _Levels.of(name, spec, calibration, profile, window, settings)
    chosen = {id(r) for r in judged}
    out = [levels.decide(r) if id(r) in chosen else r for r in results]
    if keyed:
        rows = [r for r in out if r.feature is not None]
        out = [r if r.feature is not None else _summary(r, rows, spec) for r in out]
    return out


@dataclass(frozen=True)
class _Levels:
    spec: Levels
    by_feature: Mapping[str | None, Threshold] = dataclasses.field(default_factory=dict)
    # static: one threshold for every feature.
    fixed: Threshold | None = None
    # Shown with every decision: the calibration's window and bootstrap sizes ...
    common: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    # ... or, per feature, the past windows learnt from.
    evidence: Mapping[str | None, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    # history: the scores each feature still learning has so far.
    learning: Mapping[str | None, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(
        cls,
        name: str,
        spec: Levels,
        calibration: Calibration | None,
        profile: Profile | None,
        window: WindowView,
        settings: CheckSettings,
    ) -> _Levels:
        if isinstance(spec, StaticLevels):
            return cls(spec, fixed=Threshold(spec.warning, spec.critical, spec.direction))
        if isinstance(spec, ReferenceLevels):
            return cls._calibrated(name, spec, calibration, profile, window, settings)
        return cls._learned(name, spec, window)

    @classmethod
    def _calibrated(
        cls,
        name: str,
        spec: ReferenceLevels,
        calibration: Calibration | None,
        profile: Profile | None,
        window: WindowView,
        settings: CheckSettings,
    ) -> _Levels:
        where = f"{name}.threshold (mode 'reference')"
        if calibration is None:
            raise ThresholdError(f"{where}: {name} cannot score samples of the reference")
        if profile is None:
            raise ThresholdError(f"{where}: {window.model} {window.version} has no reference")
        size = calibration_size(window.state.reservoir.size)
        key = {
            "check": settings.detector_settings(),
            "threshold": spec.model_dump(),
            "window_size": size,
        }
        try:
            by_feature = window.fitted.get(
                f"{name}.threshold",
                window.model,
                window.version,
                profile,
                key,
                lambda: calibrate(calibration(profile, settings, window.state.task), spec, size),
            )
        except ValueError as exc:
            raise ThresholdError(f"{where}: could not calibrate on the reference: {exc}") from None
        common = {
            "window_size": size,
            "n_bootstrap": spec.n_bootstrap,
            "target_fpr": spec.target_fpr,
            "critical_fpr": spec.critical_fpr,
        }
        return cls(spec, by_feature, common=common)

    @classmethod
    def _learned(cls, name: str, spec: HistoryLevels, window: WindowView) -> _Levels:
        if window.history is None:
            raise ThresholdError(
                f"{name}.threshold (mode 'history'): no stored results to learn from here"
            )
        # Critical rows are skipped, so look further back than ``last`` windows for ``last``
        # scores (not indefinitely: a long incident then leaves the check learning again).
        past = window.history.past_scores(
            window.model, window.version, name, window.start_ms, HISTORY_LOOKBACK * spec.last
        )
        scores: dict[str | None, list[float]] = {}
        for row in past:
            own = row.check_decision or row.decision
            kept = scores.setdefault(row.feature, [])
            # Only a critical level makes a re-decided row an alert.
            decisive = own in ("ok", "warning", "alert")
            if row.decision != Decision.ALERT and decisive and len(kept) < spec.last:
                kept.append(row.score)
        by_feature: dict[str | None, Threshold] = {}
        evidence: dict[str | None, Mapping[str, Any]] = {}
        for feature, values in scores.items():
            if len(values) < spec.min_windows:
                continue
            by_feature[feature] = learn_from_history(
                values,
                k_warning=spec.k_warning,
                k_critical=spec.k_critical,
                direction=spec.direction,
                min_windows=spec.min_windows,
            )
            evidence[feature] = {
                "windows": len(values),
                "mean": float(np.mean(values)),
                "sd": float(np.std(values, ddof=1)),
            }
        learning = {f: len(v) for f, v in scores.items() if f not in by_feature}
        return cls(spec, by_feature, evidence=evidence, learning=learning)

    def decide(self, result: Result) -> Result:
        assert result.score is not None
        threshold = self.fixed or self.by_feature.get(result.feature)
        details = {**result.details, "check_decision": result.decision.value}
        if threshold is None:
            if not isinstance(self.spec, HistoryLevels):
                return result  # the reference never gave this column a score: the check decides
            have = self.learning.get(result.feature, 0)
            return result.replaced(
                decision=Decision.NOT_ENOUGH_DATA,
                threshold=None,
                message=f"{result.message} (learning the threshold from past windows: "
                f"{have} of {self.spec.min_windows})",
                details=details,
            )
        level = threshold.level(result.score)
        word, score = _WORDS[self.spec.mode], f"{result.score:.4g}"
        if level == "ok":
            first = "warning" if threshold.warning is not None else "critical"
            note = f"score {score} within the {word} {first} level {threshold.first:.4g}"
            if result.decision is not Decision.OK:
                note += ", not flagged"
        else:
            crossed = threshold.critical if level == "critical" else threshold.warning
            note = f"score {score} {threshold.direction} the {word} {level} level {crossed:.4g}"
        levels = {
            **threshold.to_dict(),
            "source": self.spec.mode,
            **self.common,
            **self.evidence.get(result.feature, {}),
        }
        decision, severity = VERDICTS[level]
        return result.replaced(
            decision=decision,
            severity=severity,
            threshold=threshold.first,
            message=f"{result.message} ({note})",
            details={**details, "levels": levels},
        )


def _summary(summary: Result, rows: Sequence[Result], spec: Levels) -> Result:
    """The feature-less row of a per-feature check: the worst of its judged features."""
    judged = [r for r in rows if "levels" in r.details]
    learning = [r for r in rows if "check_decision" in r.details and "levels" not in r.details]
    details = {
        **summary.details,
        "check_decision": summary.decision.value,
        "check_message": summary.message,
    }
    word = _WORDS[spec.mode]
    if not judged:
        if not learning or not isinstance(spec, HistoryLevels):
            return summary
        return summary.replaced(
            decision=Decision.NOT_ENOUGH_DATA,
            message=f"learning the thresholds of {len(learning)} columns from past windows "
            f"(need {spec.min_windows} each)",
            details=details,
        )
    flagged = sorted(
        (r for r in judged if r.failing),
        key=lambda r: (-(r.severity.rank if r.severity else 0), -(r.score or 0.0)),
    )
    worst = flagged[0].severity if flagged else None
    if flagged:
        named = ", ".join(f"`{r.feature}` ({r.severity})" for r in flagged)
        message = f"{len(flagged)} of {len(judged)} columns beyond their {word} levels: {named}"
    else:
        message = f"no column beyond its {word} levels ({len(judged)} judged)"
    if learning:
        message += f"; {len(learning)} still learning their thresholds"
    decision = Decision.OK if worst is None else VERDICTS[worst.value][0]
    return summary.replaced(
        score=len(flagged) / len(judged),
        threshold=None,
        decision=decision,
        severity=worst,
        message=message,
        details=details,
    )


def calibration_size(rows: int) -> int:
    """The window size thresholds are calibrated for: ``rows`` on a geometric grid of step
    2^(1/4) (within 9%), so windows of about one size share one calibration."""
    if rows < 1:
        raise ThresholdError("the window has no rows to calibrate its thresholds for")
    return max(1, round(2 ** (round(4 * math.log2(rows)) / 4)))


def calibrate(
    scorer: SampleScorer, spec: ReferenceLevels, window_size: int
) -> dict[str | None, Threshold]:
    """Per feature, the levels bootstrap windows of ``window_size`` reference rows cross at
    ``target_fpr`` and ``critical_fpr``; a feature scored in fewer than half of them has none."""
    rows = scorer.rows

    def statistic(fit: np.ndarray) -> Callable[[np.ndarray], SampleScores]:
        score = scorer.fit(rows.take(fit))
        return lambda window: score(rows.take(window))

    null = bootstrap_null(
        statistic, np.arange(rows.rows), window_size, n_bootstrap=spec.n_bootstrap
    )
    features = list(dict.fromkeys(feature for scores in null for feature in scores))
    out: dict[str | None, Threshold] = {}
    for feature in features:
        values = np.array([_finite(scores.get(feature)) for scores in null])
        values = values[np.isfinite(values)]
        if values.size * 2 < spec.n_bootstrap:
            continue
        out[feature] = Threshold(
            float(np.quantile(values, 1 - spec.target_fpr)),
            float(np.quantile(values, 1 - spec.critical_fpr)),
            "above",
            "reference",
        )
    if not out:
        raise ValueError(f"no bootstrap window of {window_size} rows could be scored")
    return out


def _finite(value: float | None) -> float:
    return math.nan if value is None else float(value)
