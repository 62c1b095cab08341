"""Per-check thresholds in a real collector: static warning and critical levels (and the critical
alert they open), levels learnt from earlier windows' stored scores, and levels calibrated on the
reference by bootstrap, compared with the detector library's calibration and with scipy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

import inferwatch
from inferwatch.collector import ConfigError, load_config
from inferwatch.collector.detect.columns import Columns
from inferwatch.collector.detectors import MMDDrift, OutlierDetector, calibrate_on_reference
from inferwatch.collector.settings import ReferenceLevels, StaticLevels
from inferwatch.frame import Frame, categorical, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import T0, RunningCollector, SpanSender, mixed_frames, windows

WINDOW = 60
FEATURES = ("x0", "x1", "x2", "x3", "x4")
COLORS = ("red", "white", "rose")


def close_windows(
    collector: RunningCollector, clock: FakeClock, model: str, count: int, rows: int
) -> list[dict[str, Any]]:
    """Wait for ``count`` windows' ``rows`` rows, close them all, return them evaluated, in
    order."""
    with collector.client() as client:
        wait_for(
            lambda: sum(w["rows"] for w in windows(client, model)) == count * rows,
            timeout=30,
            what="every row",
        )
        clock.advance_to(T0 + count * WINDOW + 10)
        found = wait_for(
            lambda: (
                len(w := [x for x in windows(client, model) if x["evaluated_at"]]) == count and w
            ),
            timeout=30,
            what=f"{count} evaluated windows",
        )
    return sorted(found, key=lambda w: w["start"])


def row(window: dict[str, Any], detector: str, feature: str | None = None) -> dict[str, Any]:
    (found,) = [
        r for r in window["results"] if r["detector"] == detector and r["feature"] == feature
    ]
    return found


def send_error_windows(
    sender: SpanSender, model: str, failures: list[int], spans: int = 20
) -> None:
    """Window ``n`` gets ``spans`` one-row spans, ``failures[n]`` of them failed."""
    rng = np.random.default_rng(0)
    for number, failed in enumerate(failures):
        for i in range(spans):
            inputs, outputs = mixed_frames(rng, 1)
            when = T0 + number * WINDOW + 1 + i * 0.5
            error = "TimeoutError" if i < failed else None
            ids = [f"{model}-{number}-{i}"]
            sender.send(model, "1", int(when * 1e9), inputs, ids, outputs, error=error)
    sender.flush()


# -- static ------------------------------------------------------------------------------------


def test_static_levels_give_warnings_and_critical_alerts(
    make_collector: Callable[..., RunningCollector], make_sender: Callable[..., SpanSender]
) -> None:
    clock = FakeClock(T0)
    settings = {
        "window": WINDOW,
        "allowed_lateness": 5,
        "detectors": {
            "error_rate": {"threshold": {"mode": "static", "warning": 0.1, "critical": 0.3}}
        },
        "alerts": {"checks": ["error_rate"]},
    }
    collector = make_collector(clock, models={"static": settings})
    send_error_windows(make_sender(collector.url), "static", [1, 4, 10])
    quiet, warned, critical = close_windows(collector, clock, "static", 3, 20)

    ok = row(quiet, "error_rate")
    assert ok["decision"] == "ok" and ok["score"] == 0.05
    # The message quotes the level that decided, never the check's own default (5%).
    assert ok["message"] == (
        "1 of 20 requests failed (5.0%) (score 0.05 within the static warning level 0.1)"
    )
    # The check's own rule (above 5%) would have alerted at 20%: the levels decide instead.
    warning = row(warned, "error_rate")
    assert warning["decision"] == "warning" and warning["threshold"] == 0.1
    assert warning["severity"] == "warning"
    assert warning["details"]["check_decision"] == "alert"
    assert warning["message"] == (
        "4 of 20 requests failed (20.0%) (score 0.2 above the static warning level 0.1)"
    )
    failed = row(critical, "error_rate")
    assert failed["decision"] == "alert" and failed["severity"] == "critical"
    assert failed["message"].endswith("(score 0.5 above the static critical level 0.3)")
    assert failed["details"]["levels"] == {
        "warning": 0.1,
        "critical": 0.3,
        "direction": "above",
        "source": "static",
    }

    with collector.client() as client:
        response = client.get("/v1/models/static/alerts")
    assert response.status_code == 200, response.text
    (alert,) = response.json()["alerts"]
    # Opened as a warning by the 20% window, escalated by the 50% one.
    assert alert["check"] == "error_rate" and alert["state"] == "open"
    assert alert["severity"] == "critical"
    assert [e["result"]["severity"] for e in alert["evidence"]] == ["warning", "critical"]


# -- history -----------------------------------------------------------------------------------


def test_history_levels_learn_from_earlier_windows(
    make_collector: Callable[..., RunningCollector], make_sender: Callable[..., SpanSender]
) -> None:
    clock = FakeClock(T0)
    threshold = {"mode": "history", "min_windows": 3, "last": 3, "k_warning": 2, "k_critical": 3}
    settings = {
        "window": WINDOW,
        "allowed_lateness": 5,
        "detectors": {"error_rate": {"threshold": threshold}},
    }
    collector = make_collector(clock, models={"history": settings})
    # Failed spans of 20: a jump in the first window (learning: not judged), a calm run, a jump
    # (critical), then a rise between the warning and critical levels.
    failures = [12, 2, 3, 2, 3, 12, 4]
    send_error_windows(make_sender(collector.url), "history", failures)
    found = [row(w, "error_rate") for w in close_windows(collector, clock, "history", 7, 20)]
    rates = [f / 20 for f in failures]
    assert [r["score"] for r in found] == pytest.approx(rates)

    for number, result in enumerate(found[:3]):
        assert result["decision"] == "not_enough_data", result
        assert f"learning the threshold from past windows: {number} of 3" in result["message"]

    def levels(past: list[float]) -> tuple[float, float]:
        mean, sd = np.mean(past), np.std(past, ddof=1)
        return mean + 2 * sd, mean + 3 * sd

    # Window 3 learns from windows 0-2, the early jump included; window 4 no longer sees it.
    assert found[3]["decision"] == "ok"
    assert found[3]["threshold"] == pytest.approx(levels(rates[0:3])[0])
    assert found[4]["decision"] == "ok"
    assert found[4]["threshold"] == pytest.approx(levels(rates[1:4])[0])
    jump = found[5]
    warning, critical = levels(rates[2:5])
    assert jump["decision"] == "alert" and jump["severity"] == "critical"
    assert jump["details"]["levels"]["critical"] == pytest.approx(critical)
    assert jump["details"]["levels"]["windows"] == 3
    assert f"above the learned critical level {critical:.4g}" in jump["message"]
    # The critical window is left out: window 6 learns from windows 2-4.
    after = found[6]
    warning, critical = levels([rates[4], rates[3], rates[2]])
    assert warning < after["score"] < critical
    assert after["decision"] == "warning", after
    assert after["details"]["levels"]["warning"] == pytest.approx(warning)


# -- reference ---------------------------------------------------------------------------------


def table(rng: np.random.Generator, rows: int, shift: float = 0.0) -> dict[str, Any]:
    x = rng.normal(size=(rows, len(FEATURES)))
    x[:, 0] += shift
    columns: dict[str, Any] = {name: x[:, j] for j, name in enumerate(FEATURES)}
    columns["color"] = rng.choice(COLORS, size=rows, p=(0.5, 0.4, 0.1))
    return columns


def send_rows(sender: SpanSender, model: str, number: int, columns: dict[str, Any]) -> None:
    rows = len(columns["color"])
    x = np.column_stack([columns[name] for name in FEATURES])
    for part, start in enumerate(range(0, rows, 128)):
        stop = min(start + 128, rows)
        inputs = Frame(
            stop - start,
            (
                numeric("features", x[start:stop], names=list(FEATURES)),
                categorical("color", columns["color"][start:stop]),
            ),
        )
        when = T0 + number * WINDOW + 1 + part
        ids = [f"{number}-{i}" for i in range(start, stop)]
        sender.send(model, "1", int(when * 1e9), inputs, ids)


def test_reference_levels_match_the_library_and_hold_the_false_alarm_rate(
    make_collector: Callable[..., RunningCollector], make_sender: Callable[..., SpanSender]
) -> None:
    model, clean, rows = "calibrated", 50, 256
    clock = FakeClock(T0)
    threshold = {"mode": "reference", "target_fpr": 0.05, "critical_fpr": 0.01}
    off = {"enabled": False}
    settings = {
        "window": WINDOW,
        "allowed_lateness": 5,
        "reference": {"policy": "none"},
        "detectors": {
            "univariate_drift": {"threshold": threshold},
            "multivariate_drift": off,
            "outliers": off,
            "prediction_drift": off,
            "label_drift": off,
        },
    }
    collector = make_collector(clock, models={model: settings})
    rng = np.random.default_rng(11)
    reference = table(rng, 4000)
    inferwatch.set_reference(model, "1", reference, endpoint=collector.url)
    fitted = collector.app.state.collector.fitted
    fits = fitted.fits["univariate_drift.threshold"]
    sender = make_sender(collector.url)
    for number in range(clean):
        send_rows(sender, model, number, table(rng, rows))
    send_rows(sender, model, clean, table(rng, rows, shift=0.6))
    sender.flush()
    found = close_windows(collector, clock, model, clean + 1, rows)
    # One calibration for every window: they share the model, reference and window size.
    assert fitted.fits["univariate_drift.threshold"] == fits + 1

    first = row(found[0], "univariate_drift", "x0")
    levels = first["details"]["levels"]
    assert levels["source"] == "reference" and levels["window_size"] == rows
    # The library's calibration of scipy's KS statistic on the same reference sample.
    profile = collector.app.state.collector.references.profile(model, "1")
    sample = Columns.of(profile, "feature").rows(profile.reservoir)
    assert sample.rows == 4000
    for name in FEATURES:
        expected = calibrate_on_reference(
            lambda fit: lambda window: stats.ks_2samp(fit, window).statistic,
            sample.numeric[:, sample.numeric_names.index(name)],
            rows,
            warning_rate=0.05,
            critical_rate=0.01,
        )
        shown = row(found[0], "univariate_drift", name)["details"]["levels"]
        assert shown["warning"] == pytest.approx(expected.warning, rel=1e-12), name
        assert shown["critical"] == pytest.approx(expected.critical, rel=1e-12), name
    assert row(found[0], "univariate_drift", "color")["details"]["levels"]["warning"] > 0

    judged = [
        row(w, "univariate_drift", name)["severity"]
        for w in found[:clean]
        for name in (*FEATURES, "color")
    ]
    warned = sum(severity is not None for severity in judged) / len(judged)
    critical = sum(severity == "critical" for severity in judged) / len(judged)
    assert 0.02 <= warned <= 0.09, warned  # target 5% of 300 (window, feature) pairs
    assert critical <= 0.03, critical  # target 1%

    shifted = found[clean]
    moved = row(shifted, "univariate_drift", "x0")
    assert moved["decision"] == "alert" and moved["severity"] == "critical"
    assert "above the calibrated critical level" in moved["message"]
    summary = row(shifted, "univariate_drift")
    assert summary["decision"] == "alert"
    assert "`x0` (critical)" in summary["message"]
    assert summary["details"]["check_decision"] == "alert"


def test_reference_levels_of_the_joint_and_outlier_checks(
    make_collector: Callable[..., RunningCollector], make_sender: Callable[..., SpanSender]
) -> None:
    with pytest.raises(ConfigError, match=r"mode 'reference' needs .*univariate_drift"):
        load_config(
            None, models={"m": {"detectors": {"error_rate": {"threshold": {"mode": "reference"}}}}}
        )
    clock = FakeClock(T0)
    quick = {"mode": "reference", "n_bootstrap": 40}
    common = {"window": WINDOW, "allowed_lateness": 5, "reference": {"policy": "none"}}
    joint = {
        **common,
        "detectors": {
            "multivariate_drift": {"threshold": quick},
            "outliers": {"method": "mahalanobis", "threshold": quick},
        },
    }
    # The classifier is refused when a window is evaluated: an error result says why.
    refused = {
        **common,
        "detectors": {
            "multivariate_drift": {"method": "classifier", "threshold": quick},
            "outliers": {"enabled": False},
        },
    }
    collector = make_collector(clock, models={"joint": joint, "refused": refused})
    rng = np.random.default_rng(3)
    sender = make_sender(collector.url)
    for model in ("joint", "refused"):
        inferwatch.set_reference(model, "1", table(rng, 600), endpoint=collector.url)
        send_rows(sender, model, 0, table(rng, 128))
    sender.flush()
    (window,) = close_windows(collector, clock, "joint", 1, 128)

    profile = collector.app.state.collector.references.profile("joint", "1")
    sample = Columns.of(profile, "feature").rows(profile.reservoir)

    def mmd(fit: np.ndarray) -> Callable[[np.ndarray], float]:
        detector = MMDDrift(n_permutations=1).fit(sample.take(fit))
        return lambda rows: float(detector.run(sample.take(rows)).score or 0.0)

    def flagged(fit: np.ndarray) -> Callable[[np.ndarray], float]:
        detector = OutlierDetector("mahalanobis").fit(sample.numeric[fit])
        return lambda rows: float(detector.run(sample.numeric[rows]).score or 0.0)

    # Float32 kernel sums may differ in the last digits between runs: rel=1e-6.
    for detector, statistic in (("multivariate_drift", mmd), ("outliers", flagged)):
        found = row(window, detector)
        assert found["decision"] in ("ok", "warning", "alert"), found
        expected = calibrate_on_reference(statistic, np.arange(sample.rows), 128, n_bootstrap=40)
        levels = found["details"]["levels"]
        assert levels["window_size"] == 128 and levels["n_bootstrap"] == 40
        assert levels["warning"] == pytest.approx(expected.warning, rel=1e-6), detector
        assert levels["critical"] == pytest.approx(expected.critical, rel=1e-6), detector
        assert found["threshold"] == levels["warning"]

    with collector.client() as client:
        (other,) = [w for w in windows(client, "refused") if w["evaluated_at"]]
    error = row(other, "multivariate_drift")
    assert error["decision"] == "error"
    assert error["message"].startswith(
        "multivariate_drift.threshold (mode 'reference'): could not calibrate on the reference: "
        "only method 'mmd' is calibrated on the reference"
    )
    assert row(other, "univariate_drift")["decision"] == "ok"


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "error"),
    [
        ({"mode": "static"}, "needs warning, critical or both"),
        ({"mode": "static", "warning": 0.3, "critical": 0.1}, r"critical \(0.1\) must be above"),
        ({"mode": "static", "warning": 0.1, "k_warning": 2}, "unknown setting.*k_warning"),
        ({"mode": "sometimes"}, "mode must be one of 'static', 'reference', 'history'"),
        ({"mode": "reference", "target_fpr": 0.01, "critical_fpr": 0.05}, "must not exceed"),
        ({"mode": "reference", "n_bootstrap": 5}, r"n_bootstrap must be at least 20, got 5"),
        ({"mode": "history", "min_windows": 10, "last": 5}, "last .* at least min_windows"),
        ({"mode": "history", "direction": "up"}, "direction must be 'above' or 'below'"),
        (0.2, "univariate_drift.threshold must be a table"),
    ],
)
def test_threshold_tables_are_validated(threshold: Any, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_config(
            None, models={"m": {"detectors": {"univariate_drift": {"threshold": threshold}}}}
        )


def test_threshold_tables_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(
        """
[models.credit.detectors.univariate_drift.threshold]
mode = "reference"
target_fpr = 0.02

[models.credit.detectors.label_coverage.threshold]
mode = "static"
warning = 0.5
critical = 0.2
direction = "below"

[models.credit.detectors.error_rate]
threshold = 0.02
"""
    )
    detectors = load_config(path).model("credit").detectors
    calibrated = detectors["univariate_drift"].levels
    assert isinstance(calibrated, ReferenceLevels)
    assert (calibrated.target_fpr, calibrated.critical_fpr) == (0.02, 0.01)
    assert isinstance(detectors["label_coverage"].levels, StaticLevels)
    assert detectors["label_coverage"].levels.direction == "below"
    # A number is still error_rate's own rule.
    assert detectors["error_rate"].model_dump()["threshold"] == 0.02
    assert detectors["error_rate"].levels is None
    with pytest.raises(ConfigError, match="performance has unknown setting"):
        load_config(
            None, models={"m": {"detectors": {"performance": {"threshold": {"mode": "static"}}}}}
        )
