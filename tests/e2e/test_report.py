"""``inferwatch report`` against a real collector on 127.0.0.1: spans over OTLP/HTTP, labels over
its API, windows closed by the collector's clock; the report reads them over HTTP as a user's
would. Latency and the main metric are checked against numpy and scikit-learn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error

from inferwatch.cli import main
from inferwatch.collector import load_config
from inferwatch.frame import Frame, numeric
from inferwatch_testkit import FakeClock, wait_for
from inferwatch_testkit.collector import (
    T0,
    RunningCollector,
    SpanSender,
    mixed_frames,
    start_collector,
    windows,
)

WINDOW = 60
SPANS = 12  # error_rate needs at least 10 requests
ROWS = 5
# Each span's duration in ms: the window's request latencies.
DURATIONS = [10.0 * (i + 1) for i in range(SPANS)]
MODELS = {
    "credit": {
        "window": WINDOW,
        "allowed_lateness": 0,
        "alerts": {"checks": ["error_rate"], "consecutive": 1},
    },
    "prices": {"window": WINDOW, "allowed_lateness": 0},
    "churn": {
        "window": WINDOW,
        "allowed_lateness": 0,
        "detectors": {"performance": {"metrics": ["f1_macro", "accuracy"]}},
    },
    # Configured, but no traffic yet: known, with no windows.
    "quiet": {"window": WINDOW},
}
VENV_BIN = Path(sys.executable).parent


@dataclass
class Sent:
    """What was sent: truth and predictions by model (and version) for the expected figures."""

    truth: dict[str, list[Any]]
    predicted: dict[str, list[Any]]


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningCollector, Sent]]:
    db = tmp_path_factory.mktemp("report") / "collector.db"
    clock = FakeClock(T0)
    config = load_config(None, db=f"sqlite:///{db}", tick_seconds=0.05, models=MODELS)
    running = start_collector(config, clock)
    try:
        sent = _fill(running, clock)
        yield running, sent
    finally:
        running.stop()


def _fill(running: RunningCollector, clock: FakeClock) -> Sent:
    """credit version 1: a window of failing requests (an error_rate alert), no labels; credit
    version 2: the next window, clean, labelled. prices (regression) and churn: one labelled
    window each."""
    rng = np.random.default_rng(7)
    sender = SpanSender(running.url)
    labels: dict[str, dict[str, Any]] = {"credit": {}, "prices": {}, "churn": {}}
    sent = Sent({}, {})
    try:
        for version, start, failing in (("1", T0, True), ("2", T0 + WINDOW, False)):
            truth, predicted = [], []
            for i in range(SPANS):
                inputs, outputs = mixed_frames(rng, ROWS)
                ids = [f"c{version}-{i}-{j}" for j in range(ROWS)]
                sender.send(
                    "credit",
                    version,
                    int((start + 4 * i) * 1e9),
                    inputs,
                    ids,
                    outputs,
                    duration_ms=DURATIONS[i],
                    error="TimeoutError" if failing and i % 2 == 0 else None,
                )
                guesses = outputs.columns[0].values()
                if not failing:
                    # Three rows in four right: a known accuracy.
                    for j, (pid, guess) in enumerate(zip(ids, guesses, strict=True)):
                        label = guess if (i * ROWS + j) % 4 else ("no" if guess == "yes" else "yes")
                        labels["credit"][pid] = label
                        truth.append(label)
                        predicted.append(guess)
            sent.truth[f"credit/{version}"], sent.predicted[f"credit/{version}"] = truth, predicted
        x = rng.normal(size=(40, 2))
        y_hat = x @ np.array([2.0, -1.0])
        y = y_hat + rng.normal(size=40)
        price_ids = [f"p{j}" for j in range(40)]
        sender.send(
            "prices",
            "1",
            int(T0 * 1e9),
            Frame(40, (numeric("x", x),)),
            price_ids,
            Frame(40, (numeric("price", y_hat),)),
            task="regression",
        )
        labels["prices"] = {pid: float(v) for pid, v in zip(price_ids, y, strict=True)}
        sent.truth["prices"], sent.predicted["prices"] = list(y), list(y_hat)
        inputs, outputs = mixed_frames(rng, 40)
        churn_ids = [f"k{j}" for j in range(40)]
        sender.send("churn", "1", int(T0 * 1e9), inputs, churn_ids, outputs)
        guesses = outputs.columns[0].values()
        churn_truth = [str(v) for v in rng.choice(["no", "yes"], size=40)]
        labels["churn"] = dict(zip(churn_ids, churn_truth, strict=True))
        sent.truth["churn"], sent.predicted["churn"] = churn_truth, list(guesses)
        sender.flush()
    finally:
        sender.close()
    with running.client() as client:
        expected = {"credit": 2 * SPANS * ROWS, "prices": 40, "churn": 40}
        for model, rows in expected.items():
            wait_for(
                lambda m=model, r=rows: sum(w["rows"] for w in windows(client, m)) == r,
                what=f"the rows of {model}",
            )
            body = {
                "model": model,
                "labels": [{"prediction_id": k, "label": v} for k, v in labels[model].items()],
            }
            assert client.post("/v1/labels", json=body).is_success
        clock.advance_to(T0 + 2 * WINDOW + 1)
        for model in expected:
            wait_for(
                lambda m=model: all(w["evaluated_at"] for w in windows(client, m)),
                timeout=60,
                what=f"the windows of {model} evaluated",
            )
        wait_for(lambda: client.get("/v1/models/credit/alerts").json()["alerts"], what="the alert")
    return sent


def report(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", "--endpoint", url, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def terminal_of_100_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")


def table_rows(out: str) -> tuple[list[str], list[str]]:
    """The table's header cells and its data lines."""
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("start"))
    end = lines.index("", at)
    return lines[at].split(), lines[at + 2 : end]


