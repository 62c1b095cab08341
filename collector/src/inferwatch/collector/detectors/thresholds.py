"""Thresholds with a warning and a critical level: static, calibrated on the reference by
bootstrap, or learned from past windows.

A calibrated threshold must come from scores the detector did not see while fitting: a statistic
fitted on the reference and then scored on bootstrap windows of that same reference looks
calmer than any live window, and flags drift almost always. ``calibrate_on_reference`` therefore
fits on one part of the reference and draws the bootstrap windows from the other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from inferwatch.collector.detectors.result import Decision, Severity

Level = Literal["ok", "warning", "critical"]
Direction = Literal["above", "below"]
T = TypeVar("T")


@dataclass(frozen=True)
class Threshold:
    """Alert when the score is ``direction`` a level (``above``: higher is worse)."""

    warning: float | None
    critical: float | None
    direction: Direction = "above"
    source: str = "static"

    def __post_init__(self) -> None:
        if self.direction not in ("above", "below"):
            raise ValueError(f"direction must be 'above' or 'below', got {self.direction!r}")
        if self.warning is None and self.critical is None:
            raise ValueError("a threshold needs a warning level, a critical level or both")
        if self.warning is not None and self.critical is not None:
            worse = (
                self.critical >= self.warning
                if self.direction == "above"
                else (self.critical <= self.warning)
            )
            if not worse:
                raise ValueError(
                    f"the critical level ({self.critical}) must be beyond the warning level "
                    f"({self.warning}) in the direction {self.direction!r}"
                )

    def level(self, score: float) -> Level:
        if self.critical is not None and self._beyond(score, self.critical):
            return "critical"
        if self.warning is not None and self._beyond(score, self.warning):
            return "warning"
        return "ok"

    def verdict(self, score: float) -> tuple[Decision, Severity | None]:
        """The decision and severity ``score`` gets: past the critical level an alert that is
        critical, past the warning level a warning, else ok."""
        return VERDICTS[self.level(score)]

    def _beyond(self, score: float, level: float) -> bool:
        return score > level if self.direction == "above" else score < level

    @property
    def first(self) -> float:
        """The level crossed first (warning if set): the number to show next to a score."""
        level = self.warning if self.warning is not None else self.critical
        assert level is not None
        return level

    def to_dict(self) -> dict[str, Any]:
        return {
            "warning": self.warning,
            "critical": self.critical,
            "direction": self.direction,
            "source": self.source,
        }


# The result each level gives.
VERDICTS: dict[Level, tuple[Decision, Severity | None]] = {
    "ok": (Decision.OK, None),
    "warning": (Decision.WARNING, Severity.WARNING),
    "critical": (Decision.ALERT, Severity.CRITICAL),
}


def static(
    warning: float | None = None, critical: float | None = None, direction: Direction = "above"
) -> Threshold:
    return Threshold(warning, critical, direction, "static")


def calibrate_on_reference(
    make_statistic: Callable[[np.ndarray], Callable[[np.ndarray], float]],
    reference: np.ndarray,
    window_size: int,
    *,
    warning_rate: float = 0.05,
    critical_rate: float = 0.01,
    n_bootstrap: int = 200,
    holdout: float = 0.5,
    random_state: int = 0,
) -> Threshold:
    """Levels that unshifted windows of ``window_size`` rows cross at the given rates.

    ``make_statistic(fit_rows)`` returns ``score(window_rows) -> float`` (higher = more drift).
    It is fitted on ``1 - holdout`` of the reference; ``n_bootstrap`` windows of
    ``window_size`` rows drawn with replacement from the held-out part are scored; the
    ``1 - warning_rate`` and ``1 - critical_rate`` quantiles become the levels.
    """
    scores = np.array(
        bootstrap_null(
            make_statistic,
            reference,
            window_size,
            n_bootstrap=n_bootstrap,
            holdout=holdout,
            random_state=random_state,
        )
    )
    return Threshold(
        float(np.quantile(scores, 1 - warning_rate)),
        float(np.quantile(scores, 1 - critical_rate)),
        "above",
        "bootstrap",
    )


def bootstrap_null(
    make_statistic: Callable[[np.ndarray], Callable[[np.ndarray], T]],
    reference: np.ndarray,
    window_size: int,
    *,
    n_bootstrap: int = 200,
    holdout: float = 0.5,
    random_state: int = 0,
) -> list[T]:
    """The scores of ``n_bootstrap`` unshifted windows: the null ``calibrate_on_reference``
    takes quantiles of. A score may be anything (the collector's checks score every feature of
    a window at once)."""
    reference = np.asarray(reference)
    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be between 0 and 1, got {holdout!r}")
    if window_size < 1:
        raise ValueError(f"window_size must be positive, got {window_size!r}")
    rng = np.random.default_rng(random_state)
    order = rng.permutation(reference.shape[0])
    split = round(reference.shape[0] * (1 - holdout))
    if split < 2 or reference.shape[0] - split < 2:
        raise ValueError(f"the reference has {reference.shape[0]} rows; too few to calibrate")
    score = make_statistic(reference[order[:split]])
    pool = reference[order[split:]]
    return [score(pool[rng.integers(0, pool.shape[0], window_size)]) for _ in range(n_bootstrap)]


def learn_from_history(
    past_scores: Sequence[float],
    *,
    k_warning: float = 2.0,
    k_critical: float = 3.0,
    direction: Direction = "above",
    min_windows: int = 5,
) -> Threshold:
    """Mean +/- k standard deviations of the scores of past (healthy) windows."""
    scores = np.asarray(past_scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if scores.size < min_windows:
        raise ValueError(
            f"learning a threshold needs at least {min_windows} past windows, got {scores.size}"
        )
    if not 0 < k_warning <= k_critical:
        raise ValueError(f"need 0 < k_warning <= k_critical, got {k_warning}, {k_critical}")
    mean, sd = float(scores.mean()), float(scores.std(ddof=1))
    sign = 1.0 if direction == "above" else -1.0
    return Threshold(
        mean + sign * k_warning * sd, mean + sign * k_critical * sd, direction, "history"
    )
