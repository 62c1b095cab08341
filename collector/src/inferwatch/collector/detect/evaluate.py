"""Evaluating a window: every enabled check of the plug-in registry, with the model's settings.

Each check returns ``Result`` rows, whatever it measures; a check whose ``threshold`` is a table
of levels has its rows re-decided by them (``detect.levels``). A check that fails yields one
``error`` result saying why; the others still run. The statistical checks' failures are then
corrected together at the model's ``false_alarm_rate`` (``detectors.family``), so that a
healthy model's window has a finding at that rate, not at one alpha per check. Last, the
per-feature drift a label-shift verdict explains is grouped under it (``shift_verdict``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from inferwatch.collector.detect import levels
from inferwatch.collector.detect.check import CheckSpec
from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors.family import correct_across_checks
from inferwatch.collector.detectors.result import Result
from inferwatch.collector.detectors.shift_verdict import group_under_verdict
from inferwatch.collector.reference.profile import Profile
from inferwatch.collector.settings import ModelConfig

logger = logging.getLogger(__name__)


def evaluate_window(
    profile: Profile | None,
    window: WindowView,
    config: ModelConfig,
    checks: Iterable[CheckSpec[Any]],
) -> list[Result]:
    """Every enabled check's results; a check that fails yields one ``error`` result."""
    results: list[Result] = []
    for spec in checks:
        settings = config.detectors.get(spec.name) or spec.settings()
        if not settings.enabled:
            continue
        try:
            found = spec.run(profile, window, settings)
            table = settings.levels
            if table is not None:
                found = levels.apply(
                    spec.name, table, spec.calibration, profile, window, settings, found
                )
            results.extend(found)
        except levels.ThresholdError as exc:
            results.append(Result.error(spec.name, str(exc)))
        except Exception as exc:
            logger.exception("check %s failed on a window of %s", spec.name, window.model)
            results.append(Result.error(spec.name, f"the check failed: {exc!r}"))
    # The drift a label shift explains is grouped under its verdict once the verdict has
    # survived the correction: one label shift, not one finding per feature it moved.
    return group_under_verdict(correct_across_checks(results, config.false_alarm_rate))