def test_the_windows_list_carries_latency_and_the_main_metric(collector, capsys) -> None:
    running, sent = collector
    code, out, _ = report(running.url, capsys, "--model", "credit", "--json")
    assert code == 0
    body = json.loads(out)
    first, second = body["windows"]
    expected_p50 = np.quantile(DURATIONS, 0.5, method="lower")
    expected_p95 = np.quantile(DURATIONS, 0.95, method="lower")
    for window in (first, second):
        # The collector's latency sketch is within 1% of the exact quantile.
        assert window["latency"]["p50_ms"] == pytest.approx(expected_p50, rel=0.01)
        assert window["latency"]["p95_ms"] == pytest.approx(expected_p95, rel=0.01)
        assert window["latency"]["max_ms"] == pytest.approx(max(DURATIONS))
    assert first["main_metric"] == {
        "name": "accuracy",
        "value": None,
        "scored": 0,
        "estimated": None,
    }
    accuracy = accuracy_score(sent.truth["credit/2"], sent.predicted["credit/2"])
    assert accuracy == 0.75
    assert second["main_metric"] == {
        "name": "accuracy",
        "value": pytest.approx(accuracy),
        "scored": SPANS * ROWS,
        "estimated": None,
    }
    assert [a["check"] for a in body["open_alerts"]] == ["error_rate"]

    code, out, _ = report(running.url, capsys, "--model", "credit")
    assert code == 0
    headers, rows = table_rows(out)
    assert headers == [
        "start", "version", "rows", "labels", "errors", "p50", "ms", "p95", "ms", "accuracy",
        "findings",
    ]  # fmt: skip
    assert out.splitlines()[0] == "Model credit: latest 2 windows of 1 min on 2023-11-14"
    cells = [row.split() for row in rows]
    assert [c[:2] for c in cells] == [["22:14:00", "1"], ["22:15:00", "2"]]  # start, version
    assert [c[4:7] for c in cells] == [
        ["50.0%", f"{first['latency']['p50_ms']:.1f}", f"{first['latency']['p95_ms']:.1f}"],
        ["0.0%", f"{second['latency']['p50_ms']:.1f}", f"{second['latency']['p95_ms']:.1f}"],
    ]
    assert cells[0][7:] == ["-", "error_rate"]
    assert cells[1][7:] == ["0.750", "-"]


def test_a_regressor_shows_its_mae_and_a_model_its_first_configured_metric(
    collector, capsys
) -> None:
    running, sent = collector
    code, out, _ = report(running.url, capsys, "--model", "prices")
    assert code == 0
    headers, rows = table_rows(out)
    assert headers[-2] == "mae"
    mae = mean_absolute_error(sent.truth["prices"], sent.predicted["prices"])
    assert rows[0].split()[-2] == f"{mae:.3f}"

    code, out, _ = report(running.url, capsys, "--model", "churn", "--json")
    (window,) = json.loads(out)["windows"]
    f1 = f1_score(sent.truth["churn"], sent.predicted["churn"], average="macro")
    assert window["main_metric"]["name"] == "f1_macro"
    assert window["main_metric"]["value"] == pytest.approx(f1, rel=1e-12)
    headers, _ = table_rows(report(running.url, capsys, "--model", "churn")[1])
    assert headers[-2] == "f1_macro"


