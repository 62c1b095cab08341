from __future__ import annotations

import numpy as np
import pytest

from inferwatch.collector.detectors import (
    Threshold,
    calibrate_on_reference,
    learn_from_history,
    static,
)
from inferwatch.collector.detectors import stats as dstats


def test_static_levels_in_both_directions() -> None:
    above = static(warning=0.1, critical=0.25)
    assert [above.level(v) for v in (0.05, 0.2, 0.3)] == ["ok", "warning", "critical"]
    below = static(warning=0.9, critical=0.8, direction="below")
    assert [below.level(v) for v in (0.95, 0.85, 0.7)] == ["ok", "warning", "critical"]
    with pytest.raises(ValueError, match=r"critical level .* must be beyond the warning level"):
        static(warning=0.3, critical=0.1)
    with pytest.raises(ValueError, match="needs a warning level, a critical level or both"):
        Threshold(None, None)


def _psi_statistic(fit_rows: np.ndarray):
    cuts = dstats.quantile_cuts(fit_rows, 10)
    base = dstats.bin_counts(fit_rows, cuts)
    return lambda window: dstats.psi(base, dstats.bin_counts(window, cuts))


def test_bootstrap_calibration_gives_the_target_false_alarm_rate(rng: np.random.Generator) -> None:
    reference = rng.normal(size=20_000)
    threshold = calibrate_on_reference(_psi_statistic, reference, window_size=300, n_bootstrap=400)
    assert threshold.source == "bootstrap" and threshold.critical > threshold.warning
    # Live windows from the same distribution, scored against the same fitted half.
    score = _psi_statistic(reference[: len(reference) // 2])
    levels = [threshold.level(score(rng.normal(size=300))) for _ in range(400)]
    warn_rate = sum(level != "ok" for level in levels) / 400
    assert 0.02 <= warn_rate <= 0.09  # target 5%
    assert threshold.level(score(rng.normal(0.5, 1, size=300))) == "critical"


def test_learned_from_history() -> None:
    past = [0.10, 0.12, 0.11, 0.09, 0.10, 0.13, 0.08]
    threshold = learn_from_history(past)
    mean, sd = np.mean(past), np.std(past, ddof=1)
    assert threshold.warning == pytest.approx(mean + 2 * sd)
    assert threshold.critical == pytest.approx(mean + 3 * sd)
    below = learn_from_history([0.9, 0.91, 0.92, 0.9, 0.89], direction="below")
    assert below.level(0.5) == "critical"
    with pytest.raises(ValueError, match="at least 5 past windows, got 2"):
        learn_from_history([0.1, 0.2])
