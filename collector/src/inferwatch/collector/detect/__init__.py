"""Detection in the collector: the checks run on each window, and the levels that re-decide them.

What a check of one's own needs: ``check``, ``CheckSettings``, ``Result``, ``WindowView`` and
the helpers for a window a check cannot judge (docs/architecture.md).
"""

from inferwatch.collector.detect.check import CheckSpec, check, no_reference, not_enough_data
from inferwatch.collector.detect.evaluate import evaluate_window
from inferwatch.collector.detect.view import WindowView
from inferwatch.collector.detectors.result import Decision, Result, Severity
from inferwatch.collector.settings import CheckSettings

__all__ = [
    "CheckSettings",
    "CheckSpec",
    "Decision",
    "Result",
    "Severity",
    "WindowView",
    "check",
    "evaluate_window",
    "no_reference",
    "not_enough_data",
]