def test_version_limits_the_windows_and_the_alerts(collector, capsys) -> None:
    running, _ = collector
    code, out, _ = report(running.url, capsys, "--model", "credit", "--version", "2")
    assert code == 0
    _, rows = table_rows(out)
    assert [row.split()[1] for row in rows] == ["2"]
    assert "No open alerts." in out and "error_rate" not in out

    code, out, _ = report(running.url, capsys, "--model", "credit", "--version", "1")
    assert code == 0
    assert "Open alerts (1):" in out and "[warning] error_rate (version 1)" in out
    with running.client() as client:
        only = client.get("/v1/models/credit/alerts", params={"version": "2"}).json()["alerts"]
        assert only == []
        assert len(client.get("/v1/models/credit/alerts").json()["alerts"]) == 1


def test_last_asks_the_collector_for_the_latest_windows_only(collector, capsys) -> None:
    running, _ = collector
    with running.client() as client:
        (latest,) = windows(client, "credit", last="1")
        assert latest["version"] == "2"
        assert len(windows(client, "credit", last="5")) == 2
        assert client.get("/v1/models/credit/windows", params={"last": "0"}).status_code == 400
        too_many = client.get("/v1/models/credit/windows", params={"last": "10001"})
        assert too_many.status_code == 400
    code, out, _ = report(running.url, capsys, "--model", "credit", "--last", "1")
    assert code == 0 and out.splitlines()[0] == (
        "Model credit: latest 1 window of 1 min on 2023-11-14"
    )


def test_an_unknown_model_or_version_is_an_error_with_exit_status_2(collector, capsys) -> None:
    running, _ = collector
    code, out, err = report(running.url, capsys, "--model", "credt")
    assert (code, out) == (2, "")
    assert err == "inferwatch: error: the collector has no model 'credt'; did you mean 'credit'?\n"
    code, out, err = report(running.url, capsys, "--model", "zzz", "--json")
    assert (code, out) == (2, "")
    assert "has no model 'zzz' (it has 'churn', 'credit', 'prices', 'quiet')" in err
    code, _, err = report(running.url, capsys, "--model", "credit", "--version", "9")
    assert code == 2
    assert "model 'credit' has no version '9' (it has versions '1', '2')" in err
    # A configured model without traffic is known: no windows yet, and no error.
    code, out, _ = report(running.url, capsys, "--model", "quiet")
    assert code == 0 and "No windows yet." in out


def test_the_console_script_exits_2_for_an_unknown_model(collector) -> None:
    running, _ = collector
    done = subprocess.run(
        [VENV_BIN / "inferwatch", "report", "--model", "credt", "--endpoint", running.url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert done.returncode == 2, done.stderr
    assert "did you mean 'credit'?" in done.stderr


def test_every_line_fits_100_columns_and_the_rule_is_the_tables_width(collector, capsys) -> None:
    running, _ = collector
    for model in ("credit", "prices", "churn"):
        _, out, _ = report(running.url, capsys, "--model", model)
        lines = out.splitlines()
        assert max(len(line) for line in lines) <= 100, out
        at = next(i for i, line in enumerate(lines) if line.startswith("start"))
        table = lines[at : lines.index("", at)]
        assert len(table[1]) == max(len(line) for line in table)
        assert set(table[1]) == {"-", " "}


def test_the_api_schema_describes_the_listed_window(collector) -> None:
    running, _ = collector
    schema = httpx.get(f"{running.url}/openapi.json", timeout=30).json()
    listed = schema["components"]["schemas"]["Window"]["properties"]
    assert {"latency", "main_metric"} <= set(listed)
    parameters = schema["paths"]["/v1/models/{model}/windows"]["get"]["parameters"]
    assert "last" in {p["name"] for p in parameters}


def test_json_into_a_pipe_closed_early_is_no_traceback(collector) -> None:
    running, _ = collector
    command = [VENV_BIN / "inferwatch", "report", "--model", "credit", "--json"]
    process = subprocess.Popen(
        [*command, "--endpoint", running.url], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # as `| head -c 0` would
    err = process.stderr.read().decode()
    assert process.wait(120) == 0, err
    assert err == ""
