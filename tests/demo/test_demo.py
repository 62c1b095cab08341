"""``examples/demo.py --once --fast`` end to end, with its findings read from the collector's API.

The demo runs as a user runs it (a subprocess starting a real collector and a real ``bentoml
serve``). Once it has exited, a collector is started again on the demo's SQLite file and the
findings are asserted through the query API, against what the demo says it sent (ledger.json).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from demo_processes import Servers
from demo_support import (
    EXAMPLES,
    REPO,
    processes_mentioning,
    start_collector,
)
from demo_watch import Findings
from wine import FEATURES

from inferwatch_testkit import wait_for

pytestmark = pytest.mark.slow

DEMO_TIMEOUT_S = 170.0
SHIFTED = {"alcohol", "color_intensity", "hue"}
CLEAN, COVARIATE, LABEL_SHIFT = range(3)
# The line printed as a window closes (the final table's lines start with the time).
WINDOW_LINE = re.compile(r"window \d\d:\d\d:\d\d-\d\d:\d\d:\d\d ")


@dataclass
class DemoRun:
    stdout: str
    seconds: float
    ledger: list[dict[str, Any]]
    windows: list[dict[str, Any]]  # the collector's, with results, in the ledger's order
    alerts: list[dict[str, Any]]
    workdir: Path


def demo_command(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, str(EXAMPLES / "demo.py"), "--fast", "--workdir", str(workdir),
        "--port", "0", "--service-port", "0", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    workdir = tmp_path_factory.mktemp("demo")
    began = time.monotonic()
    result = subprocess.run(
        demo_command(workdir, "--once"),
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        cwd=REPO,
    )
    seconds = time.monotonic() - began
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    ledger = json.loads((workdir / "ledger.json").read_text())["windows"]

    # The demo stopped its collector; the findings are in its database.
    servers = Servers()
    try:
        collector = start_collector(servers, workdir, workdir / "collector.toml")
        with collector.client() as client:
            listed = client.get("/v1/models/wine/windows").json()["windows"]
            by_start = {datetime.fromisoformat(w["start"]).timestamp(): w for w in listed}
            windows = []
            for entry in ledger:
                window = by_start[entry["start"]]
                windows.append(client.get(f"/v1/models/wine/windows/{window['id']}").json())
            alerts = client.get("/v1/models/wine/alerts").json()["alerts"]
    finally:
        servers.stop_all()
    yield DemoRun(result.stdout, seconds, ledger, windows, alerts, workdir)


def phase_windows(run: DemoRun, phase: int) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    names = ("clean", "covariate shift", "label shift")
    return [
        (entry, window)
        for entry, window in zip(run.ledger, run.windows, strict=True)
        if entry["phase"] == names[phase]
    ]


def test_every_row_sent_is_in_its_window(run: DemoRun) -> None:
    assert [e["phase"] for e in run.ledger] == ["clean"] * 3 + ["covariate shift"] * 2 + [
        "label shift"
    ] * 2
    for entry, window in zip(run.ledger, run.windows, strict=True):
        assert entry["requests_failed"] == 0
        # On a loaded machine a request that fell behind schedule is skipped, not misplaced.
        assert entry["rows"] == 300 - 10 * entry["requests_skipped"] >= 250
        assert window["rows"] == entry["rows"]
        assert window["closed"]


def test_labels_join_and_accuracy_matches_the_labelled_rows(run: DemoRun) -> None:
    for entry, window in zip(run.ledger, run.windows, strict=True):
        labels: dict[str, int] = entry["labels"]
        assert window["labelled"] == len(labels) == entry["labels_sent"]
        assert 0.6 < window["label_coverage"] < 0.95  # 80% of rows are labelled
        predicted = np.array([entry["predictions"][i] for i in labels])
        expected = float(np.mean(predicted == np.array(list(labels.values()))))
        assert window["summary"]["performance"]["accuracy"] == pytest.approx(expected)
    accuracy = [w["summary"]["performance"]["accuracy"] for w in run.windows]
    assert min(accuracy[:3]) > 0.95 and max(accuracy[3:5]) < 0.9


def test_drift_is_found_on_the_shifted_features_and_not_in_clean_windows(run: DemoRun) -> None:
    clean_alarms = sum(len(Findings.of(w).drifted) for _, w in phase_windows(run, CLEAN))
    # Bonferroni at alpha 0.05 over 13 features: a false alarm in 3 windows is possible, more
    # than one is not plausible.
    assert clean_alarms <= 1
    for _, window in phase_windows(run, COVARIATE):
        drifted = set(Findings.of(window).drifted)
        assert drifted >= SHIFTED, drifted
        assert drifted <= set(FEATURES)


def test_the_label_shift_shows_in_the_predicted_classes(run: DemoRun) -> None:
    for _, window in phase_windows(run, LABEL_SHIFT):
        assert "prediction_drift" in Findings.of(window).joint, window["results"]


def test_each_phase_gets_its_shift_verdict(run: DemoRun) -> None:
    verdicts = {
        phase: {Findings.of(w).verdict for _, w in phase_windows(run, phase)}
        for phase in (CLEAN, COVARIATE, LABEL_SHIFT)
    }
    assert verdicts == {
        CLEAN: {"none"},
        COVARIATE: {"covariate_shift"},
        LABEL_SHIFT: {"label_shift"},
    }, verdicts
    # The label shift is one finding: the features it moved are grouped under it, not listed
    # as drifted features the demo never touched.
    for _, window in phase_windows(run, LABEL_SHIFT):
        assert Findings.of(window).drifted == (), Findings.of(window).drifted
        assert window["shift"]["message"].startswith("label shift: class `2` 27% -> ")
    lines = run.stdout.splitlines()
    assert sum(line.strip().startswith("shift: label shift: class `2`") for line in lines) == 2
    assert any(line.strip().startswith("shift: covariate shift: `alcohol`") for line in lines)


def test_accuracy_is_estimated_before_the_labels_and_close_to_the_realized(run: DemoRun) -> None:
    """The service's probabilities give each window an estimated accuracy before its labels
    (which land a window after it closed); the covariate shift moves the scores where the
    178-wine reference has too few to calibrate, and the estimate is withheld, saying why."""
    for phase in (CLEAN, LABEL_SHIFT):
        for _, window in phase_windows(run, phase):
            found = Findings.of(window)
            assert found.estimate is not None, found.estimate_missing
            assert found.estimate.lower <= found.estimate.value <= found.estimate.upper
            assert found.accuracy is not None
            assert abs(found.estimate.value - found.accuracy) < 0.02
            assert window["main_metric"]["estimated"]["value"] == found.estimate.value
    for _, window in phase_windows(run, COVARIATE):
        found = Findings.of(window)
        assert found.estimate is None
        assert found.estimate_missing and "barely holds" in found.estimate_missing
    lines = run.stdout.splitlines()
    window_lines = [line for line in lines if WINDOW_LINE.match(line)]
    # Printed as each window closed, before its labels: the estimate, marked, and no labels.
    estimated = [line for line in window_lines if re.search(r"accuracy ~\d\.\d{3} est$", line)]
    assert len(estimated) >= 4, window_lines
    assert all("labelled   0 (  0%)" in line for line in estimated)
    assert sum(line.strip().startswith("estimate: none: ") for line in lines) == 2
    # Then, as the labels land, the realized accuracy beside the estimate made before them.
    landed = [line for line in lines if line.startswith("  labels in for ")]
    assert len(landed) == 7, landed
    assert sum("estimated ~" in line and "before them" in line for line in landed) == 5


def test_injected_outliers_are_flagged_by_prediction_id(run: DemoRun) -> None:
    for entry, window in phase_windows(run, COVARIATE):
        found = Findings.of(window)
        injected = set(entry["outlier_ids"])
        assert len(injected) == 12
        assert found.outlier_window
        assert len(injected & set(found.outlier_ids)) >= 9, (injected, found.outlier_ids)
    for _, window in phase_windows(run, CLEAN):
        assert not Findings.of(window).outlier_window


def test_alerts_open_when_the_drift_starts_and_never_on_clean_windows(run: DemoRun) -> None:
    phase_of_window = {w["id"]: e["phase"] for e, w in zip(run.ledger, run.windows, strict=True)}
    opened_in: dict[str, str | None] = {}
    for alert in sorted(run.alerts, key=lambda a: a["id"]):  # the first alert of each check
        opened_in.setdefault(alert["check"], phase_of_window.get(alert["window_id"]))
    # The demo alerts on checks' summary rows: one alert per check.
    assert opened_in.get("univariate_drift") == "covariate shift", opened_in
    assert opened_in.get("outliers") == "covariate shift", opened_in
    assert opened_in.get("performance") == "covariate shift", opened_in
    assert "clean" not in opened_in.values(), opened_in


def test_the_terminal_shows_each_window_and_the_urls(run: DemoRun) -> None:
    lines = run.stdout.splitlines()
    assert sum(bool(WINDOW_LINE.match(line)) for line in lines) == 7
    assert any("ALERT opened [warning] performance" in line for line in lines)
    assert any(line.startswith("Dashboard:") for line in lines)
    assert run.seconds < DEMO_TIMEOUT_S


def test_every_line_fits_100_columns_and_no_alert_is_cut(run: DemoRun) -> None:
    lines = run.stdout.splitlines()
    # The work directory is the user's to choose (pytest's, under xdist, is long).
    short = run.stdout.replace(str(run.workdir), "/tmp/demo").splitlines()
    too_wide = [line for line in short if len(line) > 100]
    assert too_wide == [], too_wide
    # Each alert's message is printed whole, wrapped onto lines indented by four.
    blocks: list[list[str]] = []
    for line in lines:
        if line.startswith("  ALERT opened"):
            blocks.append([line])
        elif blocks and blocks[-1] and line.startswith("    ") and not line.startswith("     "):
            blocks[-1].append(line)
        elif blocks:
            blocks.append([])  # the block ended
    blocks = [b for b in blocks if b]
    assert len(blocks) >= 5 and any(len(b) > 1 for b in blocks), blocks
    assert not any(b[-1].endswith("...") for b in blocks), blocks
    at = lines.index("After the late labels joined:") + 1
    end = next(i for i in range(at, len(lines)) if lines[i].startswith("(* ="))
    table = lines[at:end]
    assert set(table[1]) == {"-"} and len(table[1]) == max(len(line) for line in table)
    # The covariate shift's rows name the shifted features and the joint checks, in full.
    shift = " ".join(line for line in table if "covariate shift" in line or line.startswith(" "))
    assert all(name in shift for name in ("alcohol*", "hue*", "multivariate_drift"))


def test_the_terminal_names_the_shifted_features(run: DemoRun) -> None:
    lines = run.stdout.splitlines()
    assert any("drift:" in line and "alcohol*" in line for line in lines)
    assert any("injected found" in line for line in lines)


def test_ctrl_c_stops_every_process_it_started(tmp_path: Path) -> None:
    workdir = tmp_path / "interrupted"
    demo = subprocess.Popen(
        demo_command(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            if line.startswith("Replaying"):  # both servers are up and traffic has started
                break
        started = processes_mentioning(str(workdir), exclude=[demo.pid])
        # The collector, `bentoml serve` and its worker.
        assert len(started) >= 3, [p.cmdline() for p in started]
        demo.send_signal(signal.SIGINT)
        assert demo.wait(60) == 130
        wait_for(
            lambda: not processes_mentioning(str(workdir), exclude=[demo.pid]),
            timeout=10,
            what="the demo's servers to stop",
        )
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
