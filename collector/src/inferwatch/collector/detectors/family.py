"""One decision for a model's window: its statistical checks corrected together.

Each statistical check (per-feature drift, joint drift, prediction and label drift, outliers)
tests at its own ``alpha``, already corrected across its features. A user is paged by any of
them, so on a healthy model the chance that some check fails a window grows with their number:
up to 1 - 0.95^k for k checks (9-15% of clean windows measured with the defaults). Holm's
step-down correction across the checks' own p-values holds the chance of any finding in a clean
window at ``alpha``, whatever the dependence between the checks, and rejects at least what
Bonferroni rejects.

A check's row keeps failing only when its check survives the correction; a feature's row when,
in addition, its own (already within-check adjusted) p-value times the check's Holm multiplier
is at most ``alpha``. The correction only ever turns failures into passes: effect-size gates
and thresholds stay the checks' own. Rows that carry no p-value (error rate, data quality,
schema, performance) and rows re-decided by threshold levels are not tests at an alpha, so they
are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inferwatch.collector.detectors import stats
from inferwatch.collector.detectors.result import Decision, Result

# The result's details key holding the correction: the family size, alpha and the row's p-value
# after it.
FAMILY = "family"


def correct_across_checks(rows: Sequence[Result], alpha: float | None) -> list[Result]:
    """``rows`` with failures that do not survive Holm's correction at ``alpha`` as passes.

    ``alpha`` None leaves every check at its own alpha.
    """
    if alpha is None:
        return list(rows)
    tested = {
        row.detector: float(row.p_value)
        for row in rows
        if row.feature is None and _is_test(row) and row.p_value is not None
    }
    if not tested:
        return list(rows)
    names = sorted(tested, key=lambda name: (tested[name], name))
    m = len(names)
    multiplier = {name: m - rank for rank, name in enumerate(names)}
    holm = stats.adjust_p_values(np.array([tested[name] for name in names]), "holm")
    adjusted = dict(zip(names, holm.tolist(), strict=True))
    return [_decide(row, m, alpha, adjusted, multiplier) for row in rows]


def _is_test(row: Result) -> bool:
    decided = row.decision in (Decision.OK, Decision.WARNING, Decision.ALERT)
    return decided and "check_decision" not in row.details


def _decide(
    row: Result,
    m: int,
    alpha: float,
    adjusted: dict[str, float],
    multiplier: dict[str, int],
) -> Result:
    if row.detector not in adjusted or not _is_test(row) or row.p_value is None:
        return row
    p = adjusted[row.detector]
    if row.feature is not None:
        p = max(p, min(1.0, multiplier[row.detector] * float(row.p_value)))
    details = {**row.details, FAMILY: {"checks": m, "alpha": alpha, "p_value": float(p)}}
    if not row.failing or p <= alpha:
        return row.replaced(details=details)
    message = (
        f"within chance for the model: {stats.format_p(p)} after correcting across its "
        f"{m} tested checks (Holm), above {alpha:g}; the check alone found: {row.message}"
    )
    return row.replaced(decision=Decision.OK, message=message, details=details)
